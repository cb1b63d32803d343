"""Embedding map: the run's embeddings projected to 2-D, coloured by issue type or label; drag a
rectangle over a region to list the items inside it and open them."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from dashboard import ui
from winnow.store import Store

MAX_POINTS = 5_000  # points drawn: every flagged item first, then a seeded sample of the rest
TSNE_POINTS = 2_000  # t-SNE is quadratic-ish: it runs on a sample of this size
PRIORITY = ("corrupt", "exact_duplicate", "near_duplicate", "off_topic", "label_error", "outlier", "low_quality", "check_failed")
NONE = "not flagged"
COLOURS = {"corrupt": "#9d755d", "exact_duplicate": "#4c78a8", "near_duplicate": "#72b7b2", "off_topic": "#e45756",
           "label_error": "#f58518", "outlier": "#b279a2", "low_quality": "#eeca3b", "check_failed": "#54a24b", NONE: "#d8d8d8"}
OTHER_COLOUR = "#ff9da6"
METHODS = {"pca": "PCA (all items, fast)", "tsne": f"t-SNE (a sample of {TSNE_POINTS:,}, slower, keeps neighbourhoods)"}
THUMBNAILS = 12


def first_issue(issues: list[str]) -> str:
    """The issue type an item is coloured by when several flag it (most severe first)."""
    ranked = sorted(issues, key=lambda t: PRIORITY.index(t) if t in PRIORITY else len(PRIORITY))
    return ranked[0] if ranked else NONE


def sample_rows(flagged: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Row indices to draw: flagged rows first (up to ``size``), then a seeded sample of the rest."""
    rng = np.random.default_rng(seed)
    hot, cold = np.flatnonzero(flagged), np.flatnonzero(~flagged)
    hot = hot if len(hot) <= size else np.sort(rng.choice(hot, size, replace=False))
    room = size - len(hot)
    cold = cold if len(cold) <= room else np.sort(rng.choice(cold, room, replace=False))
    return np.sort(np.concatenate([hot, cold]))


@st.cache_data(show_spinner="Projecting the embeddings…", max_entries=4)
def projection(db: str, run_id: str, method: str) -> pd.DataFrame | None:
    """``item_id, label, issue, issues, x, y`` of the drawn items, or ``None`` without vectors."""
    from sklearn.decomposition import PCA  # loaded when the map is opened
    from sklearn.manifold import TSNE

    loaded = ui.run_vectors(db, run_id)
    if loaded is None:
        return None
    embedded, vectors = loaded
    findings = Store(db, lock_timeout=ui.LOCK_TIMEOUT_S).findings(run_id, flagged_only=True)
    issues = findings.groupby("item_id")["issue_type"].agg(list)
    per_item = [issues.get(i, []) for i in embedded["item_id"]]
    rows = sample_rows(np.array([bool(i) for i in per_item]), TSNE_POINTS if method == "tsne" else MAX_POINTS)
    if method == "tsne" and len(rows) > 5:
        reduced = PCA(min(50, vectors.shape[1], len(rows) - 1), random_state=0).fit_transform(vectors[rows])
        xy = TSNE(2, perplexity=min(30.0, (len(rows) - 1) / 3), init="pca", random_state=0).fit_transform(reduced)
    else:
        xy = PCA(2, random_state=0).fit(vectors).transform(vectors[rows]) if len(vectors) > 2 else np.zeros((len(rows), 2))
    chosen = embedded.iloc[rows]
    return pd.DataFrame({
        "item_id": chosen["item_id"].to_numpy(),
        "label": chosen["label"].fillna("(none)").astype(str).to_numpy(),
        "issue": [first_issue(per_item[r]) for r in rows],
        "issues": [", ".join(per_item[r]) or NONE for r in rows],
        "x": xy[:, 0],
        "y": xy[:, 1],
    })


def chart(points: pd.DataFrame, colour: str) -> alt.Chart:
    """The scatter with a rectangle selection named ``region``; unflagged items grey and underneath."""
    brush = alt.selection_interval(name="region", encodings=["x", "y"])
    points = points.sort_values("issue", key=lambda s: s != NONE, kind="stable")
    if colour == "issue":
        present = [t for t in (*PRIORITY, NONE) if t in set(points["issue"])] + sorted(set(points["issue"]) - {*PRIORITY, NONE})
        scale = alt.Scale(domain=present, range=[COLOURS.get(t, OTHER_COLOUR) for t in present])
        encoding = alt.Color("issue:N", title="flagged as", scale=scale)
    else:
        encoding = alt.Color("label:N", title="label")
    return (
        alt.Chart(points)
        .mark_circle(size=36, opacity=0.8)
        .encode(
            x=alt.X("x:Q", title="component 1", axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("y:Q", title="component 2", axis=alt.Axis(labels=False, ticks=False)),
            color=encoding,
            tooltip=["item_id", "label", "issues"],
        )
        .add_params(brush)
        .properties(height=520)
    )


def in_region(points: pd.DataFrame, selection: dict) -> pd.DataFrame:
    """The points inside the selected rectangle (``{"x": [lo, hi], "y": [lo, hi]}``)."""
    region = selection.get("region") or {}
    if not region.get("x") or not region.get("y"):
        return points.iloc[0:0]
    (x0, x1), (y0, y1) = sorted(region["x"]), sorted(region["y"])
    return points[points["x"].between(x0, x1) & points["y"].between(y0, y1)]


def show_region(run: dict, inside: pd.DataFrame) -> None:
    """The selected items: thumbnails (images), a table, and a way to open one in Item detail."""
    st.subheader(f"{len(inside)} item(s) in the selected region")
    counts = inside["issue"].value_counts()
    st.caption(" · ".join(f"{name}: {n}" for name, n in counts.items()))
    if run["modality"] == "image":
        items = ui.store().get_items(run["run_id"], list(inside["item_id"].iloc[:THUMBNAILS])).set_index("item_id", drop=False)
        for column, item_id in zip(st.columns(min(THUMBNAILS, max(len(items), 1))), items.index):
            with column:
                ui.show_item(run, items.loc[item_id], px=96)
                st.caption(item_id)
    event = st.dataframe(inside[["item_id", "label", "issues"]], hide_index=True, key="map_items", on_select="rerun",
                         selection_mode="single-row")
    if event.selection.rows:
        item_id = inside["item_id"].iloc[event.selection.rows[0]]
        if st.button(f"Open {item_id} in Item detail", type="primary"):
            st.session_state["detail_item"] = item_id
            st.switch_page("views/item.py")
    else:
        st.caption("Click a row to open that item in Item detail.")


run = ui.current_run()
if run is not None:
    st.title("Embedding map")
    if ui.filter_run_notice(run):
        st.stop()
    left, right = st.columns(2)
    method = left.radio("Projection", list(METHODS), format_func=METHODS.__getitem__, horizontal=True, key="map_method")
    colour = right.radio("Colour by", ["issue", "label"], format_func={"issue": "issue type", "label": "label"}.__getitem__,
                         horizontal=True, key="map_colour")
    points = projection(ui.db_path(), run["run_id"], method)
    if points is None:
        st.info("This run's embeddings are not in the database (the run has no embed stage, or more than "
                f"{ui.MAX_VECTORS:,} items), so there is nothing to map.")
        st.stop()
    st.caption(f"{len(points):,} items drawn (every flagged item, then a sample of the rest). Drag a rectangle to select a region.")
    event = st.altair_chart(chart(points, colour), on_select="rerun", selection_mode="region", key="map_chart", width="stretch")
    inside = in_region(points, (event or {}).get("selection") or {})
    if inside.empty:
        st.info("Select a region of the map to list the items inside it.")
    else:
        show_region(run, inside)

"""winnow triage dashboard: the runs of one database, and the findings of the run you pick.

Reads only through :class:`winnow.store.Store`, which opens the file read-only per call and closes
it, so a dashboard left open never blocks an audit. The database is ``$WINNOW_DB`` (set by
``winnow dashboard --db PATH``), else ``./winnow.duckdb``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st
from PIL import Image, ImageOps

from winnow.errors import WinnowError
from winnow.store import Store

CACHE_TTL_S = 5
LOCK_TIMEOUT_S = 10.0
THUMBNAILS = 12
THUMBNAIL_COLUMNS = 6
THUMBNAIL_PX = 160
SNIPPET_CHARS = 160
FINDING_COLUMNS = ["item_id", "score", "flagged", "reason", "related_item_id", "group_id"]


def _store(db: str) -> Store:
    """A store for ``db`` that waits at most :data:`LOCK_TIMEOUT_S` for a writing audit."""
    return Store(db, lock_timeout=LOCK_TIMEOUT_S)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_runs(db: str) -> pd.DataFrame:
    """Runs, newest first, with ``items`` and ``flagged`` totals taken from their counts JSON."""
    runs = _store(db).list_runs()
    counts = [json.loads(c) if isinstance(c, str) else {} for c in runs["counts"]]
    runs["items"] = [c.get("items") for c in counts]
    runs["flagged"] = [sum((c.get("flagged") or {}).values()) for c in counts]
    return runs


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_run(db: str, run_id: str) -> tuple[dict, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One run's record, per-issue-type counts, items and duplicate pairs."""
    store = _store(db)
    return store.get_run(run_id), store.issue_counts(run_id), store.load_items(run_id), store.pairs(run_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_findings(db: str, run_id: str, issue_type: str, flagged_only: bool) -> pd.DataFrame:
    """Findings of one issue type, highest score first."""
    return _store(db).findings(run_id, issue_type=issue_type, flagged_only=flagged_only)


def thumbnail(uri: str | None) -> Image.Image | None:
    """The image at ``uri`` scaled to fit :data:`THUMBNAIL_PX`, or ``None`` if it cannot be read."""
    if not uri:
        return None
    try:
        with Image.open(uri) as image:
            image.load()
            small = max(image.size) < THUMBNAIL_PX
            method = Image.Resampling.NEAREST if small else Image.Resampling.LANCZOS
            return ImageOps.contain(image.convert("RGB"), (THUMBNAIL_PX, THUMBNAIL_PX), method=method)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def show_runs(runs: pd.DataFrame) -> None:
    """The runs table."""
    st.subheader("Runs")
    st.dataframe(
        runs[["run_id", "dataset", "modality", "status", "started", "items", "flagged"]],
        hide_index=True,
        column_config={
            "run_id": "run",
            "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm"),
            "items": st.column_config.NumberColumn("items", format="%d"),
            "flagged": st.column_config.NumberColumn("flagged", format="%d", help="Flagged findings, all issue types"),
        },
    )


def pick_run(runs: pd.DataFrame) -> str:
    """A select box of runs, the newest first and selected."""
    labels = {r.run_id: f"{r.run_id} · {r.dataset} ({r.modality or '?'}, {r.status})" for r in runs.itertuples()}
    return st.selectbox("Run", list(labels), format_func=labels.__getitem__, key="run")


def show_counts(counts: pd.DataFrame) -> None:
    """One metric tile per issue type: items flagged, with the number scored underneath."""
    if counts.empty:
        st.info("This run has no findings yet.")
        return
    for column, row in zip(st.columns(len(counts)), counts.itertuples()):
        tile = column.container(border=True)
        tile.metric(row.issue_type, int(row.flagged))
        tile.caption(f"flagged of {row.scored} scored")


def pick_issue_type(counts: pd.DataFrame) -> str:
    """A select box of the run's issue types; the first one with flagged items is preselected."""
    types = list(counts["issue_type"])
    flagged = [t for t, n in zip(types, counts["flagged"]) if n > 0]
    start = types.index(flagged[0]) if flagged else 0
    return st.selectbox("Issue type", types, index=start, key="issue_type")


def findings_table(findings: pd.DataFrame, items: pd.DataFrame, modality: str | None) -> pd.DataFrame:
    """The columns a reviewer reads: the finding, its suggested label if any, and the text for text runs."""
    columns = FINDING_COLUMNS + (["suggested_label"] if findings["suggested_label"].notna().any() else [])
    table = findings[columns].copy()
    if modality == "text":
        snippets = items.set_index("item_id")["text"].map(_snippet)
        table.insert(1, "text", table["item_id"].map(snippets))
    return table


def _snippet(text: str | None) -> str | None:
    """``text`` cut to :data:`SNIPPET_CHARS` characters."""
    if text is None or len(text) <= SNIPPET_CHARS:
        return text
    return text[: SNIPPET_CHARS - 1] + "…"


def show_thumbnails(findings: pd.DataFrame, items: pd.DataFrame, issue_type: str) -> None:
    """The top flagged items as images, and a note naming those whose files cannot be read."""
    top = findings[findings["flagged"]].head(THUMBNAILS)
    if top.empty:
        return
    uris = items.set_index("item_id")["uri"]
    shown = [(row, thumbnail(uris.get(row.item_id))) for row in top.itertuples()]
    readable = [(row, image) for row, image in shown if image is not None]
    unreadable = [row.item_id for row, image in shown if image is None]
    st.markdown(f"**Top {len(top)} flagged {issue_type} items**")
    for start in range(0, len(readable), THUMBNAIL_COLUMNS):
        for column, (row, image) in zip(st.columns(THUMBNAIL_COLUMNS), readable[start : start + THUMBNAIL_COLUMNS]):
            column.image(image, caption=f"{row.item_id} · {row.score:.3f}")
    if unreadable:
        st.warning(f"Cannot display {len(unreadable)} (file missing or unreadable): {', '.join(unreadable)}", icon="⚠️")


def show_findings(db: str, run_id: str, counts: pd.DataFrame, items: pd.DataFrame, modality: str | None) -> None:
    """Issue-type and flagged-only filters, the findings table and, for images, thumbnails."""
    st.subheader("Findings")
    if counts.empty:
        return
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    with left:
        issue_type = pick_issue_type(counts)
    with right:
        flagged_only = st.checkbox("flagged only", value=True, key="flagged_only")
    findings = load_findings(db, run_id, issue_type, flagged_only)
    st.caption(f"{len(findings)} {'flagged ' if flagged_only else ''}{issue_type} findings, highest score first")
    st.dataframe(
        findings_table(findings, items, modality),
        hide_index=True,
        column_config={
            "item_id": st.column_config.TextColumn("item_id", width="medium"),
            "score": st.column_config.NumberColumn("score", format="%.3f", width="small"),
            "flagged": st.column_config.CheckboxColumn("flagged", width="small"),
            "reason": st.column_config.TextColumn("reason", width="large"),
            "text": st.column_config.TextColumn("text", width="large"),
        },
    )
    if modality == "image":
        show_thumbnails(findings, items, issue_type)


def show_pairs(pairs: pd.DataFrame) -> None:
    """The run's duplicate pairs, most similar first, in an expander."""
    with st.expander(f"Duplicate pairs ({len(pairs)})"):
        st.dataframe(
            pairs[["item_a", "item_b", "similarity", "method"]],
            hide_index=True,
            column_config={"similarity": st.column_config.NumberColumn("similarity", format="%.4f")},
        )


def render(db: str) -> None:
    """The whole page below the header."""
    runs = load_runs(db)
    if runs.empty:
        st.info(f"{db} has no runs yet; run `winnow audit SOURCE --db {db}` first.")
        return
    show_runs(runs)
    run_id = pick_run(runs)
    run, counts, items, pairs = load_run(db, run_id)
    if run["status"] != "completed":
        st.warning(f"Run {run_id} is {run['status']}" + (f": {run['error']}" if run.get("error") else "."))
    show_counts(counts)
    show_findings(db, run_id, counts, items, run["modality"])
    show_pairs(pairs)


def main() -> None:
    """Header with the database path, then the page, or the reason it cannot be shown."""
    st.set_page_config(page_title="winnow triage", layout="wide")
    db = str(Store().path)
    st.title("winnow triage")
    st.caption(f"Database: `{Path(db).resolve()}`")
    try:
        render(db)
    except WinnowError as exc:
        st.info(str(exc))


main()

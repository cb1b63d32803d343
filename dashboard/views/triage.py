"""Triage queue: one issue type's findings, the unsure band around the threshold first, then
everything ranked by score (or re-ranked by the reviewer's decisions), filtered and paged in the
store, with decisions for one item or a selection."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import evidence, ui
from dashboard.evidence import Span
from dashboard.unsure import Band, unsure_band
from winnow.findings import RUN_ITEM_ID
from winnow.store import Store

if TYPE_CHECKING:
    from detectors.rerank import ReviewCurve

PAGE_SIZES = (24, 48, 96)
GRID_COLUMNS = 6
UNSURE, RANKED = "unsure", "ranked"
NOT_FLAGGED = "not flagged: the score did not pass the threshold"
# what a decision says about the finding: a real issue (confirmed, relabelled, kept anyway) or not
OUTCOME = {"confirmed": 1, "relabel": 1, "keep": 1, "dismissed": 0}
SIMULATED_BATCHES = 20  # the replay behind "reviews saved" retrains at most this many times
SHOWN_TEXTS = 3  # selected texts shown whole below the table


def pick_issue_type(counts: pd.DataFrame, key: str = "queue_issue") -> str:
    """The run's issue types (flagged of scored); the one with most flagged items is preselected."""
    types = list(counts["issue_type"])
    if st.session_state.get(key) not in types:
        most = counts.sort_values("flagged", ascending=False, kind="stable")["issue_type"].iloc[0]
        st.session_state[key] = most
    numbers = {r.issue_type: f"{r.issue_type} ({r.flagged} flagged of {r.scored})" for r in counts.itertuples()}
    return st.selectbox("Issue type", types, format_func=numbers.__getitem__, key=key)


@st.cache_data(show_spinner=False, max_entries=64)
def load_band(db: str, run_id: str, issue_type: str, version: str) -> tuple[Band | None, int]:
    """The unsure band of one queue (see :mod:`dashboard.unsure`) and how many of its items are
    undecided; ``version`` (``Store.runs_with_versions``) keys the cache."""
    found = Store(db, lock_timeout=ui.LOCK_TIMEOUT_S).score_distribution(run_id, issue_type)
    scores = found["scores"]
    band = unsure_band(scores, found["flagged"], found["threshold"]) if len(scores) >= 3 else None
    if band is None:
        return None, 0
    return band, int(((scores >= band.low) & (scores <= band.high) & ~found["decided"]).sum())


def pick_queue(issue_type: str, band: Band | None, undecided_in_band: int) -> str:
    """The unsure band (preselected while it has undecided items) or the whole ranked queue."""
    if band is None:
        st.caption("No unsure band for this issue type: no item scores near its threshold.")
        return RANKED
    key = f"queue_mode_{issue_type}"
    if key not in st.session_state:
        st.session_state[key] = UNSURE if undecided_in_band else RANKED
    names = {UNSURE: f"Unsure band first ({undecided_in_band} undecided of {band.size} near the threshold)",
             RANKED: "Everything, highest score first"}
    mode = st.radio("Queue", [UNSURE, RANKED], format_func=names.__getitem__, horizontal=True, key=key)
    if mode == UNSURE:
        st.caption(band.describe() + " Decide these first: they are where the detector is least sure.")
    return mode


def filters(run: dict, issue_type: str, band: Band | None) -> dict:
    """Flagged only, undecided only, label, score range and page size, as findings_page arguments;
    in the unsure band the band sets the score range (and spans both sides of the flag)."""
    facets = ui.facets(run, issue_type)
    a, b, c, d, e = st.columns([3, 3, 4, 6, 2], vertical_alignment="bottom")
    if band is None:
        flagged_only = a.checkbox("flagged only", value=True, key="queue_flagged")
    else:
        flagged_only = False
        a.caption("flagged or not (the band spans both sides)")
    undecided_only = b.checkbox("undecided only", value=False, key="queue_undecided")
    label = c.selectbox("Label", ["(any)"] + facets["labels"], key="queue_label")
    lo, hi = facets["score_min"], facets["score_max"]
    score = (None, None)
    if band is not None:
        score = (band.low, band.high)
        d.caption(f"score {band.low:.3f}–{band.high:.3f} (the band)")
    elif lo is not None and hi is not None and hi > lo:
        score = d.slider("Score range", min_value=float(lo), max_value=float(hi), value=(float(lo), float(hi)),
                         key=f"queue_score_{issue_type}", format="%.3f")
        score = (None if score[0] <= lo else score[0], None if score[1] >= hi else score[1])
    page_size = e.selectbox("Per page", PAGE_SIZES, key="queue_page_size")
    return {"flagged_only": flagged_only, "undecided_only": undecided_only, "label": None if label == "(any)" else label,
            "score_min": score[0], "score_max": score[1], "limit": page_size}


# -- re-ranking by the reviewer's decisions ---------------------------------------------------------


@st.cache_resource(show_spinner="Preparing the queue's embeddings…", max_entries=2)
def queue_features(db: str, run_id: str, issue_type: str) -> tuple[pd.DataFrame, np.ndarray] | None:
    """Every embedded finding of one issue type (``item_id, score``) and its review features
    (:func:`detectors.rerank.review_features`), row-aligned; ``None`` without the run's vectors."""
    from detectors.rerank import review_features  # scikit-learn: loaded only when re-ranking is asked for

    loaded = ui.run_vectors(db, run_id)
    if loaded is None:
        return None
    embedded, vectors = loaded
    row_of = pd.Series(np.arange(len(embedded)), index=embedded["item_id"])
    findings = Store(db, lock_timeout=ui.LOCK_TIMEOUT_S).findings(run_id, issue_type=issue_type)
    findings = findings[findings["item_id"].isin(row_of.index)].reset_index(drop=True)[["item_id", "score"]]
    return findings, review_features(vectors[row_of[findings["item_id"]].to_numpy()])


def queue_outcomes(db: str, run_id: str, issue_type: str, item_ids: pd.Series) -> np.ndarray:
    """1 / 0 / -1 per item: a real issue (confirmed, relabelled, kept anyway), dismissed, undecided."""
    decisions = Store(db, lock_timeout=ui.LOCK_TIMEOUT_S).decisions_for(run_id)
    decisions = decisions[decisions["issue_type"] == issue_type].drop_duplicates("item_id").set_index("item_id")["decision"]
    return item_ids.map(decisions.map(OUTCOME)).fillna(-1).to_numpy(np.float64)


@st.cache_resource(show_spinner="Re-ranking by your decisions…", max_entries=4)
def rerank_queue(db: str, run_id: str, issue_type: str, decided: tuple) -> dict | None:
    """Blended scores (``item_id`` → score) of every embedded finding of one issue type, with the
    model's weight and how many decisions it learnt from (see :mod:`detectors.rerank`); ``decided``
    (count, newest time) keys the cache. ``None`` without the run's vectors."""
    from detectors.rerank import rerank

    prepared = queue_features(db, run_id, issue_type)
    if prepared is None:
        return None
    findings, features = prepared
    result = rerank(features, findings["score"].to_numpy(), queue_outcomes(db, run_id, issue_type, findings["item_id"]))
    return {"scores": pd.Series(result.scores, index=findings["item_id"]), "active": result.active, "weight": result.weight,
            "trained_on": result.trained_on}


@st.cache_resource(show_spinner="Replaying your decisions…", max_entries=4)
def replay_decisions(db: str, run_id: str, issue_type: str, decided: tuple) -> ReviewCurve | None:
    """The review of the decided items replayed in detector order and re-ranked (see
    :func:`detectors.rerank.simulate_review`), retraining at most :data:`SIMULATED_BATCHES` times."""
    from detectors.rerank import DEFAULT_BATCH, simulate_review

    prepared = queue_features(db, run_id, issue_type)
    if prepared is None:
        return None
    findings, features = prepared
    outcomes = queue_outcomes(db, run_id, issue_type, findings["item_id"])
    known = outcomes >= 0
    batch = max(DEFAULT_BATCH, -(-int(known.sum()) // SIMULATED_BATCHES))
    return simulate_review(features[known], findings["score"].to_numpy()[known], outcomes[known] == 1, batch=batch)


def decided_signature(run: dict, issue_type: str) -> tuple:
    """(how many decisions, the newest) of this queue: re-rank again only when they change."""
    decisions = ui.run_decisions(run)
    mine = decisions[decisions["issue_type"] == issue_type]
    return len(mine), str(mine["at"].max()) if len(mine) else ""


def show_reviews_saved(curve: ReviewCurve) -> None:
    """How many fewer items the re-ranked order needs to find the issues the reviewer confirmed."""
    import altair as alt  # only this chart needs it

    from detectors.rerank import reviews_to_find

    found = curve.issues
    needed_detector = reviews_to_find(curve.detector, found)
    saved = curve.saved()
    a, b = st.columns([1, 3])
    a.metric("Reviews saved", saved, help="Replayed on your decisions: see the caption.")
    b.caption(f"Replaying your {len(curve.detector)} decisions: to find the {found} real issues among them, the detector's order needs "
              f"{needed_detector} reviews; re-ranking after every {curve.batch} reviews needs {needed_detector - saved}.")
    with st.expander("Issues found per review, detector order vs re-ranked"):
        frame = pd.DataFrame({"reviews": np.arange(1, len(curve.detector) + 1), "detector order": curve.detector, "re-ranked": curve.reranked})
        long = frame.melt("reviews", var_name="order", value_name="issues found")
        st.altair_chart(alt.Chart(long).mark_line().encode(x="reviews:Q", y="issues found:Q", color="order:N").properties(height=220), width="stretch")


def reranked_page(run: dict, issue_type: str, args: dict, offset: int) -> tuple[pd.DataFrame, int] | None:
    """The page of the queue with undecided items in re-ranked order (decided ones after them),
    or ``None`` (with the reason shown) when there is nothing to re-rank with."""
    decided = decided_signature(run, issue_type)
    found = rerank_queue(ui.db_path(), run["run_id"], issue_type, decided)
    if found is None:
        st.info("Re-ranking needs the run's embeddings, which are not in the database (or the run is too large).")
        return None
    if not found["active"]:
        st.info("Re-ranking starts once you have confirmed and dismissed at least two items each in this queue; "
                "until then the queue is in score order.")
        return None
    st.caption(f"Undecided items ordered by a model trained on your {found['trained_on']} decisions, weighted "
               f"{found['weight']:.0%} against the detector's rank (the weight that ranked your held-out decisions best); "
               "decided items follow.")
    signature = (run["run_id"], issue_type, decided)
    if st.session_state.get("replayed") == signature or st.button("Estimate reviews saved", key="replay",
                                                                  help="Replays your decisions in detector order and re-ranked."):
        st.session_state["replayed"] = signature
        curve = replay_decisions(ui.db_path(), run["run_id"], issue_type, decided)
        if curve is not None:
            show_reviews_saved(curve)
    store = ui.store()
    _, total = store.findings_page(run["run_id"], issue_type, **{**args, "limit": 0})
    everything, _ = store.findings_page(run["run_id"], issue_type, **{**args, "limit": total})
    blended = everything["item_id"].map(found["scores"]).fillna(-1.0)
    everything = everything.assign(_undecided=everything["decision"].isna(), _blended=blended)
    ordered = everything.sort_values(["_undecided", "_blended", "score"], ascending=False, kind="stable")
    return ordered.iloc[offset: offset + args["limit"]].drop(columns=["_undecided", "_blended"]), total


# -- showing a page -----------------------------------------------------------------------------------


def image_grid(run: dict, page: pd.DataFrame, issue_type: str) -> list[str]:
    """Thumbnails with score, label, reason and decision, a tick box under each; returns the ticked."""
    nonce = ui.selection_nonce()
    keys = {row.item_id: f"pick_{nonce}_{issue_type}_{row.item_id}" for row in page.itertuples()}
    ui.page_selection_buttons(list(keys), list(keys.values()))
    selected = []
    rows = list(page.itertuples())
    for start in range(0, len(rows), GRID_COLUMNS):
        for column, row in zip(st.columns(GRID_COLUMNS), rows[start : start + GRID_COLUMNS]):
            with column.container(border=True):
                image = None if row.item_id == RUN_ITEM_ID else ui.open_image(row.uri, run)
                if row.item_id == RUN_ITEM_ID:
                    st.caption("run-level finding: about the whole batch, not one image")
                elif image is None:
                    st.caption("⚠️ cannot display")
                else:
                    st.image(ui.fit(image), width="stretch")
                decision = ui.decision_text(row)
                st.caption(f"**{row.item_id}** · {row.score:.3f}" + (" · flagged" if row.flagged else "")
                           + (f"  \nlabel {row.label}" if row.label else "")
                           + (f"  \n✔ {decision}" if decision else ""))
                reason = row.reason if isinstance(row.reason, str) and row.reason else NOT_FLAGGED
                st.caption(ui.snippet(reason, 90), help=reason)
                if st.checkbox("select", key=keys[row.item_id]):
                    selected.append(row.item_id)
    return selected


def text_evidence(run: dict, page: pd.DataFrame, issue_type: str) -> list[list[Span]]:
    """Per row of a text queue's page, the spans of its text that are the finding's evidence
    (near duplicates against the text of the copy they were matched to)."""
    related: dict[str, str] = {}
    if issue_type == "near_duplicate":
        wanted = tuple(sorted({r for r in page["related_item_id"] if isinstance(r, str)}))
        related = ui.texts_of(run, wanted)
    return [evidence.text_spans(text, issue_type, detail, related.get(rel) if isinstance(rel, str) else None)
            for text, detail, rel in zip(page["text"], page["detail"], page["related_item_id"])]


def marked_cells(table: pd.DataFrame, failing: list[set[str]]) -> pd.DataFrame:
    """The CSS of each cell of ``table``: the failing cells of each row (columns ``· name``) marked."""
    marks = pd.DataFrame("", index=table.index, columns=table.columns)
    for row, columns in zip(table.index, failing):
        for column in columns:
            marks.loc[row, f"· {column}"] = ui.FAILING_CELL
    return marks


def rows_table(run: dict, page: pd.DataFrame, issue_type: str) -> list[str]:
    """Texts (a snippet with the evidence in « ») or table rows (the failing cells marked) with
    score, reason and decision, multi-row selectable; returns the selected."""
    table = pd.DataFrame({
        "item_id": page["item_id"],
        "score": page["score"],
        "flagged": page["flagged"],
        "label": page["label"],
    })
    if page["suggested_label"].notna().any():
        table["suggested"] = page["suggested_label"]
    spans: list[list[Span]] = [[] for _ in range(len(page))]
    if run["modality"] == "text":
        spans = text_evidence(run, page, issue_type)
        table["text"] = [evidence.marked_snippet(t, s, ui.SNIPPET_CHARS) if isinstance(t, str) else None
                         for t, s in zip(page["text"], spans)]
    table["reason"] = page["reason"].fillna(NOT_FLAGGED)
    table["decision"] = [ui.decision_text(r) for r in page.to_dict("records")]
    rows = ui.table_rows(run, page)
    failing: list[set[str]] = []
    if rows is not None:
        failing = [evidence.failing_columns(issue_type, d, list(rows.columns)) for d in page["detail"]]
        table = pd.concat([table.reset_index(drop=True), rows.reset_index(drop=True).add_prefix("· ")], axis=1)
    table = table.reset_index(drop=True)
    whole_page = ui.page_selection_buttons(list(table["item_id"]))
    shown = table.style.apply(lambda _: marked_cells(table, failing), axis=None) if any(failing) else table
    event = st.dataframe(
        shown,
        hide_index=True,
        key=f"queue_table_{ui.selection_nonce()}_{issue_type}",
        on_select="rerun",
        selection_mode="multi-row",
        column_config={
            "score": st.column_config.NumberColumn("score", format="%.3f", width="small"),
            "flagged": st.column_config.CheckboxColumn("flagged", width="small"),
            "text": st.column_config.TextColumn("text", width="large", help="« » mark the evidence: the parts of the text the finding is about"),
            "reason": st.column_config.TextColumn("reason", width="large"),
        },
    )
    if any(failing):
        st.caption("Cells that failed a check (or could not be read) are marked in red.")
    ticked = {table["item_id"].iloc[i] for i in event.selection.rows} | set(whole_page)
    if whole_page:
        st.caption(f"All {len(whole_page)} rows of this page are selected (D clears).")
    picked = [i for i in table["item_id"] if i in ticked]
    if run["modality"] == "text":
        show_selected_texts(page, spans, picked)
    return picked


def show_selected_texts(page: pd.DataFrame, spans: list[list[Span]], picked: list[str]) -> None:
    """The whole text of the first few selected items, their evidence highlighted."""
    rows = {item_id: k for k, item_id in enumerate(page["item_id"])}
    chosen = [i for i in picked if isinstance(page["text"].iloc[rows[i]], str)][:SHOWN_TEXTS]
    for item_id in chosen:
        k = rows[item_id]
        with st.container(border=True):
            st.markdown(f"**{item_id}** · {page['reason'].iloc[k] if isinstance(page['reason'].iloc[k], str) else NOT_FLAGGED}")
            st.markdown(evidence.highlighted_html(page["text"].iloc[k], spans[k]), unsafe_allow_html=True)
    if len(picked) > len(chosen):
        st.caption(f"The whole text is shown for the first {len(chosen)} selected items.")


def open_detail(item_id: str) -> None:
    st.session_state["detail_item"] = item_id
    st.switch_page("views/item.py")


run = ui.current_run()
if run is not None:
    st.title("Triage queue")
    if ui.filter_run_notice(run):
        st.stop()
    counts = ui.run_counts(run)
    if counts.empty:
        st.info("This run has no findings yet.")
        st.stop()
    issue_type = pick_issue_type(counts)
    band, undecided_in_band = load_band(ui.db_path(), run["run_id"], issue_type, run["version"])
    mode = pick_queue(issue_type, band, undecided_in_band)
    args = filters(run, issue_type, band if mode == UNSURE else None)
    reranking = st.toggle("Re-rank undecided items by my decisions", key="queue_rerank",
                          help="A small model on the embeddings learns from what you confirmed and dismissed in this queue "
                               "(active learning) and moves the items most like your confirmed ones to the front.")
    signature = (run["run_id"], issue_type, mode, reranking, *args.values())
    slot = st.container()
    offset = ui.page_offset("queue_page", args["limit"], signature)
    found = reranked_page(run, issue_type, args, offset) if reranking else None
    page, total = found if found is not None else ui.queue_page(run, issue_type, offset, **args)
    ui.pager(slot, total, args["limit"], "queue_page")
    shown = f"{offset + 1}–{offset + len(page)}" if len(page) else "none"
    order = "re-ranked by your decisions" if found is not None else "highest score first"
    where = " in the unsure band" if mode == UNSURE else ""
    st.caption(f"{total} matching {issue_type} findings{where}, {order} · showing {shown}")
    ui.show_flash()
    if page.empty:
        st.info("Nothing matches these filters." + (" The unsure band is done: switch to the whole queue." if mode == UNSURE else ""))
        st.stop()
    selected = image_grid(run, page, issue_type) if run["modality"] == "image" else rows_table(run, page, issue_type)
    suggested = {r.item_id: r.suggested_label for r in page.itertuples() if isinstance(r.suggested_label, str)}
    labels = ui.facets(run, issue_type)["labels"]
    ui.decision_form(run, issue_type, selected, labels=labels, suggested=suggested, key="queue_decide")
    if len(selected) == 1 and st.button(f"Open {selected[0]} in Item detail"):
        open_detail(selected[0])

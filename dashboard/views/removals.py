"""Removals: what a ``winnow filter`` run removed — per-stage counts, then every removed document
in corpus order with its stage, reason, the kept document it duplicates and the evidence, paged
in the store; a row opens the document itself (a word diff against the kept copy for duplicates)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import evidence, ui
from dashboard.filter_runs import (
    STAGE_TEXT,
    Found,
    describe_detail,
    find_document,
    read_line,
    stage_order,
)
from winnow.store import Store
from winnow.store.removals import removal_counts

PAGE_SIZES = (50, 10, 200)
EVERY_STAGE = "(every stage)"
DUPLICATE_STAGES = ("exact", "minhash", "semantic")


@st.cache_data(show_spinner=False, max_entries=16)
def load_stage_counts(db: str, run_id: str, version: str) -> dict[str, int]:
    """Removed documents per stage of a filter run."""
    return removal_counts(Store(db, lock_timeout=ui.LOCK_TIMEOUT_S), run_id)


@st.cache_data(show_spinner=False, max_entries=64)
def load_removals(db: str, run_id: str, version: str, stage: str | None, limit: int, offset: int) -> tuple[pd.DataFrame, int]:
    """One page of a filter run's removals (see ``Store.removals_page``)."""
    return Store(db, lock_timeout=ui.LOCK_TIMEOUT_S).removals_page(run_id, stage=stage, limit=limit, offset=offset)


@st.cache_data(show_spinner="Reading the documents from the shards…", max_entries=32)
def load_documents(run: dict, shard: str, line: int, related: str | None) -> tuple[Found | None, Found | None]:
    """The removed document at ``shard``/``line`` and the kept document ``related`` (or ``None``s)."""
    return read_line(run, shard, line), (find_document(run, related) if related else None)


def stage_tiles(run: dict, counts: dict[str, int]) -> list[str]:
    """One tile per stage, in pipeline order: documents removed and their share of those read."""
    stages = stage_order(run, counts)
    read = (run.get("counts") or {}).get("items") or 0
    for column, stage in zip(st.columns(max(len(stages), 1)), stages):
        tile = column.container(border=True)
        tile.metric(stage, f"{counts.get(stage, 0):,}")
        tile.caption(STAGE_TEXT.get(stage, stage) + (f" · {counts.get(stage, 0) / read:.1%} of documents read" if read else ""))
    return stages


def removals_table(page: pd.DataFrame, key: str) -> int | None:
    """The page of removals; returns the position of the row the reviewer clicked, if any."""
    table = pd.DataFrame({
        "document": page["doc_id"],
        "stage": page["stage"],
        "kept document": page["related_doc_id"],
        "evidence": [describe_detail(d) for d in page["detail"]],
        "shard": page["shard"],
        "line": page["line"].astype("int64"),
        "reason": page["reason"],
    })
    event = st.dataframe(table, hide_index=True, key=key, on_select="rerun", selection_mode="single-row",
                         column_config={"reason": st.column_config.TextColumn("reason", width="large")})
    rows = event.selection.rows
    return rows[0] if rows else None


def show_document(run: dict, row: pd.Series) -> None:
    """One removed document: where it was, why it went, and its text — for a duplicate, a word
    diff against the kept document it matched."""
    related = row["related_doc_id"] if isinstance(row["related_doc_id"], str) else None
    removed, kept = load_documents(run, row["shard"], int(row["line"]), related)
    with st.container(border=True):
        st.markdown(f"**{row['doc_id']}** · `{row['shard']}` line {int(row['line'])} · removed by **{row['stage']}**"
                    + (f" as a copy of **{related}**" if related else ""))
        st.caption(row["reason"] or "")
        if removed is None:
            st.warning(f"{row['shard']} is no longer among the shards `{run['source']}` matches (or has fewer lines), "
                       "so the document cannot be shown.")
            return
        if removed.text is None:
            st.error(f"Unreadable line: {removed.error}", icon="⚠️")
            return
        if related and row["stage"] in DUPLICATE_STAGES and kept is not None and kept.text is not None:
            st.caption(f"Word diff, kept document {related} (`{kept.shard}` line {kept.line}) → this one: "
                       "struck-through words only the kept one has, green ones only this one.")
            st.markdown(ui.text_diff_html(kept.text, removed.text), unsafe_allow_html=True)
            return
        if related and kept is None:
            st.caption(f"The kept document {related} was not found among this run's shards: an earlier filter run into "
                       "the same output folder may have kept it.")
        spans = evidence.quality_spans(removed.text, list(evidence.parse_detail(row["detail"]).get("fired") or []))
        st.markdown(evidence.highlighted_html(removed.text, spans), unsafe_allow_html=True)
        if spans:
            st.caption("Highlighted: the parts of the text the fired rules measured.")


run = ui.current_run()
if run is not None:
    st.title("Removals")
    if not ui.is_filter_run(run):
        st.info(f"Run {run['run_id']} is an audit, not a `winnow filter` run: its results are findings (Triage queue, "
                "Duplicates, Label errors). Pick a filter run in the sidebar to see what it removed.")
        st.stop()
    summary = run.get("counts") or {}
    counts = load_stage_counts(ui.db_path(), run["run_id"], run["version"])
    read = f"{summary['items']:,} documents read, {summary.get('kept', 0):,} kept, " if isinstance(summary.get("items"), int) else ""
    st.caption(f"`winnow filter` over `{run['source']}`: {read}{sum(counts.values()):,} removed. The stages ran in this order; "
               "a document removed by one is not seen by the later ones.")
    stages = stage_tiles(run, counts)
    options = [EVERY_STAGE] + [s for s in stages if counts.get(s)]
    if st.session_state.get("removals_stage") not in options:
        st.session_state["removals_stage"] = EVERY_STAGE
    left, right = st.columns([4, 1])
    stage = left.selectbox("Stage", options, key="removals_stage",
                           format_func=lambda s: f"{s} ({counts[s]:,})" if s in counts else f"{s} ({sum(counts.values()):,})")
    page_size = right.selectbox("Per page", PAGE_SIZES, key="removals_page_size")
    chosen = None if stage == EVERY_STAGE else stage
    slot = st.container()
    offset = ui.page_offset("removals_page", page_size, (run["run_id"], chosen, page_size))
    page, total = load_removals(ui.db_path(), run["run_id"], run["version"], chosen, page_size, offset)
    ui.pager(slot, total, page_size, "removals_page")
    shown = f"{offset + 1}–{offset + len(page)}" if len(page) else "none"
    st.caption(f"{total:,} removed documents{'' if chosen is None else f' of stage {chosen}'}, in corpus order (shard, line) · "
               f"showing {shown}. Click a row to read the document.")
    if page.empty:
        st.info("This run removed nothing." if not counts else "Nothing on this page.")
        st.stop()
    picked = removals_table(page, key=f"removals_table_{run['run_id']}_{chosen}_{offset}")
    if picked is None:
        st.caption(f"Every removal is also in the run's manifest `{summary.get('manifest', '?')}` (and on the Export page).")
    else:
        show_document(run, page.iloc[picked])

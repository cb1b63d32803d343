"""Triage queue: one issue type's findings ranked by score, filtered and paged in the store, with
decisions for one item or a selection."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import ui
from winnow.findings import RUN_ITEM_ID

PAGE_SIZES = (24, 48, 96)
GRID_COLUMNS = 6


def pick_issue_type(counts: pd.DataFrame, key: str = "queue_issue") -> str:
    """The run's issue types (flagged of scored); the one with most flagged items is preselected."""
    types = list(counts["issue_type"])
    if st.session_state.get(key) not in types:
        most = counts.sort_values("flagged", ascending=False, kind="stable")["issue_type"].iloc[0]
        st.session_state[key] = most
    numbers = {r.issue_type: f"{r.issue_type} ({r.flagged} flagged of {r.scored})" for r in counts.itertuples()}
    return st.selectbox("Issue type", types, format_func=numbers.__getitem__, key=key)


def filters(run: dict, issue_type: str) -> dict:
    """Flagged only, undecided only, label, score range and page size, as findings_page arguments."""
    facets = ui.load_facets(ui.db_path(), run["run_id"], issue_type)
    a, b, c, d, e = st.columns([1, 1, 2, 3, 1], vertical_alignment="bottom")
    flagged_only = a.checkbox("flagged only", value=True, key="queue_flagged")
    undecided_only = b.checkbox("undecided only", value=False, key="queue_undecided")
    label = c.selectbox("Label", ["(any)"] + facets["labels"], key="queue_label")
    lo, hi = facets["score_min"], facets["score_max"]
    score = (None, None)
    if lo is not None and hi is not None and hi > lo:
        score = d.slider("Score range", min_value=float(lo), max_value=float(hi), value=(float(lo), float(hi)),
                         key=f"queue_score_{issue_type}", format="%.3f")
        score = (None if score[0] <= lo else score[0], None if score[1] >= hi else score[1])
    page_size = e.selectbox("Per page", PAGE_SIZES, key="queue_page_size")
    return {"flagged_only": flagged_only, "undecided_only": undecided_only, "label": None if label == "(any)" else label,
            "score_min": score[0], "score_max": score[1], "limit": page_size}


def image_grid(run: dict, page: pd.DataFrame, issue_type: str) -> list[str]:
    """Thumbnails with score, label, reason and decision, a tick box under each; returns the ticked."""
    nonce = ui.selection_nonce()
    select_all = st.checkbox("select all on this page", key=f"queue_all_{nonce}")
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
                if row.reason:
                    st.caption(ui.snippet(row.reason, 90), help=row.reason)
                if st.checkbox("select", key=f"pick_{nonce}_{issue_type}_{row.item_id}", value=select_all):
                    selected.append(row.item_id)
    return selected


def rows_table(run: dict, page: pd.DataFrame, issue_type: str) -> list[str]:
    """Texts or table rows with score, reason and decision, multi-row selectable; returns the selected."""
    table = pd.DataFrame({
        "item_id": page["item_id"],
        "score": page["score"],
        "flagged": page["flagged"],
        "label": page["label"],
    })
    if page["suggested_label"].notna().any():
        table["suggested"] = page["suggested_label"]
    if run["modality"] == "text":
        table["text"] = page["text"].map(ui.snippet)
    table["reason"] = page["reason"]
    table["decision"] = [ui.decision_text(r) for r in page.to_dict("records")]
    rows = ui.table_rows(run, page)
    if rows is not None:
        table = pd.concat([table.reset_index(drop=True), rows.reset_index(drop=True).add_prefix("· ")], axis=1)
    event = st.dataframe(
        table,
        hide_index=True,
        key=f"queue_table_{ui.selection_nonce()}_{issue_type}",
        on_select="rerun",
        selection_mode="multi-row",
        column_config={
            "score": st.column_config.NumberColumn("score", format="%.3f", width="small"),
            "flagged": st.column_config.CheckboxColumn("flagged", width="small"),
            "text": st.column_config.TextColumn("text", width="large"),
            "reason": st.column_config.TextColumn("reason", width="large"),
        },
    )
    return [table["item_id"].iloc[i] for i in event.selection.rows]


def open_detail(item_id: str) -> None:
    st.session_state["detail_item"] = item_id
    st.switch_page("views/item.py")


run = ui.current_run()
if run is not None:
    st.title("Triage queue")
    counts = ui.load_counts(ui.db_path(), run["run_id"])
    if counts.empty:
        st.info("This run has no findings yet.")
        st.stop()
    issue_type = pick_issue_type(counts)
    args = filters(run, issue_type)
    signature = (run["run_id"], issue_type, *args.values())
    store = ui.store()
    slot = st.container()
    offset = ui.page_offset("queue_page", args["limit"], signature)
    page, total = store.findings_page(run["run_id"], issue_type, **args, offset=offset)
    ui.pager(slot, total, args["limit"], "queue_page")
    shown = f"{offset + 1}–{offset + len(page)}" if len(page) else "none"
    st.caption(f"{total} matching {issue_type} findings, highest score first · showing {shown}")
    ui.show_flash()
    if page.empty:
        st.info("Nothing matches these filters.")
        st.stop()
    selected = image_grid(run, page, issue_type) if run["modality"] == "image" else rows_table(run, page, issue_type)
    suggested = {r.item_id: r.suggested_label for r in page.itertuples() if isinstance(r.suggested_label, str)}
    labels = ui.load_facets(ui.db_path(), run["run_id"], issue_type)["labels"]
    ui.decision_form(run, issue_type, selected, labels=labels, suggested=suggested, key="queue_decide")
    if len(selected) == 1 and st.button(f"Open {selected[0]} in Item detail"):
        open_detail(selected[0])

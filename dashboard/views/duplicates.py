"""Duplicates: each flagged copy next to its group's keeper, at the same scale or as a text diff,
with similarity and method."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import ui

PAGE_SIZE = 10
PAIR_PX = 220


def pair_evidence(pairs: pd.DataFrame, a: str, b: str, detail: str | None) -> tuple[float | None, str]:
    """Similarity and method of the stored pair (a, b) in either order, else from the finding's detail."""
    match = pairs[((pairs["item_a"] == a) & (pairs["item_b"] == b)) | ((pairs["item_a"] == b) & (pairs["item_b"] == a))]
    if len(match):
        return float(match["similarity"].iloc[0]), ", ".join(sorted(set(match["method"])))
    evidence = json.loads(detail or "{}")
    return evidence.get("similarity"), "content hash" if "content_hash" in evidence else "?"


def show_pair(run: dict, row, keeper, member, similarity, method, nonce: int, issue_type: str) -> bool:
    """One duplicate next to its keeper; returns whether its tick box is ticked."""
    with st.container(border=True):
        decision = ui.decision_text(row)
        sim = "?" if similarity is None else f"{similarity:.4f}"
        st.markdown(f"**{row.item_id}** duplicates **{row.related_item_id}** · similarity {sim} · method {method} · "
                    f"group `{row.group_id}`" + (f" · decision: {decision}" if decision else ""))
        st.caption(row.reason or "")
        left, right = st.columns(2)
        if run["modality"] == "image":
            images = ui.same_scale([ui.open_image(keeper.get("uri") if keeper is not None else None, run),
                                    ui.open_image(member.get("uri") if member is not None else None, run)], PAIR_PX)
            for column, title, item, image in ((left, "keeper ✓", keeper, images[0]), (right, "duplicate", member, images[1])):
                with column:
                    st.markdown(f"*{title}* — {item['item_id'] if item is not None else '?'}"
                                + (f" · label {item['label']}" if item is not None and item.get("label") else ""))
                    ui.show_item(run, item, px=PAIR_PX, image=image)
        elif run["modality"] == "text":
            for column, title, item in ((left, "keeper ✓", keeper), (right, "duplicate", member)):
                with column:
                    st.markdown(f"*{title}* — {item['item_id'] if item is not None else '?'}")
                    ui.show_item(run, item)
            diff = ui.text_diff_html(keeper.get("text") if keeper is not None else "", member.get("text") if member is not None else "")
            st.markdown(f"diff (keeper → duplicate): {diff}", unsafe_allow_html=True)
        else:
            both = pd.DataFrame([keeper, member]) if keeper is not None and member is not None else None
            rows = ui.table_rows(run, both) if both is not None else None
            if rows is not None:
                rows.insert(0, "role", ["keeper ✓", "duplicate"])
                differs = [c for c in rows.columns[1:] if rows[c].iloc[0] != rows[c].iloc[1]]
                st.dataframe(rows.style.map(lambda _: "background-color: #fff3b0", subset=differs) if differs else rows)
                st.caption("cells that differ are highlighted" if differs else "every cell is equal")
            else:
                st.caption("(rows unavailable)")
        return st.checkbox("select", key=f"dup_{nonce}_{issue_type}_{row.item_id}")


run = ui.current_run()
if run is not None:
    st.title("Duplicates")
    counts = ui.load_counts(ui.db_path(), run["run_id"]).set_index("issue_type")
    types = [t for t in ui.DUPLICATE_TYPES if t in counts.index]
    if not types:
        st.info("This run has no duplicate findings.")
        st.stop()
    issue_type = st.radio("Kind", types, horizontal=True, key="dup_issue",
                          format_func=lambda t: f"{t} ({int(counts.loc[t, 'flagged'])} flagged)")
    undecided = st.checkbox("undecided only", key="dup_undecided")
    store = ui.store()
    slot = st.container()
    offset = ui.page_offset("dup_page", PAGE_SIZE, (run["run_id"], issue_type, undecided))
    page, total = store.findings_page(run["run_id"], issue_type, flagged_only=True, undecided_only=undecided,
                                      limit=PAGE_SIZE, offset=offset)
    ui.pager(slot, total, PAGE_SIZE, "dup_page")
    st.caption(f"{total} flagged copies; each is shown next to the keeper of its group (the copy that stays). "
               "Confirm a copy to drop it from the cleaned set, dismiss it if it is not a duplicate.")
    ui.show_flash()
    ids = list(page["item_id"])
    keepers = [k for k in page["related_item_id"] if isinstance(k, str)]
    items = store.get_items(run["run_id"], ids + keepers).set_index("item_id", drop=False)
    pairs = store.pairs_for(run["run_id"], ids)
    nonce = ui.selection_nonce()
    selected = []
    for row in page.itertuples():
        keeper = items.loc[row.related_item_id] if row.related_item_id in items.index else None
        member = items.loc[row.item_id] if row.item_id in items.index else None
        similarity, method = pair_evidence(pairs, row.related_item_id, row.item_id, row.detail)
        if show_pair(run, row, keeper, member, similarity, method, nonce, issue_type):
            selected.append(row.item_id)
    if not page.empty:
        ui.decision_form(run, issue_type, selected, labels=ui.load_facets(ui.db_path(), run["run_id"], issue_type)["labels"], key="dup_decide")
    with st.expander("All pairs of this run"):
        st.dataframe(store.pairs(run["run_id"])[["item_a", "item_b", "similarity", "method"]], hide_index=True,
                     column_config={"similarity": st.column_config.NumberColumn("similarity", format="%.4f")})

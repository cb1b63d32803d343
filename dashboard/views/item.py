"""Item detail: everything known about one item across issue types and runs of its dataset."""

from __future__ import annotations

import streamlit as st

from dashboard import ui

run = ui.current_run()
if run is not None:
    st.title("Item detail")
    wanted = st.session_state.get("detail_item") or st.query_params.get("item") or ""
    item_id = st.text_input("Item id", value=wanted, placeholder="e.g. an item id from a queue").strip()
    if not item_id:
        st.info("Type an item id, or open one from a queue (select one item, then 'Open … in Item detail').")
        st.stop()
    st.session_state["detail_item"] = item_id
    st.query_params["item"] = item_id
    store = ui.store()
    history = store.item_history(run["dataset"], item_id)
    if history["items"].empty:
        st.warning(f"No run of {run['dataset']} has an item {item_id!r}.")
        st.stop()
    in_run = history["items"][history["items"]["run_id"] == run["run_id"]]
    item = (in_run if len(in_run) else history["items"]).iloc[0]
    ui.show_flash()
    left, right = st.columns([2, 3])
    with left:
        st.subheader(item_id)
        st.caption(f"label **{item['label']}** · content hash `{item['content_hash']}` · seen in {len(history['items'])} run(s) of {run['dataset']}"
                   + ("" if len(in_run) else f" · not in the chosen run; shown from run {item['run_id']}"))
        ui.show_item(run, item, px=280)
        if item.get("metadata"):
            st.caption(f"metadata: `{item['metadata']}`")
    with right:
        findings = history["findings"]
        here = findings[findings["run_id"] == run["run_id"]]
        st.markdown("**Findings in the chosen run** (every issue type scored; flagged first)")
        shown = here[["issue_type", "score", "flagged", "reason", "related_item_id", "suggested_label"]].assign(reason=here["reason"].fillna("(not flagged)"))
        st.dataframe(shown, hide_index=True,
                     column_config={"score": st.column_config.NumberColumn(format="%.3f"), "reason": st.column_config.TextColumn(width="large")})
        st.markdown("**Decisions** (newest first, any run of the dataset)")
        decisions = history["decisions"]
        if decisions.empty:
            st.caption("none yet")
        else:
            st.dataframe(decisions[["at", "issue_type", "decision", "new_label", "reviewer", "note"]], hide_index=True)
    others = findings[(findings["run_id"] != run["run_id"]) & findings["flagged"]]
    with st.expander(f"Flagged in other runs of {run['dataset']} ({len(others)})"):
        st.dataframe(others[["started", "run_id", "issue_type", "score", "reason"]], hide_index=True)
    pairs = store.pairs_for(run["run_id"], [item_id])
    if len(pairs):
        st.markdown("**Duplicate pairs in the chosen run**")
        st.dataframe(pairs[["item_a", "item_b", "similarity", "method"]], hide_index=True)
    if len(in_run) and len(here):
        issue = st.selectbox("Decide on issue type", list(here["issue_type"]), key="item_issue")
        suggested = here.set_index("issue_type")["suggested_label"].get(issue)
        ui.decision_form(run, issue, [item_id], labels=ui.load_facets(ui.db_path(), run["run_id"], issue)["labels"],
                         suggested={item_id: suggested} if isinstance(suggested, str) else None, key="item_decide")

"""Item detail: everything known about one item across issue types and runs of its dataset."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import evidence, ui
from dashboard.evidence import Span

# what related_item_id is to the item, per issue type (the findings contract); a comment, not a
# string: Streamlit would write a bare string of a page script on the page
RELATED = {"exact_duplicate": "copy of", "near_duplicate": "copy of", "label_error": "nearest conflicting item"}


def item_evidence(run: dict, item, flagged: pd.DataFrame) -> tuple[list[Span], set[str]]:
    """The evidence of the item's flagged findings inside it: text spans (merged) and failing table cells."""
    spans: list[Span] = []
    failing: set[str] = set()
    text = item.get("text")
    related = ui.texts_of(run, tuple(r for r in flagged["related_item_id"] if isinstance(r, str)))
    rows = ui.table_rows(run, pd.DataFrame([dict(item)])) if run["modality"] == "tabular" else None
    for finding in flagged.itertuples():
        if isinstance(text, str):
            spans += evidence.text_spans(text, finding.issue_type, finding.detail, related.get(finding.related_item_id))
        if rows is not None:
            failing |= evidence.failing_columns(finding.issue_type, finding.detail, list(rows.columns))
    return evidence.merge(spans), failing


run = ui.current_run()
if run is not None:
    st.title("Item detail")
    if ui.filter_run_notice(run):
        st.stop()
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
    findings = history["findings"]
    here = findings[findings["run_id"] == run["run_id"]]
    spans, failing = item_evidence(run, item, here[here["flagged"]])
    ui.show_flash()
    left, right = st.columns([2, 3])
    with left:
        st.subheader(item_id)
        st.caption((f"label **{item['label']}** · " if isinstance(item["label"], str) else "")
                   + f"content hash `{item['content_hash']}` · seen in {len(history['items'])} run(s) of {run['dataset']}"
                   + ("" if len(in_run) else f" · not in the chosen run; shown from run {item['run_id']}"))
        ui.show_item(run, item, px=280, spans=spans, failing=failing)
        if spans:
            st.caption("Highlighted: " + ", ".join(dict.fromkeys(s.why for s in spans)) + " (hover for each).")
        if item.get("metadata"):
            st.caption(ui.metadata_text(item["metadata"]))
    with right:
        flagged = here[here["flagged"]]
        st.markdown(f"**Flagged in the chosen run** ({len(flagged)} of {len(here)} issue types)" if len(here) else "**Not in the chosen run**")
        for finding in flagged.itertuples():
            relation = RELATED.get(finding.issue_type, "related item")
            extra = [f"{relation} **{finding.related_item_id}**"] if isinstance(finding.related_item_id, str) else []
            extra += [f"suggested label **{finding.suggested_label}**"] if isinstance(finding.suggested_label, str) else []
            st.markdown(f"- **{finding.issue_type}** · score {finding.score:.3f} — {finding.reason or 'flagged'}"
                        + "".join(f" · {e}" for e in extra))
        st.markdown("**Every score in the chosen run**")
        st.dataframe(here[["issue_type", "score", "flagged"]], hide_index=True,
                     column_config={"score": st.column_config.NumberColumn(format="%.3f")})
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
        ui.decision_form(run, issue, [item_id], labels=ui.facets(run, issue)["labels"],
                         suggested={item_id: suggested} if isinstance(suggested, str) else None, key="item_decide")

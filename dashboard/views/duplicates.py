"""Duplicates: each group's members side by side (images at one scale, a word diff of texts, table
rows with the differing cells marked), with the similarity and method of each copy to the keeper,
which member is the keeper, and a button to make another member the keeper."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import ui
from winnow.errors import WinnowError

PAGE_SIZE = 6
MEMBER_PX = 200
MAX_COLUMNS = 4


def keeper_of(members: pd.DataFrame) -> str:
    """The member that stays: the detector's keeper (the unflagged member) unless a reviewer
    confirmed it as a duplicate, then the member most recently marked ``keep``."""
    original = members[~members["flagged"].astype(bool)]
    if len(original) and original["decision"].iloc[0] != "confirmed":
        return str(original["item_id"].iloc[0])
    kept = members[members["decision"] == "keep"].sort_values("decided_at")
    if len(kept):
        return str(kept["item_id"].iloc[-1])
    return str((original if len(original) else members)["item_id"].iloc[0])


def leaves_clean_set(member) -> bool:
    """Whether the cleaned dataset drops this member (flagged and not kept, or confirmed)."""
    decision = member["decision"] if isinstance(member["decision"], str) else ""
    return (bool(member["flagged"]) and decision not in ui.KEEPING_DECISIONS) or decision == "confirmed"


def link(pairs: pd.DataFrame, a: str, b: str, detail: str | None) -> str:
    """Similarity and method of the stored pair (a, b) in either order, else the member's strongest
    link inside its group (from the finding's detail)."""
    match = pairs[((pairs["item_a"] == a) & (pairs["item_b"] == b)) | ((pairs["item_a"] == b) & (pairs["item_b"] == a))]
    if len(match):
        return f"similarity {float(match['similarity'].iloc[0]):.4f} to the keeper · {', '.join(sorted(set(match['method'])))}"
    evidence = json.loads(detail or "{}")
    if "content_hash" in evidence:
        return "same content hash as the keeper · content_hash"
    if evidence.get("similarity") is not None:
        return f"strongest link in the group {float(evidence['similarity']):.4f} (no direct pair with the keeper)"
    return "no stored pair with the keeper"


def make_keeper(run_id: str, issue_type: str, group_id: str, item_id: str) -> None:
    """Button callback: record the new keeper through the store (see ``Store.set_keeper``)."""
    try:
        dropped = ui.store().set_keeper(run_id, issue_type, group_id, item_id, reviewer=ui.reviewer())
    except WinnowError as exc:
        st.session_state["flash"] = ("error", str(exc))
        return
    st.session_state["flash"] = ("success", f"{item_id} is now the keeper of {group_id}"
                                 + (f"; {', '.join(dropped)} confirmed as duplicate(s)." if dropped else "."))
    ui.clear_selection()


def show_member(run: dict, member, keeper: str, image, text_of_keeper: str | None, pairs: pd.DataFrame, nonce: int, issue_type: str) -> bool:
    """One member: role, item, evidence, fate and its buttons; returns whether its tick box is ticked."""
    is_keeper = member["item_id"] == keeper
    fate = ":red[leaves the cleaned set]" if leaves_clean_set(member) else ":green[stays]"
    st.markdown(("**keeper ✓**" if is_keeper else "*duplicate*") + f" — {member['item_id']}"
                + (f" · label {member['label']}" if isinstance(member["label"], str) else ""))
    if run["modality"] == "image":
        ui.show_item(run, member, px=MEMBER_PX, image=image)
    elif run["modality"] == "text":
        if is_keeper or text_of_keeper is None:
            ui.show_item(run, member)
        else:
            st.markdown(f"diff (keeper → this): {ui.text_diff_html(text_of_keeper, member['text'] or '')}", unsafe_allow_html=True)
    decision = ui.decision_text(member)
    st.caption(("the copy that stays" if is_keeper else link(pairs, keeper, member["item_id"], member["detail"]))
               + f" · {fate}" + (f" · decision: {decision}" if decision else ""))
    if not is_keeper:
        st.button("Make keeper", key=f"keeper_{issue_type}_{member['item_id']}", on_click=make_keeper,
                  args=(run["run_id"], issue_type, member["group_id"], member["item_id"]))
    return st.checkbox("select", key=f"dup_{nonce}_{issue_type}_{member['item_id']}")


def show_table_rows(run: dict, members: pd.DataFrame, keeper: str) -> None:
    """A table group: its rows with the cells that differ from the keeper's marked."""
    rows = ui.table_rows(run, members)
    if rows is None:
        st.caption("(rows unavailable)")
        return
    base = rows.loc[keeper]
    differs = rows.ne(base, axis=1) & ~(rows.isna() & base.isna())
    rows.insert(0, "role", ["keeper ✓" if i == keeper else "duplicate" for i in rows.index])
    marks = pd.DataFrame("", index=rows.index, columns=rows.columns)
    marks[differs.columns] = differs.map(lambda d: "background-color: #fff3b0" if d else "")
    st.dataframe(rows.style.apply(lambda _: marks, axis=None))
    st.caption("cells that differ from the keeper are highlighted" if differs.to_numpy().any() else "every cell equals the keeper's")


def show_group(run: dict, members: pd.DataFrame, pairs: pd.DataFrame, nonce: int, issue_type: str) -> list[str]:
    """One duplicate group; returns the ticked members."""
    keeper = keeper_of(members)
    members = pd.concat([members[members["item_id"] == keeper], members[members["item_id"] != keeper]])
    group_id = members["group_id"].iloc[0]
    original = members.loc[~members["flagged"].astype(bool), "item_id"]
    chosen = len(original) == 0 or keeper != original.iloc[0]
    ticked = []
    with st.container(border=True):
        st.markdown(f"**Group `{group_id}`** · {len(members)} members · keeper **{keeper}**"
                    + (" (chosen by a reviewer)" if chosen else " (the first seen)"))
        records = [m for _, m in members.iterrows()]
        images = ui.same_scale([ui.open_image(m["uri"], run) for m in records], MEMBER_PX) if run["modality"] == "image" else [None] * len(records)
        keeper_text = members["text"].iloc[0] if run["modality"] == "text" else None
        if run["modality"] == "tabular":
            show_table_rows(run, members, keeper)
        for start in range(0, len(records), MAX_COLUMNS):
            for column, member, image in zip(st.columns(MAX_COLUMNS), records[start:start + MAX_COLUMNS], images[start:start + MAX_COLUMNS]):
                with column:
                    if show_member(run, member, keeper, image, keeper_text, pairs, nonce, issue_type):
                        ticked.append(member["item_id"])
    return ticked


run = ui.current_run()
if run is not None:
    st.title("Duplicates")
    if ui.filter_run_notice(run):
        st.stop()
    counts = ui.run_counts(run).set_index("issue_type")
    types = [t for t in ui.DUPLICATE_TYPES if t in counts.index]
    if not types:
        st.info("This run has no duplicate findings.")
        st.stop()
    issue_type = st.radio("Kind", types, horizontal=True, key="dup_issue",
                          format_func=lambda t: f"{t} ({int(counts.loc[t, 'flagged'])} flagged)")
    undecided = st.checkbox("groups with undecided copies only", key="dup_undecided")
    store = ui.store()
    slot = st.container()
    offset = ui.page_offset("dup_page", PAGE_SIZE, (run["run_id"], issue_type, undecided))
    page, total = store.duplicate_groups(run["run_id"], issue_type, undecided_only=undecided, limit=PAGE_SIZE, offset=offset)
    ui.pager(slot, total, PAGE_SIZE, "dup_page")
    st.caption(f"{total} groups, most similar first. The keeper stays in the cleaned set; confirm a copy to drop it, "
               "dismiss it if it is not a duplicate, or make another member the keeper (the old keeper is then confirmed as a duplicate).")
    ui.show_flash()
    pairs = store.pairs_for(run["run_id"], list(page["item_id"]))
    nonce = ui.selection_nonce()
    selected = []
    for _, members in page.groupby("group_id", sort=False):
        selected += show_group(run, members, pairs, nonce, issue_type)
    if not page.empty:
        ui.decision_form(run, issue_type, selected, labels=ui.facets(run, issue_type)["labels"], key="dup_decide")
    with st.expander("All pairs of this run"):
        st.dataframe(store.pairs(run["run_id"])[["item_a", "item_b", "similarity", "method"]], hide_index=True,
                     column_config={"similarity": st.column_config.NumberColumn("similarity", format="%.4f")})

"""Label errors: given vs suggested label, with the nearest items of each of the two classes as evidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import ui

PAGE_SIZE = 8
NEIGHBOURS = 3


def neighbours_with_label(db: str, run_id: str, item_id: str, label: str, k: int = NEIGHBOURS) -> list[tuple[str, float]]:
    """The ``k`` items labelled ``label`` nearest to ``item_id`` by cosine similarity (empty when the
    run's vectors are not available)."""
    loaded = ui.run_vectors(db, run_id)
    if loaded is None:
        return []
    embedded, vectors = loaded
    where = np.flatnonzero(embedded["item_id"].to_numpy() == item_id)
    if not len(where):
        return []
    candidates = np.flatnonzero((embedded["label"].to_numpy() == label) & (embedded["item_id"].to_numpy() != item_id))
    if not len(candidates):
        return []
    similarity = vectors[candidates] @ vectors[where[0]]
    top = np.argsort(-similarity)[:k]
    return [(str(embedded["item_id"].iloc[candidates[i]]), float(similarity[i])) for i in top]


def show_evidence(run: dict, row, neighbours: list[tuple[str, float]], items: pd.DataFrame, label: str, role: str) -> None:
    """The nearest items carrying ``label`` (``role``: "suggested" or "given"); for the suggested label,
    the nearest conflicting item (``related_item_id``) first."""
    related = [row.related_item_id] if role == "suggested" and isinstance(row.related_item_id, str) else []
    ids = list(dict.fromkeys(related + [n for n, _ in neighbours]))
    if not ids:
        st.caption(f"no neighbours labelled **{label}** ({role})")
        return
    similarity = dict(neighbours)
    st.caption(f"nearest items labelled **{label}** (the {role} label)")
    if run["modality"] == "image":
        for column, item_id in zip(st.columns(len(ids)), ids):
            with column:
                item = items.loc[item_id] if item_id in items.index else None
                ui.show_item(run, item, px=96)
                note = "nearest conflicting" if item_id == row.related_item_id else f"sim {similarity[item_id]:.3f}"
                st.caption(f"{item_id} · {note}")
    else:
        table = pd.DataFrame({"item_id": ids, "label": [items.loc[i, "label"] if i in items.index else None for i in ids],
                              "similarity": [similarity.get(i) for i in ids],
                              "evidence": ["nearest conflicting item" if i == row.related_item_id else "neighbour" for i in ids]})
        if run["modality"] == "text":
            table["text"] = [ui.snippet(items.loc[i, "text"]) if i in items.index else None for i in ids]
        else:
            rows = ui.table_rows(run, items.loc[[i for i in ids if i in items.index]])
            if rows is not None:
                table = table.merge(rows.add_prefix("· "), left_on="item_id", right_index=True, how="left")
        st.dataframe(table, hide_index=True, column_config={"similarity": st.column_config.NumberColumn(format="%.3f")})


def show_finding(run: dict, row, items: pd.DataFrame, nonce: int) -> bool:
    """One label error: the item, given → suggested label, reason and evidence; returns its tick box."""
    with st.container(border=True):
        decision = ui.decision_text(row)
        st.markdown(f"**{row.item_id}** · given **:red[{row.label}]** → suggested **:green[{row.suggested_label}]** · "
                    f"score {row.score:.3f}" + (f" · decision: {decision}" if decision else ""))
        st.caption(row.reason or "")
        left, right = st.columns([1, 3] if run["modality"] == "image" else [2, 3])
        with left:
            ui.show_item(run, items.loc[row.item_id] if row.item_id in items.index else None, px=128)
        with right:
            for label, role in ((row.suggested_label, "suggested"), (row.label, "given")):
                neighbours = neighbours_with_label(ui.db_path(), run["run_id"], row.item_id, label)
                show_evidence(run, row, neighbours, items, label, role)
        return st.checkbox("select", key=f"lab_{nonce}_{row.item_id}")


run = ui.current_run()
if run is not None:
    st.title("Label errors")
    if ui.filter_run_notice(run):
        st.stop()
    counts = ui.run_counts(run).set_index("issue_type")
    if "label_error" not in counts.index:
        st.info("This run has no label-error findings (it needs at least two labels).")
        st.stop()
    a, b = st.columns(2)
    flagged_only = a.checkbox("flagged only", value=True, key="lab_flagged")
    undecided = b.checkbox("undecided only", key="lab_undecided")
    store = ui.store()
    slot = st.container()
    offset = ui.page_offset("lab_page", PAGE_SIZE, (run["run_id"], flagged_only, undecided))
    page, total = store.findings_page(run["run_id"], "label_error", flagged_only=flagged_only, undecided_only=undecided,
                                      limit=PAGE_SIZE, offset=offset)
    ui.pager(slot, total, PAGE_SIZE, "lab_page")
    st.caption(f"{total} label-error findings, highest score first. Relabel to accept the suggestion, "
               "dismiss if the given label is right, confirm to drop the item.")
    ui.show_flash()
    wanted = list(page["item_id"]) + [r for r in page["related_item_id"] if isinstance(r, str)]
    for row in page.itertuples():
        for label in (row.suggested_label, row.label):
            wanted += [n for n, _ in neighbours_with_label(ui.db_path(), run["run_id"], row.item_id, label)]
    items = store.get_items(run["run_id"], list(dict.fromkeys(wanted))).set_index("item_id", drop=False)
    nonce = ui.selection_nonce()
    selected = [row.item_id for row in page.itertuples() if show_finding(run, row, items, nonce)]
    if not page.empty:
        suggested = {r.item_id: r.suggested_label for r in page.itertuples() if isinstance(r.suggested_label, str)}
        ui.decision_form(run, "label_error", selected, labels=ui.facets(run, "label_error")["labels"],
                         suggested=suggested, key="lab_decide")

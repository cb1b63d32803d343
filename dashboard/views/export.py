"""Export: an audit's findings, the decisions that apply to it, the cleaned dataset or its filter
list (the items the cleaned set leaves out, with why) — the same code as ``winnow export``; a
``winnow filter`` run's removal manifest."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import ui
from winnow.export import FORMATS, clean_dataset, write_frame
from winnow.store import Store
from winnow.store.removals import removals

WHATS = {
    "findings": "Findings (every item × issue type, with score, flag and reason)",
    "decisions": "Decisions (the newest per item and issue type that apply to this run)",
    "clean": "Cleaned dataset (without flagged or confirmed items; relabels applied)",
    "filter_list": "Filter list (the item ids the cleaned dataset leaves out, with why)",
}
FILTER_WHATS = {"removals": "Removals (every removed document: stage, reason, the kept document it copies, evidence)"}
MIME = {"csv": "text/csv", "parquet": "application/octet-stream", "jsonl": "application/jsonl"}


def filter_list(store: Store, run_id: str) -> pd.DataFrame:
    """The items of a run that :func:`winnow.export.clean_dataset` leaves out (the complement of
    ``Store.clean_items``), each with the flagged issue types and reasons and the confirmations
    that remove it: ``item_id, label, issues, why``."""
    items = store.load_items(run_id)
    kept = set(store.clean_items(run_id)["item_id"])
    dropped = items.loc[~items["item_id"].isin(kept), ["item_id", "label"]].reset_index(drop=True)
    findings = store.findings(run_id, flagged_only=True)
    decisions = store.decisions_for(run_id).drop_duplicates(["item_id", "issue_type"]).set_index(["item_id", "issue_type"])["decision"]
    why: dict[str, list[tuple[str, str]]] = {}
    for row in findings.itertuples():
        if decisions.get((row.item_id, row.issue_type)) not in ui.KEEPING_DECISIONS:
            why.setdefault(row.item_id, []).append((row.issue_type, row.reason or "flagged"))
    for (item_id, issue_type), decision in decisions.items():
        if decision == "confirmed" and issue_type not in {t for t, _ in why.get(item_id, [])}:
            why.setdefault(item_id, []).append((issue_type, "confirmed by a reviewer"))
    dropped["issues"] = [", ".join(t for t, _ in why.get(i, [])) for i in dropped["item_id"]]
    dropped["why"] = ["; ".join(f"{t}: {r}" for t, r in why.get(i, [])) for i in dropped["item_id"]]
    return dropped


def build(run: dict, what: str) -> pd.DataFrame:
    """The frame to export."""
    store = ui.store()
    if what == "findings":
        return store.findings(run["run_id"])
    if what == "decisions":
        return store.decisions_for(run["run_id"])
    if what == "filter_list":
        return filter_list(store, run["run_id"])
    if what == "removals":
        return removals(store, run["run_id"])
    return clean_dataset(store, run["run_id"])


def encode(frame: pd.DataFrame, fmt: str) -> bytes:
    """``frame`` as the bytes :func:`winnow.export.write_frame` writes."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"export.{fmt}"
        write_frame(frame, out, fmt)
        return out.read_bytes()


def same_as(run: dict, what: str, fmt: str) -> str | None:
    """The command line or file that gives the same rows, when there is one."""
    if what in ("findings", "clean"):
        return f"Same as: `winnow export --what {what} --run {run['run_id']} --format {fmt} --out {what}.{fmt}`"
    if what == "filter_list":
        return "The item ids of the run that `winnow export --what clean` leaves out (the same code decides)."
    if what == "removals":
        return f"The same rows as the run's manifest `{(run.get('counts') or {}).get('manifest', '?')}`."
    return None


run = ui.current_run()
if run is not None:
    st.title("Export")
    whats = FILTER_WHATS if ui.is_filter_run(run) else WHATS
    if st.session_state.get("export_what") not in whats:
        st.session_state["export_what"] = next(iter(whats))
    what = st.radio("What", list(whats), format_func=whats.__getitem__, key="export_what")
    fmt = st.selectbox("Format", FORMATS, key="export_format")
    note = same_as(run, what, fmt)
    if note:
        st.caption(note)
    if st.button("Prepare export", type="primary"):
        frame = build(run, what)
        st.session_state["export"] = (run["run_id"], what, fmt, len(frame), encode(frame, fmt), frame.head(20))
    prepared = st.session_state.get("export")
    if prepared and prepared[:3] == (run["run_id"], what, fmt):
        _, _, _, rows, data, head = prepared
        name = f"{run['dataset']}-{run['run_id']}-{what}.{fmt}"
        st.success(f"{rows} rows ready.")
        st.download_button(f"Download {name}", data, file_name=name, mime=MIME[fmt])
        st.dataframe(head, hide_index=True)

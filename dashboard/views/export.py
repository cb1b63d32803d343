"""Export: the run's findings, the decisions that apply to it, or the cleaned dataset — the same
code as ``winnow export``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from dashboard import ui
from winnow.export import FORMATS, clean_dataset, write_frame

WHATS = {
    "findings": "Findings (every item × issue type, with score, flag and reason)",
    "decisions": "Decisions (the newest per item and issue type that apply to this run)",
    "clean": "Cleaned dataset (without flagged or confirmed items; relabels applied)",
}
MIME = {"csv": "text/csv", "parquet": "application/octet-stream", "jsonl": "application/jsonl"}


def build(run: dict, what: str):
    """The frame to export."""
    store = ui.store()
    if what == "findings":
        return store.findings(run["run_id"])
    if what == "decisions":
        return store.decisions_for(run["run_id"])
    return clean_dataset(store, run["run_id"])


def encode(frame, fmt: str) -> bytes:
    """``frame`` as the bytes :func:`winnow.export.write_frame` writes."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"export.{fmt}"
        write_frame(frame, out, fmt)
        return out.read_bytes()


run = ui.current_run()
if run is not None:
    st.title("Export")
    what = st.radio("What", list(WHATS), format_func=WHATS.__getitem__, key="export_what")
    fmt = st.selectbox("Format", FORMATS, key="export_format")
    if what != "decisions":
        st.caption(f"Same as: `winnow export --what {what} --run {run['run_id']} --format {fmt} --out {what}.{fmt}`")
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

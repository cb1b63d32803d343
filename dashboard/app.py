"""winnow triage dashboard: the entry point ``winnow dashboard`` starts.

It sets up the sidebar every page shares (database, run, reviewer) and hands over to the page the
reviewer picked. Pages live in ``dashboard/views/`` and read and write only through
:class:`winnow.store.Store`, which opens the file per call and closes it, so a dashboard left open
never blocks an audit. The database is ``$WINNOW_DB`` (set by ``winnow dashboard --db PATH``), else
``./winnow.duckdb``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import ui
from winnow.errors import WinnowError

PAGES = [
    st.Page("views/runs.py", title="Runs", icon=":material/list:", default=True),
    st.Page("views/triage.py", title="Triage queue", icon=":material/checklist:"),
    st.Page("views/duplicates.py", title="Duplicates", icon=":material/content_copy:"),
    st.Page("views/label_errors.py", title="Label errors", icon=":material/label:"),
    st.Page("views/map.py", title="Embedding map", icon=":material/scatter_plot:"),
    st.Page("views/item.py", title="Item detail", icon=":material/search:"),
    st.Page("views/removals.py", title="Removals", icon=":material/delete_sweep:"),
    st.Page("views/export.py", title="Export", icon=":material/download:"),
]


def sidebar() -> bool:
    """Database, run and reviewer in the sidebar; ``False`` (with the reason shown) when there is
    nothing to show."""
    db = ui.db_path()
    st.sidebar.caption(f"Database: `{Path(db).resolve()}`")
    try:
        runs = ui.load_runs(db)
    except WinnowError as exc:
        st.info(str(exc))
        return False
    if runs.empty:
        st.info(f"{db} has no runs yet; run `winnow audit SOURCE --db {db}` first.")
        return False
    ui.run_picker(runs)
    st.session_state.setdefault("reviewer", ui.default_reviewer())
    st.sidebar.text_input("Reviewer", key="reviewer", help="Stored with every decision you record.")
    return True


def main() -> None:
    st.set_page_config(page_title="winnow triage", layout="wide")
    page = st.navigation(PAGES)
    if not sidebar():
        return
    try:
        page.run()
    except WinnowError as exc:
        st.info(str(exc))


main()

"""The Streamlit triage dashboard (``winnow dashboard``); it reads and writes only through winnow.store."""

"""Runs: every run with its counts per issue type, the trend across runs of a dataset, pick a run."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import ui


def runs_table(runs: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """One row per run: dataset, modality, date, status, items, and flagged counts per issue type."""
    flagged = counts.pivot_table(index="run_id", columns="issue_type", values="flagged", aggfunc="sum", fill_value=0)
    table = runs[["run_id", "dataset", "modality", "started", "status", "items", "flagged"]].merge(
        flagged, left_on="run_id", right_index=True, how="left"
    )
    return table.rename(columns={"flagged": "flagged (all)"})


def _pick(key: str, run_ids: list[str]) -> None:
    rows = st.session_state[key].selection.rows
    if rows:
        st.session_state["run"] = run_ids[rows[0]]
        st.query_params["run"] = run_ids[rows[0]]


def show_runs(runs: pd.DataFrame, counts: pd.DataFrame) -> None:
    st.subheader("Runs")
    st.caption("Flagged findings per issue type. Click a row to work on that run (or use the sidebar).")
    table = runs_table(runs, counts)
    ids = list(table["run_id"])
    key = f"runs_table_{st.session_state.get('run')}"
    st.dataframe(
        table,
        hide_index=True,
        key=key,
        on_select=lambda: _pick(key, ids),
        selection_mode="single-row",
        column_config={
            "run_id": "run",
            "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm"),
            "items": st.column_config.NumberColumn("items", format="%d"),
        },
    )


def show_trend(run: dict, counts: pd.DataFrame) -> None:
    """Flagged counts per issue type across the runs of the chosen run's dataset."""
    mine = counts[counts["dataset"] == run["dataset"]].copy()
    st.subheader(f"Flagged per issue type across runs of {run['dataset']}")
    if mine.empty:
        st.info("No findings yet.")
        return
    mine["run"] = mine["started"].dt.strftime("%Y-%m-%d %H:%M") + " · " + mine["run_id"].str[-6:]
    order = list(dict.fromkeys(mine["run"]))
    chart = (
        alt.Chart(mine)
        .mark_bar()
        .encode(
            x=alt.X("issue_type:N", title=None, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("run:N", sort=order),
            y=alt.Y("flagged:Q", title="flagged items"),
            color=alt.Color("run:N", sort=order, title="run (oldest first)", legend=alt.Legend(orient="bottom")),
            tooltip=["run", "issue_type", "flagged", "scored"],
        )
        .properties(height=260)
    )
    st.altair_chart(chart, width="stretch")


def show_run(run: dict) -> None:
    """The chosen run: status and one tile per issue type (flagged of scored, decided)."""
    st.subheader(f"Run {run['run_id']}")
    st.caption(f"{run['dataset']} · {run['modality']} · source `{run['source']}` · {run['status']}")
    if run["status"] != "completed":
        st.warning(f"Run {run['run_id']} is {run['status']}" + (f": {run['error']}" if run.get("error") else "."))
    counts = ui.load_counts(ui.db_path(), run["run_id"])
    if counts.empty:
        st.info("This run has no findings yet.")
        return
    decided = ui.store().decisions_for(run["run_id"]).groupby("issue_type").size()
    for column, row in zip(st.columns(len(counts)), counts.itertuples()):
        tile = column.container(border=True)
        tile.metric(row.issue_type, int(row.flagged))
        tile.caption(f"flagged of {row.scored} scored · {int(decided.get(row.issue_type, 0))} decided")


run = ui.current_run()
if run is not None:
    runs = ui.load_runs(ui.db_path())
    counts = ui.store().issue_counts_by_run()
    show_run(run)
    show_runs(runs, counts)
    show_trend(run, counts)

"""Runs: every run with its counts per issue type, the trend across runs of a dataset, pick a run."""

from __future__ import annotations

import json

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import ui
from winnow.findings import RUN_ITEM_ID

TESTS = {"mmd": ("embedding MMD", "mmd2", "MMD²"), "ks": ("PCA-KS", "ks_max", "max KS"), "labels": ("label chi-squared", "cramers_v", "Cramér's V")}


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


def cache_line(embed: dict) -> str | None:
    """The embedding cache's hit rate from the run's ``embed`` stage detail, when it says."""
    rate = embed.get("cache_hit_rate")
    cached, computed = embed.get("cached"), embed.get("computed")
    if rate is None and isinstance(cached, int) and isinstance(computed, int) and cached + computed:
        rate = cached / (cached + computed)
    if rate is None:
        return None
    counts = f" ({cached:,} of {cached + computed:,} vectors)" if isinstance(cached, int) and isinstance(computed, int) else ""
    return f"embedding cache: {float(rate):.0%} hits{counts}" + (f" · model `{embed['model_id']}`" if embed.get("model_id") else "")


def show_drift(run: dict) -> None:
    """The run-level drift finding: the decision, and each test's p-value and effect size."""
    drift = ui.store().findings(run["run_id"], issue_type="drift")
    drift = drift[drift["item_id"] == RUN_ITEM_ID]
    if drift.empty:
        return
    finding = drift.iloc[0]
    detail = json.loads(finding["detail"] or "{}")
    reference = (run.get("counts") or {}).get("drift", {}).get("reference")
    against = f" against run {reference}" if reference else ""
    box = st.container(border=True)
    (box.error if finding["flagged"] else box.success)(
        f"**{'Drift' if finding['flagged'] else 'No drift'}**{against}: {finding['reason'] or ''}")
    p_values, effects = detail.get("p_values") or {}, detail.get("effects") or {}
    order = [t for t in TESTS if t in p_values] + sorted(set(p_values) - set(TESTS))
    rows = [{"test": TESTS.get(t, (t,))[0], "p-value": p_values[t], "effect": TESTS[t][2] if t in TESTS else "",
             "effect size": effects.get(TESTS[t][1]) if t in TESTS else None} for t in order]
    if rows:
        box.dataframe(pd.DataFrame(rows), hide_index=True,
                      column_config={"p-value": st.column_config.NumberColumn(format="%.3g"), "effect size": st.column_config.NumberColumn(format="%.3g")})
    samples = detail.get("samples") or {}
    box.caption(f"α = {detail.get('alpha', '?')} (Bonferroni over the tests); combined p = {detail.get('p_value', float('nan')):.3g}"
                + (f"; {samples.get('reference_tested', '?')} reference and {samples.get('batch_tested', '?')} batch items tested" if samples else ""))


def show_run(run: dict) -> None:
    """The chosen run: status, embedding cache, drift and one tile per issue type (flagged of scored, decided)."""
    st.subheader(f"Run {run['run_id']}")
    st.caption(f"{run['dataset']} · {run['modality']} · source `{run['source']}` · {run['status']}")
    cache = cache_line(ui.store().stages(run["run_id"]).get("embed") or {})
    if cache:
        st.caption(cache)
    show_drift(run)
    if run["status"] != "completed":
        st.warning(f"Run {run['run_id']} is {run['status']}" + (f": {run['error']}" if run.get("error") else "."))
    counts = ui.load_counts(ui.db_path(), run["run_id"])
    if counts.empty:
        st.info("This run has no findings yet.")
        return
    decided = ui.store().decisions_for(run["run_id"]).groupby("issue_type").size()
    counts = counts[counts["issue_type"] != "drift"]  # run level: shown above
    for column, row in zip(st.columns(max(len(counts), 1)), counts.itertuples()):
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

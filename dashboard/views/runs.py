"""Runs: every run with its counts per issue type, the trend across runs of a dataset, pick a run.
A ``winnow filter`` run shows its removals per stage instead, with a link to the Removals page."""

from __future__ import annotations

import json

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import ui
from dashboard.filter_runs import STAGE_TEXT, stage_order
from winnow.findings import RUN_ITEM_ID
from winnow.store import Store

TESTS = {"mmd": ("embedding MMD", "mmd2", "MMD²"), "ks": ("PCA-KS", "ks_max", "max KS"), "labels": ("label chi-squared", "cramers_v", "Cramér's V")}


def runs_table(runs: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """One row per audit: dataset, modality, date, status, items, and flagged counts in all and per issue type."""
    flagged = counts.pivot_table(index="run_id", columns="issue_type", values="flagged", aggfunc="sum", fill_value=0)
    table = runs[["run_id", "dataset", "modality", "started", "status", "items", "flagged"]].merge(
        flagged, left_on="run_id", right_index=True, how="left"
    )
    return table.rename(columns={"flagged": "flagged (all)"})


def filter_runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per ``winnow filter`` run: dataset, date, status, documents read, kept and removed
    in all and per stage (from the run's summary)."""
    summaries = [json.loads(c) if isinstance(c, str) else {} for c in runs["counts"]]
    table = runs[["run_id", "dataset", "started", "status"]].assign(
        documents=[c.get("items") for c in summaries], kept=[c.get("kept") for c in summaries],
        removed=[c.get("removed") for c in summaries])
    per_stage = pd.DataFrame([c.get("flagged") or {} for c in summaries], index=table.index)
    return pd.concat([table, per_stage.fillna(0).astype("int64")], axis=1)


def _pick(key: str, run_ids: list[str]) -> None:
    rows = st.session_state[key].selection.rows
    if rows:
        st.session_state["run"] = run_ids[rows[0]]
        st.query_params["run"] = run_ids[rows[0]]


def pick_table(table: pd.DataFrame, key: str) -> None:
    """``table`` of runs; clicking a row makes that run the chosen one."""
    ids = list(table["run_id"])
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


def show_runs(runs: pd.DataFrame, counts: pd.DataFrame) -> None:
    """The audits, and the filter runs (if any) in a table of their own; a click picks a run."""
    is_filter = runs["kind"].eq("filter")
    chosen = st.session_state.get("run")
    st.subheader("Runs")
    st.caption("Flagged findings per issue type. Click a row to work on that run (or use the sidebar).")
    pick_table(runs_table(runs[~is_filter], counts), f"runs_table_{chosen}")
    if is_filter.any():
        st.subheader("Filter runs")
        st.caption("`winnow filter` runs: documents read, kept and removed, in all and per stage. Click a row to review its removals.")
        pick_table(filter_runs_table(runs[is_filter]), f"filter_runs_table_{chosen}")


def show_trend(run: dict, counts: pd.DataFrame) -> None:
    """Flagged counts per issue type across the runs of the chosen run's dataset."""
    mine = counts[counts["dataset"] == run["dataset"]].copy()
    st.subheader(f"Flagged per issue type across runs of {run['dataset']}")
    if mine.empty:
        st.info("No findings yet.")
        return
    mine["run"] = mine["started"].dt.strftime("%Y-%m-%d %H:%M") + " · " + mine["run_id"].str[-6:]
    _bars_per_run(mine, "issue_type", "flagged", "flagged items", ["run", "issue_type", "flagged", "scored"])


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


@st.cache_data(show_spinner=False, max_entries=16)
def load_drift(db: str, run_id: str, version: str) -> dict | None:
    """The run-level drift finding of a run, or ``None``."""
    drift = Store(db, lock_timeout=ui.LOCK_TIMEOUT_S).findings(run_id, issue_type="drift")
    drift = drift[drift["item_id"] == RUN_ITEM_ID]
    return None if drift.empty else drift.iloc[0].to_dict()


@st.cache_data(show_spinner=False, max_entries=16)
def load_stages(db: str, run_id: str, version: str) -> dict:
    """The finished stages of a run and their details."""
    return Store(db, lock_timeout=ui.LOCK_TIMEOUT_S).stages(run_id)


def drift_rule(reason: str | None) -> str:
    """The rule that decided, from the drift finding's reason: its first clause without the
    verdict it opens with (the box states the verdict, and its table each test's p-value)."""
    first = (reason or "").split("; ")[0].rstrip(".")
    for verdict in ("no drift: ", "drift: "):
        if first.startswith(verdict):
            return first[len(verdict):]
    return first


def show_drift(run: dict) -> None:
    """The run-level drift finding: the decision, and each test's p-value and effect size."""
    finding = load_drift(ui.db_path(), run["run_id"], run["version"])
    if finding is None:
        return
    detail = json.loads(finding["detail"] or "{}")
    reference = (run.get("counts") or {}).get("drift", {}).get("reference")
    against = f" against run {reference}" if reference else ""
    box = st.container(border=True)
    (box.error if finding["flagged"] else box.success)(
        f"**{'Drift' if finding['flagged'] else 'No drift'}**{against}: {drift_rule(finding['reason'])}.")
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
    cache = cache_line(load_stages(ui.db_path(), run["run_id"], run["version"]).get("embed") or {})
    if cache:
        st.caption(cache)
    show_drift(run)
    if run["status"] != "completed":
        st.warning(f"Run {run['run_id']} is {run['status']}" + (f": {run['error']}" if run.get("error") else "."))
    counts = ui.run_counts(run)
    if counts.empty:
        st.info("This run has no findings yet.")
        return
    decided = ui.run_decisions(run).groupby("issue_type").size()
    counts = counts[counts["issue_type"] != "drift"]  # run level: shown above
    for column, row in zip(st.columns(max(len(counts), 1)), counts.itertuples()):
        tile = column.container(border=True)
        tile.metric(row.issue_type, int(row.flagged))
        tile.caption(f"flagged of {row.scored} scored · {int(decided.get(row.issue_type, 0))} decided")


def show_filter_run(run: dict) -> None:
    """A ``winnow filter`` run: documents read, kept and removed, one tile per stage, and the way to its removals."""
    counts = run.get("counts") or {}
    st.subheader(f"Filter run {run['run_id']}")
    st.caption(f"{run['dataset']} · `winnow filter` · shards `{run['source']}` · {run['status']}")
    if run["status"] != "completed":
        st.warning(f"Run {run['run_id']} is {run['status']}" + (f": {run['error']}" if run.get("error") else "."))
    if counts.get("items") is not None:
        st.caption(f"{counts['items']:,} documents read from {counts.get('shards', '?')} shard(s): {counts.get('kept', 0):,} kept, "
                   f"{counts.get('removed', 0):,} removed · filtered shards in `{counts.get('out', '?')}`")
    removed = counts.get("flagged") or {}
    stages = stage_order(run, removed)
    for column, stage in zip(st.columns(max(len(stages), 1)), stages):
        tile = column.container(border=True)
        tile.metric(stage, int(removed.get(stage, 0)))
        tile.caption(f"removed · {STAGE_TEXT.get(stage, stage)}")
    st.page_link("views/removals.py", label="Review the removed documents", icon=":material/delete_sweep:")


def show_filter_trend(run: dict, runs: pd.DataFrame) -> None:
    """Removed documents per stage across the filter runs of the chosen run's dataset."""
    rows = [{"run": f"{r.started:%Y-%m-%d %H:%M} · {r.run_id[-6:]}", "stage": stage, "removed": int(n)}
            for r in runs[(runs["dataset"] == run["dataset"]) & (runs["kind"] == "filter")].sort_values("started").itertuples()
            for stage, n in (json.loads(r.counts or "{}").get("flagged") or {}).items()]
    st.subheader(f"Removed per stage across filter runs of {run['dataset']}")
    if not rows:
        st.info("No removals yet.")
        return
    frame = pd.DataFrame(rows)
    _bars_per_run(frame, "stage", "removed", "removed documents", ["run", "stage", "removed"])


def _bars_per_run(frame: pd.DataFrame, category: str, value: str, value_title: str, tooltip: list[str]) -> None:
    """Grouped bars of ``value`` per ``category``, one bar per run (column ``run``), oldest first:
    the trend chart of the audit and the filter runs of a dataset."""
    order = list(dict.fromkeys(frame["run"]))
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(f"{category}:N", title=None, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("run:N", sort=order),
            y=alt.Y(f"{value}:Q", title=value_title),
            color=alt.Color("run:N", sort=order, title="run (oldest first)", legend=alt.Legend(orient="bottom")),
            tooltip=tooltip,
        )
        .properties(height=260)
    )
    st.altair_chart(chart, width="stretch")


run = ui.current_run()
if run is not None:
    runs = ui.runs()
    counts = ui.load_counts_by_run(ui.db_path(), tuple(runs["version"]))
    if ui.is_filter_run(run):
        show_filter_run(run)
        show_runs(runs, counts)
        show_filter_trend(run, runs)
    else:
        show_run(run)
        show_runs(runs, counts)
        show_trend(run, counts)

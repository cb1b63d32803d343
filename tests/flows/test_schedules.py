"""Scheduled audits: the schedules file through the CLI, and real scheduled runs served against a
real local Prefect server landing in DuckDB."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winnow.cli import app
from winnow.errors import WinnowError
from winnow.schedules import load_schedules, local_prefect_server, schedules_path
from winnow.store import Store

TEXTS = [
    "The film is a gorgeous portrait of a family in crisis.", "A tedious, overlong mess with nothing to say.",
    "Sharp writing and a terrific lead performance.", "The plot collapses in the third act.",
    "Flat characters and clumsy dialogue.", "An intelligent thriller that keeps you guessing.",
    "Funny, warm and surprisingly wise.", "It looks expensive but feels empty.",
    "A quiet triumph of restraint and craft.", "Loud, dumb and far too long.",
]
INTERVAL_S = 5
RUNS_TIMEOUT_S = 180


@pytest.fixture
def tiny_jsonl(tmp_path) -> Path:
    """Ten labelled one-line reviews: each audit of it takes a few seconds."""
    path = tmp_path / "tiny.jsonl"
    rows = [{"id": f"t{i}", "text": t, "label": "pos" if i % 2 == 0 else "neg"} for i, t in enumerate(TEXTS)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_schedule_list_and_remove(tmp_path, tiny_jsonl):
    db = tmp_path / "s.duckdb"
    runner = CliRunner()
    added = runner.invoke(app, ["schedule", str(tiny_jsonl), "--cron", "0 2 * * *", "--id-col", "id", "--name", "nightly", "--db", str(db)])
    assert added.exit_code == 0, added.output
    [entry] = load_schedules(db)
    assert entry.cron == "0 2 * * *" and entry.config["reference"] == "previous" and entry.config["id_col"] == "id"
    assert schedules_path(db) == db.with_name("s.duckdb.schedules.json")
    listed = runner.invoke(app, ["schedule", "--list", "--db", str(db)])
    assert "nightly" in listed.output and "0 2 * * *" in listed.output
    removed = runner.invoke(app, ["schedule", "--remove", "nightly", "--db", str(db)])
    assert removed.exit_code == 0 and load_schedules(db) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cron", "every night"], "not a cron expression"),
        ([], "exactly one of --cron"),
        (["--cron", "0 2 * * *", "--interval", "60"], "exactly one of --cron"),
        (["--interval", "0"], "positive number"),
    ],
)
def test_bad_schedules_exit_2(tmp_path, tiny_jsonl, args, message):
    result = CliRunner().invoke(app, ["schedule", str(tiny_jsonl), "--db", str(tmp_path / "s.duckdb"), *args])
    assert result.exit_code == 2 and message in " ".join(result.output.split())


def test_removing_an_unknown_schedule_names_the_registered_ones(tmp_path, tiny_jsonl):
    db = str(tmp_path / "s.duckdb")
    CliRunner().invoke(app, ["schedule", str(tiny_jsonl), "--interval", "60", "--db", db])
    result = CliRunner().invoke(app, ["schedule", "--remove", "nope", "--db", db])
    assert result.exit_code == 2 and "registered: tiny" in " ".join(result.output.split())


def completed_runs(store: Store) -> list[str]:
    """Completed run ids, oldest first, read between the audits' short writes."""
    try:
        runs = store.list_runs()
    except WinnowError:  # no database yet, or locked by a writing audit for longer than lock_timeout
        return []
    return list(runs[runs["status"] == "completed"]["run_id"])[::-1]


def stop_group(process: subprocess.Popen) -> None:
    """Ask a served schedule or a worker (and its flow-run children) to stop; kill them if they are
    still finishing a run's bookkeeping 30 s later (a loaded CI machine can take that long)."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def wait_for_runs(store: Store, serving: subprocess.Popen, count: int) -> list[str]:
    deadline = time.monotonic() + RUNS_TIMEOUT_S
    while time.monotonic() < deadline:
        assert serving.poll() is None, f"winnow serve exited: {serving.stderr.read().decode()[-3000:]}"
        done = completed_runs(store)
        if len(done) >= count:
            return done
        time.sleep(1)
    raise AssertionError(f"only {len(completed_runs(store))} of {count} scheduled runs completed in {RUNS_TIMEOUT_S} s")


def flow_run_names(api_url: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read() -> list[str]:
        async with get_client() as client:
            return [run.name for run in await client.read_flow_runs()]

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        return asyncio.run(read())


@pytest.mark.slow
def test_served_schedule_lands_two_completed_runs_with_drift(tmp_path, tiny_jsonl):
    db = tmp_path / "scheduled.duckdb"
    added = CliRunner().invoke(app, ["schedule", str(tiny_jsonl), "--interval", str(INTERVAL_S), "--id-col", "id", "--label-col", "label", "--db", str(db)])
    assert added.exit_code == 0, added.output
    home = {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    with local_prefect_server(env=home) as api_url:
        env = {**os.environ, **home, "PREFECT_API_URL": api_url}
        command = [sys.executable, "-m", "winnow.cli", "serve", "--db", str(db)]
        serving = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            first, second = wait_for_runs(Store(db, lock_timeout=2), serving, 2)[:2]
            names = flow_run_names(api_url)
        finally:
            stop_group(serving)
    store = Store(db)
    assert store.findings(first, issue_type="drift").empty  # the first run has nothing to compare with
    drift = store.findings(second, issue_type="drift")
    assert list(drift["item_id"]) == ["__run__"] and not drift["flagged"].any()  # same data: no drift
    assert store.get_run(second)["counts"]["drift"]["reference"] == first
    assert any(name.startswith(f"audit-tiny-{time.gmtime().tm_year}-") for name in names), names


@pytest.mark.slow
def test_work_pool_deployment_runs_on_a_prefect_worker(tmp_path, tiny_jsonl):
    """The teams' way (docs/scheduling.md): a Prefect server, a process work pool, `winnow schedule
    --work-pool`, and a `prefect worker` that picks the scheduled run up and lands it in DuckDB."""
    db = tmp_path / "pooled.duckdb"
    home = {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    with local_prefect_server(env=home) as api_url:
        env = {**os.environ, **home, "PREFECT_API_URL": api_url}
        prefect = [sys.executable, "-m", "prefect"]
        subprocess.run([*prefect, "work-pool", "create", "winnow-test", "--type", "process"], env=env, check=True, capture_output=True, timeout=120)
        args = ["schedule", str(tiny_jsonl), "--interval", "3600", "--id-col", "id", "--label-col", "label", "--db", str(db), "--work-pool", "winnow-test"]
        # `winnow schedule --work-pool` talks to the server at PREFECT_API_URL; Prefect reads it from
        # its settings context, which the session's test harness may already hold, so set it there
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            registered = CliRunner().invoke(app, args, env={"PREFECT_API_URL": api_url})
        assert registered.exit_code == 0, registered.output
        assert "registered deployment" in registered.output and "prefect worker start --pool winnow-test" in registered.output
        # the hourly schedule's next run is up to an hour away: ask for one now, as a team would
        subprocess.run([*prefect, "deployment", "run", "winnow-audit/tiny"], env=env, check=True, capture_output=True, timeout=120)
        worker = subprocess.Popen([*prefect, "worker", "start", "--pool", "winnow-test"], env=env, cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            (run,) = wait_for_runs(Store(db, lock_timeout=2), worker, 1)
        finally:
            stop_group(worker)
    store = Store(db)
    assert store.get_run(run)["status"] == "completed"
    assert set(store.load_items(run)["item_id"]) == {f"t{i}" for i in range(len(TEXTS))}

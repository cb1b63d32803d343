"""Blocking checks through the CLI and a real Prefect server: a failed expectation of a suite given
with --blocking fails the flow run and exits 3, with every finding stored; without --blocking the
same audit completes, and Prefect serves the suite's results from its cache."""

from __future__ import annotations

import uuid

import pytest
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from winnow.cli import app
from winnow.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")

FAILING_CHECK = "expect_column_values_to_be_between(magnesium)"


def flow_run_of(db):
    """The Prefect flow run of the newest audit into ``db`` and the states of its tasks by name."""
    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs(limit=200) if r.parameters.get("db") == str(db)]
        newest = max(runs, key=lambda r: r.created)
        tasks = {t.name.rsplit("-", 1)[0]: t.state.name for t in client.read_task_runs(limit=200) if t.flow_run_id == newest.id}
    return newest, tasks


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    path = tmp_path_factory.mktemp("blocking") / "suite.yaml"
    # a few of the wines have more magnesium; the comment makes the file, and so Prefect's cache key
    # for its results, new in every test session
    path.write_text(f"# session {uuid.uuid4()}\nname: wine\ncolumns:\n  magnesium: {{max: 120}}\n")
    return path


def test_a_failed_blocking_check_fails_the_run_and_keeps_the_findings(tmp_path, wine_csv, suite):
    db = tmp_path / "blocking.duckdb"
    command = ["audit", str(wine_csv), "--id-col", "id", "--suite", str(suite), "--db", str(db)]
    blocked = CliRunner().invoke(app, [*command, "--blocking"])
    assert blocked.exit_code == 3, blocked.output
    assert "blocking checks failed" in blocked.output and FAILING_CHECK in blocked.output
    store = Store(db)
    run = store.get_run(store.latest_run_id())
    assert run["status"] == "failed-checks" and run["counts"]["blocking_failed"] == [FAILING_CHECK]
    failed_rows = store.findings(run["run_id"], issue_type="check_failed", flagged_only=True)
    assert len(failed_rows) > 0 and failed_rows["reason"].str.contains("magnesium").all()
    assert not store.findings(run["run_id"], issue_type="exact_duplicate", flagged_only=True).empty  # every detector still ran
    flow_run, tasks = flow_run_of(db)
    assert flow_run.state.is_failed() and FAILING_CHECK in flow_run.state.message
    assert tasks["great-expectations"] == "Completed"

    passed = CliRunner().invoke(app, command)
    assert passed.exit_code == 0, passed.output
    assert store.get_run(store.latest_run_id())["status"] == "completed"
    flow_run, tasks = flow_run_of(db)
    assert flow_run.state.is_completed() and tasks["great-expectations"] == "Cached"  # same table, same suite


def test_blocking_needs_a_suite(tmp_path, wine_csv):
    result = CliRunner().invoke(app, ["audit", str(wine_csv), "--blocking", "--db", str(tmp_path / "b.duckdb")])
    assert result.exit_code == 2 and "give --suite" in " ".join(result.output.split())

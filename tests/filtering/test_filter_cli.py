"""``winnow filter`` from the command line: a summary, exit code 2 for bad input, and a run killed
with SIGKILL and re-run with the same arguments ending exactly like an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.filtering.conftest import drop_words, read_output, write_shards
from winnow.cli import app
from winnow.filtering import filter_corpus, load_filter_config
from winnow.filtering import run as passes
from winnow.store import Store
from winnow.store.removals import removals

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("prefect_harness")
SHARDS = 12


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, reviews) -> Path:
    """12 .jsonl.gz shards of 150 documents (two real reviews each, no review used twice) with
    20 copies and 20 near-copies."""
    folder = tmp_path_factory.mktemp("resume")
    records = [{"id": f"d{i:05d}", "text": f"{reviews[2 * i]} {reviews[2 * i + 1]}"} for i in range(SHARDS * 150 - 40)]
    for i in range(20):
        records.insert(60 * i + 30, {"id": f"copy{i:02d}", "text": records[40 * i]["text"].lower()})
        records.insert(60 * i + 45, {"id": f"near{i:02d}", "text": drop_words(records[40 * i + 1]["text"], 0.08, seed=i)})
    write_shards(records, folder / "in", per_shard=150)
    return folder


def comparable(out: Path, db: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """A run's manifest without its run id, and the ids in each filtered shard."""
    manifests = list((out / "removals").glob("*.parquet"))
    assert len(manifests) == 1
    frame = pd.read_parquet(manifests[0]).drop(columns=["run_id"]).sort_values(["shard", "line"]).reset_index(drop=True)
    stored = removals(Store(db), pd.read_parquet(manifests[0])["run_id"].iloc[0])
    assert len(stored) == len(frame) and not stored.duplicated(["shard", "line"]).any()
    shards = {p.name: [r["id"] for r in read_output(p)] for p in sorted(out.glob("*.jsonl.gz"))}
    return frame, shards


def test_a_killed_run_rerun_with_the_same_arguments_ends_like_an_uninterrupted_one(corpus, tmp_path):
    from prefect.settings import PREFECT_API_URL

    inputs = str(corpus / "in" / "*.jsonl.gz")
    reference = load_filter_config(None, inputs=inputs, out=str(tmp_path / "a"), id_key="id")
    filter_corpus(reference, db=tmp_path / "a.duckdb")

    out, db = tmp_path / "b", tmp_path / "b.duckdb"
    command = [sys.executable, "-m", "winnow.cli", "filter", inputs, "--out", str(out), "--db", str(db), "--id-key", "id"]
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_LOGGING_LEVEL": "WARNING"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    measured = 0
    while process.poll() is None and time.monotonic() < deadline:
        measured = len(list(out.glob(".winnow-state/runs/*/features/*.parquet")))
        if measured >= 3:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run finished or failed before it could be killed"
    assert 3 <= measured < SHARDS and not list(out.glob("*.jsonl.gz"))  # killed part-way through measuring

    rerun = runner.invoke(app, ["filter", inputs, "--out", str(out), "--db", str(db), "--id-key", "id"])
    assert rerun.exit_code == 0, rerun.output
    assert len(list(out.glob(".winnow-state/runs/*"))) == 1  # the same run continued
    manifest_a, shards_a = comparable(tmp_path / "a", tmp_path / "a.duckdb")
    manifest_b, shards_b = comparable(out, db)
    pd.testing.assert_frame_equal(manifest_a, manifest_b)
    assert shards_a == shards_b and manifest_a.stage.isin(["exact", "minhash"]).sum() == 40

    again = runner.invoke(app, ["filter", inputs, "--out", str(out), "--db", str(db), "--id-key", "id"])
    assert again.exit_code == 0 and "already completed" in again.output


def test_dedup_interrupted_between_manifest_and_index_commit_redoes_the_shard(corpus, tmp_path):
    """The order of a dedup commit: a shard's removals are written, then its index delta. Losing
    the delta (a kill in between) must redo the shard against the index without it, not match the
    shard's documents against themselves."""
    config = load_filter_config(None, inputs=str(corpus / "in" / "*.jsonl.gz"), out=str(tmp_path / "out"), id_key="id")
    plan = passes.open_plan(config, str(tmp_path / "x.duckdb"))
    for shard in plan.shards:
        passes.measure_pass(plan, shard)
    indexes = passes.open_indexes(plan)
    passes.decide_pass(plan, "exact", indexes)
    passes.decide_pass(plan, "minhash", indexes)
    parts = [pd.read_parquet(plan.part_path("minhash", s)) for s in plan.shards]
    deltas = sorted((plan.state / "index" / "minhash" / "deltas").iterdir())
    shutil.rmtree(deltas[-1])  # killed after the last shard's part, before its delta
    assert passes.decide_pass(plan, "minhash", passes.open_indexes(plan))["removed"] == len(parts[-1])
    pd.testing.assert_frame_equal(pd.read_parquet(plan.part_path("minhash", plan.shards[-1])), parts[-1])


def test_summary_table_and_runs_listing(corpus, tmp_path):
    db = tmp_path / "c.duckdb"
    result = runner.invoke(app, ["filter", str(corpus / "in" / "part-000.jsonl.gz"), "--out", str(tmp_path / "o"), "--db", str(db),
                                 "--name", "reviews"])
    assert result.exit_code == 0, result.output
    assert "minhash" in result.output and "removal manifest" in result.output
    listing = runner.invoke(app, ["runs", "--db", str(db)])
    runs = Store(db).list_runs()
    assert listing.exit_code == 0 and runs.iloc[0]["run_id"] in listing.output
    assert (runs.iloc[0]["dataset"], runs.iloc[0]["modality"], runs.iloc[0]["status"]) == ("reviews", "text", "completed")


@pytest.mark.parametrize("case", ["no shards", "no text key", "bad config", "missing config", "not a shard"])
def test_bad_input_exits_2_with_a_message(tmp_path, case, reviews):
    args = ["filter", str(tmp_path / "in" / "*.jsonl"), "--out", str(tmp_path / "out"), "--db", str(tmp_path / "e.duckdb")]
    (tmp_path / "in").mkdir()
    expected = {"no shards": "no shards match", "no text key": "pass --text-key", "bad config": "unknown stage(s) ['fuzzy']",
                "missing config": "does not exist", "not a shard": "is not a .jsonl, .jsonl.gz or .parquet file"}[case]
    if case != "no shards":
        write_shards([{"id": "a", "body": reviews[0]}, {"id": "b", "body": reviews[1]}], tmp_path / "in", per_shard=5, fmt=".jsonl")
    if case == "bad config":
        (tmp_path / "f.yaml").write_text("stages: [exact, fuzzy]\n")
        args += ["--config", str(tmp_path / "f.yaml")]
    if case == "missing config":
        args += ["--config", str(tmp_path / "nope.yaml")]
    if case == "not a shard":
        (tmp_path / "in" / "notes.jsonl.txt").write_text("x")
        args[1] = str(tmp_path / "in" / "*")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())
    if case != "no text key":
        assert not (tmp_path / "e.duckdb").exists()  # refused before any run was registered

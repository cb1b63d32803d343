"""Kill an audit with SIGKILL while it embeds, resume it, and get the uninterrupted run's findings."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import fashion_images
from winnow.errors import WinnowError
from winnow.store import Store

SHARD = 15


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    for i, (pixels, label) in enumerate(fashion_images(30, classes=tuple(range(10)))):
        (root / label).mkdir(exist_ok=True)
        Image.fromarray(pixels).save(root / label / f"{i:03d}.png")
    return root


def audit_command(*args):
    return [sys.executable, "-m", "winnow.cli", "audit", *args, "--shard-size", str(SHARD), "--batch-size", "5"]


def wait_until_mid_embedding(process, store, timeout=240):
    """Poll the DB (read-only, between the audit's short writes) until some but not all shards are in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the audit ended before it could be interrupted"
        try:
            runs = store.list_runs()
            if len(runs) and store.count_vectors("efficientnet-lite0") >= 2 * SHARD:
                return str(runs.iloc[0]["run_id"])
        except WinnowError:
            pass
        time.sleep(0.05)
    raise AssertionError("embedding never started")


def comparable(store, run_id):
    frame = store.findings(run_id).drop(columns=["run_id", "detail"]).sort_values(["issue_type", "item_id"]).reset_index(drop=True)
    return frame


@pytest.mark.slow
def test_killed_audit_resumes_to_the_same_findings(folder, tmp_path):
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}
    killed_db = tmp_path / "killed.duckdb"
    store = Store(killed_db, lock_timeout=5)
    process = subprocess.Popen(audit_command(str(folder), "--db", str(killed_db)), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    run_id = wait_until_mid_embedding(process, store)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    stages = store.stages(run_id)
    assert "ingest" in stages and "embed" not in stages, "the kill must land during embedding"
    assert store.get_run(run_id)["status"] == "running"
    partial = store.count_vectors("efficientnet-lite0")
    assert 0 < partial < 300

    resumed = subprocess.run(audit_command("--resume", run_id, "--db", str(killed_db), "--json"), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert store.get_run(run_id)["status"] == "completed"
    assert len(store.list_runs()) == 1  # resumed in place, no second run
    counts = store.get_run(run_id)["counts"]["embed"]
    assert counts["cached"] >= partial and counts["cached"] + counts["computed"] == 300

    clean_db = tmp_path / "clean.duckdb"
    straight = subprocess.run(audit_command(str(folder), "--db", str(clean_db)), env=env, capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    reference = Store(clean_db)
    a, b = comparable(store, run_id), comparable(reference, reference.latest_run_id())
    # corrupt, low_quality, exact_duplicate, near_duplicate, off_topic, label_error, outlier for every item
    assert len(a) == len(b) == 300 * 7
    np.testing.assert_allclose(a.pop("score"), b.pop("score"), atol=1e-4)
    assert a.equals(b)
    assert len(store.pairs(run_id)) == len(reference.pairs(reference.latest_run_id()))

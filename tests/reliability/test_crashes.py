"""Kill -9 an audit again and again at different stages, resume it each time, and get exactly the
findings of an uninterrupted run, with no row lost or doubled and a DuckDB file that still checks out.

One run of 152 real Fashion-MNIST images (150 plus an exact copy and a JPEG re-encode, so there are
duplicate pairs to compare) is started with small shards, then killed with SIGKILL (the whole process
group, Prefect's temporary server included) as soon as a read-only poll of the database shows it has
reached the next target point, and resumed with ``winnow audit --resume RUN``:

1. the run row exists (open / ingest / early measure),
2. property shards are being committed (measure),
3. and 4. vector shards are being committed (embed, twice: the second resume must reuse the cache),
5. the ``embed`` stage marker is in (detect: kNN graph, detectors, store),
6. the ``detect`` stage marker is in (results stored, run not yet marked completed),

and a last resume finishes it. An uninterrupted audit of the same folder into another file, started
at the same time, is the reference.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import fashion_images
from winnow.errors import WinnowError
from winnow.store import Store

SHARD = 15
MODEL = "efficientnet-lite0"
TABLES = ("runs", "run_stages", "items", "embeddings", "properties", "findings", "pairs", "check_results", "decisions", "removals", "schema_migrations")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crash-images")
    for i, (pixels, label) in enumerate(fashion_images(15, classes=tuple(range(10)))):
        (root / label).mkdir(exist_ok=True)
        Image.fromarray(pixels).save(root / label / f"{i:03d}.png")
    first = sorted((root / "bag").glob("*.png"))[0]
    shutil.copyfile(first, root / "bag" / "zz_copy.png")
    Image.open(first).save(root / "bag" / "zz_reencoded.jpg", quality=90)
    return root


def audit_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "winnow.cli", "audit", *args, "--shard-size", str(SHARD), "--batch-size", "5"]


def snapshot(store: Store) -> dict | None:
    """What the audit has committed so far (one short read-only connection), or None while the
    file does not exist yet or a writer holds it."""
    try:
        with store.connect(read_only=True) as con:
            runs = con.execute("SELECT run_id, status FROM runs ORDER BY started").fetchall()
            stages = {r[0] for r in con.execute("SELECT stage FROM run_stages").fetchall()}
            properties = con.execute("SELECT count(*) FROM properties").fetchall()[0][0]
            vectors = con.execute("SELECT count(*) FROM embeddings").fetchall()[0][0]
    except WinnowError:
        return None
    return {"runs": runs, "stages": stages, "properties": properties, "vectors": vectors}


def phase(snap: dict) -> str:
    """Where a killed run stood, from what it had committed."""
    if snap["runs"] and snap["runs"][0][1] == "completed":
        return "completed"
    for stage, before in (("ingest", "ingest"), ("measure", "measure"), ("embed", "embed"), ("detect", "detect")):
        if stage not in snap["stages"]:
            return before
    return "store"  # results committed, run not yet marked completed


# (name, trigger(start snapshot, now snapshot)): kill as soon as the trigger holds
TARGETS = [
    ("run opened", lambda s0, s: bool(s["runs"])),
    ("measuring", lambda s0, s: s["properties"] >= (s0["properties"] if s0 else 0) + 2 * SHARD or "measure" in s["stages"]),
    ("embedding", lambda s0, s: s["vectors"] >= s0["vectors"] + 2 * SHARD),
    ("embedding again", lambda s0, s: s["vectors"] >= s0["vectors"] + 3 * SHARD),
    ("detecting", lambda s0, s: "embed" in s["stages"]),
    ("storing", lambda s0, s: "detect" in s["stages"]),
]


def start_and_kill(args: list[str], store: Store, trigger, env: dict[str, str], timeout: float = 240) -> dict:
    """Start ``winnow audit ARGS``, SIGKILL its process group when ``trigger`` holds; return the
    database's state right after the kill (``phase`` says where it landed)."""
    start = snapshot(store)
    process = subprocess.Popen(audit_command(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, "the kill point was never reached"
            if process.poll() is not None:
                break  # finished before the trigger: the caller sees phase 'completed'
            now = snapshot(store)
            if now is not None and trigger(start, now):
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        stderr = process.communicate()[1].decode(errors="replace")
    assert process.returncode in (0, -signal.SIGKILL), f"audit failed on its own ({process.returncode}): {stderr[-3000:]}"
    after = snapshot(store)
    assert after is not None
    return after


def comparable(store: Store, run_id: str) -> pd.DataFrame:
    frame = store.findings(run_id).drop(columns=["run_id"]).sort_values(["issue_type", "item_id"]).reset_index(drop=True)
    return frame


def assert_same_detail(a: pd.Series, b: pd.Series) -> None:
    """The JSON evidence of each finding is the same, numbers within 1e-4."""

    def close(x, y) -> bool:
        if isinstance(x, dict) and isinstance(y, dict):
            return x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
        if isinstance(x, list) and isinstance(y, list):
            return len(x) == len(y) and all(close(u, v) for u, v in zip(x, y))
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            return bool(np.isclose(x, y, atol=1e-4, rtol=0, equal_nan=True))
        return x == y

    bad = [i for i, (x, y) in enumerate(zip(a, b)) if not close(json.loads(x or "{}"), json.loads(y or "{}"))]
    assert not bad, f"{len(bad)} findings differ in detail, e.g. {a.iloc[bad[0]]} vs {b.iloc[bad[0]]}"


def check_integrity(path: Path) -> dict[str, int]:
    """Open the file read-write, checkpoint it, and scan every column of every table; return row counts."""
    con = duckdb.connect(str(path))
    try:
        con.execute("PRAGMA database_size").fetchall()
        con.execute("CHECKPOINT")
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall()}
        assert tables == set(TABLES), tables
        counts = {}
        for table in TABLES:
            counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            con.execute(f"SELECT sum(hash(COLUMNS(*))) FROM {table}").fetchall()  # reads every block of every column
        con.execute("SELECT * FROM issue_counts").fetchall()
    finally:
        con.close()
    return counts


@pytest.mark.slow
def test_audit_killed_six_times_resumes_to_the_uninterrupted_findings(folder, tmp_path, audit_env):
    started = time.monotonic()
    clean_db = tmp_path / "clean.duckdb"
    reference: dict = {}

    # each audit keeps its own Prefect result storage: the reference run would otherwise cache the
    # detection of this very folder, and the killed run's detect stage would end before a kill lands
    reference_env = {**audit_env, "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(tmp_path / "reference-results")}
    audit_env = {**audit_env, "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(tmp_path / "killed-results")}

    def uninterrupted() -> None:
        reference["result"] = subprocess.run(audit_command(str(folder), "--db", str(clean_db)), env=reference_env, capture_output=True, text=True, timeout=600)

    straight = threading.Thread(target=uninterrupted)
    straight.start()

    db = tmp_path / "killed.duckdb"
    store = Store(db, lock_timeout=10)
    landed = []
    run_id: str | None = None  # known once the first audit has registered its run
    for name, trigger in TARGETS:
        args = [str(folder), "--db", str(db)] if run_id is None else ["--resume", run_id, "--db", str(db)]
        after = start_and_kill(args, store, trigger, audit_env)
        assert len(after["runs"]) == 1, "a resume must continue the run, not start another"
        run_id = after["runs"][0][0]
        landed.append((name, phase(after), after["properties"], after["vectors"]))
    print("\nkills (target, landed in, properties, vectors):", *landed, sep="\n  ")
    phases = [p for _, p, _, _ in landed]
    assert "completed" not in phases, f"a kill came too late: {landed}"
    assert {"embed", "detect", "store"} <= set(phases) and set(phases) & {"ingest", "measure"}, landed
    assert store.get_run(run_id)["status"] == "running"

    resumed = subprocess.run(audit_command("--resume", run_id, "--db", str(db), "--json"), env=audit_env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight.join(timeout=600)
    assert reference["result"].returncode == 0, reference["result"].stderr[-3000:]

    run = store.get_run(run_id)
    assert run["status"] == "completed" and len(store.list_runs()) == 1
    assert set(store.stages(run_id)) == {"ingest", "measure", "embed", "detect"}
    clean = Store(clean_db)
    clean_id = clean.latest_run_id()

    a, b = comparable(store, run_id), comparable(clean, clean_id)
    assert len(a) == len(b) == 152 * 7  # every item scored for every issue type, once
    assert not a.duplicated(["item_id", "issue_type"]).any()
    np.testing.assert_allclose(a.pop("score"), b.pop("score"), atol=1e-4)
    assert_same_detail(a.pop("detail"), b.pop("detail"))
    assert a.equals(b)

    pairs_a, pairs_b = store.pairs(run_id), clean.pairs(clean_id)
    key = ["item_a", "item_b", "method"]
    assert len(pairs_a) >= 1 and not pairs_a.duplicated(key).any()
    merged = pairs_a.merge(pairs_b, on=key, how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    np.testing.assert_allclose(merged["similarity_x"], merged["similarity_y"], atol=1e-4)
    assert run["counts"]["flagged"] == clean.get_run(clean_id)["counts"]["flagged"]
    assert run["counts"]["embed"]["cached"] > 0  # the resumes reused committed vectors

    killed_counts, clean_counts = check_integrity(db), check_integrity(clean_db)
    assert killed_counts == clean_counts, (killed_counts, clean_counts)  # no row lost or doubled, in any table
    print(f"row counts: {killed_counts}; wall {time.monotonic() - started:.0f} s")

"""``make bench-reliability``: the crash loop and the many-reviewers load test at full size.

1. **Crash loop.** An audit of 600 real Fashion-MNIST images (plus exact copies and JPEG
   re-encodes) is killed with SIGKILL (its whole process group) after a random delay, again and
   again, each time resumed with ``winnow audit --resume``, until it completes. An uninterrupted
   audit of the same folder is the reference. Reported: kills survived, where each landed, rows
   lost and doubled per table, the integrity check, wall times.
2. **Filter crash loop.** ``winnow filter`` over a 200k-document corpus (20 shards, planted copies)
   killed the same way and re-run with the same arguments until it completes, against an
   uninterrupted run: manifest rows lost and doubled, and whether the filtered shards are equal.
3. **Load test.** ``winnow dashboard`` on a run with 100k findings, opened by 20 concurrent Chromium
   sessions, each loading the triage queue several times; p50 / p95 page time, against one session
   alone on the same run (the ratio is the cost of sharing).

Writes ``bench/results/reliability.{json,md}``. ``--kills``, ``--docs`` and ``--sessions`` scale it down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench.loadtest import load_pages
from tests.conftest import fashion_images
from tests.live_dashboard import dashboard_server
from tests.reliability.test_crashes import audit_command, check_integrity, comparable, phase, snapshot
from winnow.store import Store

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = {"findings": ["item_id", "issue_type"], "pairs": ["item_a", "item_b", "method"], "items": ["item_id"]}


def build_folder(root: Path, per_class: int = 60) -> Path:
    for i, (pixels, label) in enumerate(fashion_images(per_class, classes=tuple(range(10)))):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / label / f"{i:04d}.png")
    for label in ("bag", "sneaker", "trouser"):
        first = sorted((root / label).glob("*.png"))[0]
        shutil.copyfile(first, root / label / "zz_copy.png")
        Image.open(first).save(root / label / "zz_reencoded.jpg", quality=90)
    return root


def prefect_env(home: Path) -> dict[str, str]:
    return {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}


def kill_after(args: list[str], delay: float, env: dict[str, str]) -> bool:
    """Run ``winnow audit ARGS``; SIGKILL its process group after ``delay`` s. True if it was killed."""
    process = subprocess.Popen(audit_command(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    stderr = process.communicate()[1].decode(errors="replace")
    if process.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"the audit failed on its own ({process.returncode}): {stderr[-2000:]}")
    return process.returncode == -signal.SIGKILL


def table_damage(killed: Store, kid: str, clean: Store, cid: str) -> dict[str, dict[str, int]]:
    """Per table: rows the killed run lacks (lost) and rows it has twice (doubled), against the reference."""
    frames = {"findings": (comparable(killed, kid), comparable(clean, cid)), "pairs": (killed.pairs(kid), clean.pairs(cid)),
              "items": (killed.load_items(kid), clean.load_items(cid))}
    damage = {}
    for table, (a, b) in frames.items():
        key = KEYS[table]
        have = set(map(tuple, a[key].astype(str).to_numpy()))
        want = set(map(tuple, b[key].astype(str).to_numpy()))
        damage[table] = {"rows": len(a), "reference_rows": len(b), "lost": len(want - have), "doubled": int(a.duplicated(key).sum())}
    return damage


def crash_loop(work: Path, max_kills: int, seed: int) -> dict:
    folder = build_folder(work / "images")
    env = prefect_env(work / "prefect")
    rng = random.Random(seed)
    clean_db, db = work / "clean.duckdb", work / "killed.duckdb"
    started = time.monotonic()
    subprocess.run(audit_command(str(folder), "--db", str(clean_db)), env=env, check=True, capture_output=True, timeout=1800)
    reference_s = time.monotonic() - started

    store = Store(db, lock_timeout=30)
    kills, run_id = [], None
    started = time.monotonic()
    while len(kills) < max_kills:
        args = [str(folder), "--db", str(db)] if run_id is None else ["--resume", run_id, "--db", str(db)]
        delay = rng.uniform(2.0, 0.6 * reference_s)
        killed = kill_after(args, delay, env)
        snap = snapshot(store)
        if snap and snap["runs"]:
            run_id = snap["runs"][0][0]
        if not killed:
            break  # it finished before the kill: the loop is over
        kills.append({"after_s": round(delay, 1), "landed_in": phase(snap) if snap else "open"})
    if run_id is None or store.get_run(run_id)["status"] != "completed":
        args = [str(folder), "--db", str(db)] if run_id is None else ["--resume", run_id, "--db", str(db)]
        subprocess.run(audit_command(*args), env=env, check=True, capture_output=True, timeout=1800)
        run_id = run_id or store.latest_run_id()
    killed_s = time.monotonic() - started

    clean = Store(clean_db)
    damage = table_damage(store, run_id, clean, clean.latest_run_id())
    counts, reference_counts = check_integrity(db), check_integrity(clean_db)
    return {
        "items": len(store.load_items(run_id)), "kills": kills, "runs_in_file": len(store.list_runs()),
        "status": store.get_run(run_id)["status"], "damage": damage, "integrity_ok": True,
        "table_counts_equal": counts == reference_counts, "table_counts": counts,
        "reference_wall_s": round(reference_s, 1), "killed_and_resumed_wall_s": round(killed_s, 1),
    }


def filter_command(inputs: str, out: Path, db: Path) -> list[str]:
    return [sys.executable, "-m", "winnow.cli", "filter", inputs, "--out", str(out), "--db", str(db), "--id-key", "id"]


def filter_crash_loop(work: Path, max_kills: int, docs: int, seed: int) -> dict:
    from bench.filter_corpus import build_corpus
    from tests.filtering.test_filter_cli import comparable

    build_corpus(docs, work / "corpus", seed)
    inputs = str(work / "corpus" / "*.jsonl.gz")
    env = prefect_env(work / "prefect-filter")
    rng = random.Random(seed)
    started = time.monotonic()
    subprocess.run(filter_command(inputs, work / "clean-out", work / "clean-filter.duckdb"), env=env, check=True, capture_output=True, timeout=3600)
    reference_s = time.monotonic() - started

    out, db = work / "killed-out", work / "killed-filter.duckdb"
    kills = []
    started = time.monotonic()
    while len(kills) < max_kills:
        delay = rng.uniform(2.0, 0.8 * reference_s)
        process = subprocess.Popen(filter_command(inputs, out, db), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        stderr = process.communicate()[1].decode(errors="replace")
        if process.returncode == 0:
            break
        if process.returncode != -signal.SIGKILL:
            raise RuntimeError(f"winnow filter failed on its own ({process.returncode}): {stderr[-2000:]}")
        kills.append(round(delay, 1))
    subprocess.run(filter_command(inputs, out, db), env=env, check=True, capture_output=True, timeout=3600)
    killed_s = time.monotonic() - started

    manifest_a, shards_a = comparable(work / "clean-out", work / "clean-filter.duckdb")
    manifest_b, shards_b = comparable(out, db)
    key = ["shard", "line"]
    have = set(map(tuple, manifest_b[key].astype(str).to_numpy()))
    want = set(map(tuple, manifest_a[key].astype(str).to_numpy()))
    return {
        "documents": docs, "kills": kills, "runs_in_state": len(list(out.glob(".winnow-state/runs/*"))),
        "manifest_rows": len(manifest_b), "reference_rows": len(manifest_a), "lost": len(want - have),
        "doubled": int(manifest_b.duplicated(key).sum()), "manifest_equal": manifest_a.equals(manifest_b),
        "filtered_shards_equal": shards_a == shards_b, "reference_wall_s": round(reference_s, 1), "killed_and_rerun_wall_s": round(killed_s, 1),
    }


def load_test(work: Path, sessions: int, rounds: int, findings: int, seed: int) -> dict:
    from bench.run_dashboard import ISSUE, build_run

    db = work / "load.duckdb"
    run_id = build_run(db, findings, seed)
    marker = f"matching {ISSUE} findings"
    with dashboard_server(db) as base:
        url = f"{base}triage?run={run_id}"
        load_pages(url, marker, sessions=1, rounds=1)  # the server's first, cold page load
        alone = load_pages(url, marker, sessions=1, rounds=rounds)
        crowd = load_pages(url, marker, sessions=sessions, rounds=rounds)
    return {"findings": findings, "sessions": sessions, "rounds": rounds, "alone": alone.summary(), "crowd": crowd.summary(),
            "p50_ratio": round(crowd.percentile(50) / alone.percentile(50), 2), "errors": crowd.errors[:5]}


def markdown(result: dict) -> str:
    crash, filt, load = result["crash_loop"], result["filter_crash_loop"], result["load_test"]
    lost = sum(d["lost"] for d in crash["damage"].values())
    doubled = sum(d["doubled"] for d in crash["damage"].values())
    lines = [
        "# Reliability benchmark", "",
        f"{result['machine']}; {result['date']}. `make bench-reliability` regenerates this file.", "",
        "## Crash loop", "",
        f"An audit of {crash['items']} real images killed with SIGKILL after random delays and resumed each time, "
        f"against an uninterrupted audit of the same folder ({crash['reference_wall_s']} s).", "",
        "| figure | value |", "|---|---|",
        f"| kills survived | {len(crash['kills'])} |",
        f"| where they landed | {', '.join(k['landed_in'] for k in crash['kills'])} |",
        f"| runs in the file at the end | {crash['runs_in_file']} ({crash['status']}) |",
        f"| rows lost | {lost} |", f"| rows doubled | {doubled} |",
        f"| every table's row count equals the reference's | {crash['table_counts_equal']} |",
        f"| integrity check (checkpoint + full scan) | {'passed' if crash['integrity_ok'] else 'failed'} |",
        f"| wall, killed and resumed until done | {crash['killed_and_resumed_wall_s']} s |", "",
        "| table | rows | reference | lost | doubled |", "|---|---|---|---|---|",
        *[f"| {t} | {d['rows']} | {d['reference_rows']} | {d['lost']} | {d['doubled']} |" for t, d in crash["damage"].items()], "",
        "## Filter crash loop", "",
        f"`winnow filter` over {filt['documents']:,} documents in 20 shards killed with SIGKILL after random delays "
        f"and re-run with the same arguments each time, against an uninterrupted run ({filt['reference_wall_s']} s).", "",
        "| figure | value |", "|---|---|",
        f"| kills survived | {len(filt['kills'])} (after {', '.join(map(str, filt['kills']))} s) |",
        f"| runs in the state folder at the end | {filt['runs_in_state']} |",
        f"| manifest rows | {filt['manifest_rows']} (reference {filt['reference_rows']}) |",
        f"| rows lost / doubled | {filt['lost']} / {filt['doubled']} |",
        f"| manifest equal to the reference's | {filt['manifest_equal']} |",
        f"| filtered shards equal to the reference's | {filt['filtered_shards_equal']} |",
        f"| wall, killed and re-run until done | {filt['killed_and_rerun_wall_s']} s |", "",
        "## Many reviewers at once", "",
        f"`winnow dashboard` on a run with {load['findings']:,} findings; the triage queue opened by "
        f"{load['sessions']} concurrent Chromium sessions, {load['rounds']} loads each, timed until the page has rendered.", "",
        "| sessions | loads | failed | p50 | p95 | max |", "|---|---|---|---|---|---|",
        *[f"| {n} | {s['loads']} | {s['failed']} | {s['p50_s']} s | {s['p95_s']} s | {s['max_s']} s |"
          for n, s in ((1, load["alone"]), (load["sessions"], load["crowd"]))], "",
        f"p50 with {load['sessions']} sessions / p50 alone: **{load['p50_ratio']}×**.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d"),
            "crash_loop": crash_loop(work, args.kills, args.seed),
            "filter_crash_loop": filter_crash_loop(work, args.kills, args.docs, args.seed),
            "load_test": load_test(work, args.sessions, args.rounds, args.findings, args.seed),
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reliability.json").write_text(json.dumps(result, indent=2, default=str))
    (RESULTS / "reliability.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

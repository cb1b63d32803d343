"""The quality benchmark: build the datasets, audit them, run the peers, score and report.

1. build each benchmark dataset with planted problems (``bench/planted.py``)
2. audit it with ``winnow.audit`` into a bench DuckDB file and read findings, pairs and the cached
   embeddings back through ``winnow.store``
3. run the peers in this process on those same embeddings (and, for CleanVision and pHash, the same
   image files)
4. score every method per issue type (``bench/scoring.py``) and write ``bench/results/quality.md``
   and ``quality.json``
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from bench import baselines, peers, signals
from bench.audited import Audited, audit, item_ranking, pair_rankings
from bench.fastdup_peer import fastdup_near_duplicates
from bench.members import ensemble_members
from bench.planted import BUILDERS, PAIR_ISSUES, SEED, WORK, Planted, build
from bench.report import Row, write
from bench.scoring import ItemRanking, PairRanking, score_items, score_pairs

ISSUE_ORDER = ("exact_duplicate", "near_duplicate", "off_topic", "outlier", "label_error", "low_quality")


@dataclass
class Answer:
    """A method's ranking for one issue type, or why there is none."""

    issue_type: str
    method: str
    ranking: ItemRanking | PairRanking | None
    seconds: float | None
    note: str = ""


def attempt(function: Callable[..., Any], *args: Any) -> tuple[Any, float, str]:
    """``(result, wall seconds, "")``, or ``(None, seconds, "failed: …")`` when the method raises:
    one broken peer must not sink the benchmark."""
    start = time.perf_counter()
    try:
        return function(*args), time.perf_counter() - start, ""
    except Exception as exc:  # noqa: BLE001 - any failure of a peer is reported in its row
        return None, time.perf_counter() - start, f"failed: {type(exc).__name__}: {exc}"[:200]


def planted_issues(truth: Planted) -> list[str]:
    return [t for t in ISSUE_ORDER if truth.pairs.get(t) or truth.items.get(t)]


def winnow_answers(truth: Planted, audited: Audited) -> list[Answer]:
    """winnow's stored findings per planted issue type; its outlier score is also ranked for off-topic."""
    pairs = pair_rankings(audited.findings, audited.pairs)
    answers = []
    for issue in planted_issues(truth):
        if issue not in audited.produced:
            answers.append(Answer(issue, "winnow", None, None, "not produced"))
            continue
        ranking = pairs[issue] if issue in PAIR_ISSUES else item_ranking(audited.findings, issue)
        answers.append(Answer(issue, "winnow", ranking, audited.detect_seconds))
    if truth.items.get("off_topic") and "outlier" in audited.produced:
        answers.append(Answer("off_topic", "winnow outlier score", item_ranking(audited.findings, "outlier"), audited.detect_seconds))
    return answers


def peer_answers(truth: Planted, audited: Audited, seed: int, info: dict[str, Any]) -> list[Answer]:
    """Datalab and the kNN baseline on winnow's embeddings; CleanVision and pHash on the image files."""
    ids = audited.embedded["item_id"].tolist()
    labels = audited.embedded["label"].astype(str).tolist()
    features = audited.vectors
    issues = planted_issues(truth)
    answers = []

    ranking, seconds, note = attempt(peers.datalab_near_duplicate, ids, features, labels)
    answers.append(Answer("near_duplicate", "cleanlab Datalab", ranking, seconds, note))
    outliers, seconds, note = attempt(peers.datalab_outlier, ids, features, labels)
    knn, knn_seconds, knn_note = attempt(baselines.knn_distance, ids, features)
    for issue in ("off_topic", "outlier"):
        if issue in issues:
            answers.append(Answer(issue, "cleanlab Datalab (outlier)", outliers, seconds, note))
            answers.append(Answer(issue, "kNN distance only", knn, knn_seconds, knn_note))
    if "label_error" in issues:
        probs, probe_seconds, note = attempt(peers.oof_pred_probs, features, labels, seed)
        ranking, seconds = None, probe_seconds
        if probs is not None:
            pred_probs, classes = probs
            truly = [truth.true_labels.get(i, label) for i, label in zip(ids, labels)]
            predicted = np.array(classes)[pred_probs.argmax(axis=1)]
            info["out-of-fold probe accuracy (given / true labels)"] = (
                f"{np.mean(predicted == np.array(labels)):.3f} / {np.mean(predicted == np.array(truly)):.3f} ({probe_seconds:.1f} s)"
            )
            ranking, label_seconds, note = attempt(peers.datalab_label, ids, labels, pred_probs)
            seconds += label_seconds
        answers.append(Answer("label_error", "cleanlab Datalab (OOF pred_probs)", ranking, seconds, note))

    if truth.modality == "image":
        root = Path(truth.source)
        duplicates, seconds, note = attempt(peers.cleanvision_duplicates, root, ids)
        for issue in ("exact_duplicate", "near_duplicate"):
            answers.append(Answer(issue, "CleanVision", duplicates[issue] if duplicates else None, seconds, note))
        ranking, seconds, note = attempt(baselines.phash_pairs, root, ids)
        answers.append(Answer("near_duplicate", "pHash only", ranking, seconds, note))
        result, seconds, note = attempt(fastdup_near_duplicates, root, ids)
        answers.append(Answer("near_duplicate", "fastdup", result[0] if result else None, result[1] if result else seconds, note))
        if "low_quality" in issues:
            ranking, seconds, note = attempt(peers.cleanvision_quality, root, ids)
            answers.append(Answer("low_quality", "CleanVision (dark/blurry/low info)", ranking, seconds, note))
    return answers


def signal_answers(truth: Planted, audited: Audited) -> list[Answer]:
    """Each signal inside winnow's fused near-duplicate and label-error detectors, ranked alone
    (``bench/signals.py``), for the issue types planted in this dataset."""
    issues = planted_issues(truth)
    answers = []
    for issue, compute in (("near_duplicate", signals.near_duplicate_signals), ("label_error", signals.label_error_signals)):
        if issue in issues:
            found, seconds, note = attempt(compute, truth, audited)
            if found is None:
                answers.append(Answer(issue, "winnow signals", None, seconds, note))
            answers += [Answer(kind, method, ranking, took) for kind, method, ranking, took in found or []]
    return answers


def member_answers(truth: Planted, audited: Audited) -> list[Answer]:
    """Each member of winnow's off-topic and outlier ensembles ranked alone (``bench/members.py``)."""
    found, seconds, note = attempt(ensemble_members, truth, audited)
    if found is None:
        return [Answer(issue, "winnow members", None, seconds, note) for issue in ("off_topic", "outlier") if truth.items.get(issue)]
    return [Answer(kind, method, ranking, took) for kind, method, ranking, took in found]


def score(truth: Planted, answers: list[Answer]) -> list[Row]:
    """Score every answer, plus each off-topic group (scattered / cluster) on its own."""
    rows: list[tuple[tuple, Row]] = []
    for n, answer in enumerate(answers):
        issue = answer.issue_type
        if answer.ranking is None:
            rows.append(((ISSUE_ORDER.index(issue), "", n), Row(issue, answer.method, None, answer.seconds, answer.note)))
            continue
        if issue in PAIR_ISSUES:
            metrics = score_pairs(answer.ranking, truth.pairs[issue], len(truth.ids), truth.ignored_pairs(issue), truth.ignored_pair_items(issue))
        else:
            metrics = score_items(answer.ranking, truth.items[issue], truth.ids, truth.ignored(issue))
        rows.append(((ISSUE_ORDER.index(issue), "", n), Row(issue, answer.method, metrics, answer.seconds, answer.note)))
        for group, members in truth.groups.get(issue, {}).items():
            ignore = truth.ignored(issue) | (truth.items[issue] - members)
            metrics = score_items(answer.ranking, members, truth.ids, ignore)
            rows.append(((ISSUE_ORDER.index(issue), group, n), Row(f"{issue}/{group}", answer.method, metrics, answer.seconds)))
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def versions() -> dict[str, str]:
    names = ("winnow", "numpy", "scikit-learn", "torch", "duckdb", "prefect", "cleanlab", "cleanvision", "imagehash", "faiss-cpu")
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="winnow quality benchmark against cleanlab Datalab, CleanVision and baselines")
    parser.add_argument("--datasets", default=",".join(BUILDERS), help="comma-separated subset of " + ", ".join(BUILDERS))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--work", type=Path, default=WORK, help="where datasets and the bench DuckDB file go (git-ignored)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--keep-cache", action="store_true", help="reuse embeddings from an earlier run instead of starting a fresh DB")
    args = parser.parse_args(argv)
    names = [n for n in args.datasets.split(",") if n]
    unknown = sorted(set(names) - set(BUILDERS))
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(BUILDERS)}")

    db = args.work / "bench.duckdb"
    if not args.keep_cache:
        for stale in (db, db.with_suffix(".duckdb.wal")):
            stale.unlink(missing_ok=True)
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        print(f"[bench] {name}: building", flush=True)
        truth = build(name, args.work, args.seed)
        print(f"[bench] {name}: auditing {len(truth.ids)} items", flush=True)
        audited = audit(truth, str(db))
        summary = audited.summary
        info: dict[str, Any] = {
            "items": len(truth.ids),
            "planted (see bench/planted.py)": ", ".join(f"{kind} {n}" for kind, n in sorted(Counter(truth.kinds.values()).items())),
            "winnow audit (ingest + embed + detect + store)": f"{audited.audit_seconds:.1f} s, model {summary['model_id']}, kNN {summary['knn']}",
            "winnow detectors skipped / failed": f"{summary.get('skipped') or 'none'} / {summary.get('failed') or 'none'}",
        }
        print(f"[bench] {name}: peers", flush=True)
        answers = winnow_answers(truth, audited) + peer_answers(truth, audited, args.seed, info) + signal_answers(truth, audited)
        answers += member_answers(truth, audited)
        info["not produced by winnow"] = ", ".join(a.issue_type for a in answers if a.method == "winnow" and a.ranking is None) or "none"
        info["produced by winnow, nothing planted"] = ", ".join(sorted(audited.produced - set(planted_issues(truth)))) or "none"
        results[name] = {"info": info, "rows": score(truth, answers)}
        for row in results[name]["rows"]:
            ap = f"AP {row.metrics.ap:.3f}" if row.metrics else row.note
            print(f"[bench] {name}: {row.issue_type:<22} {row.method:<36} {ap}", flush=True)

    meta = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "seed": args.seed,
        "total wall time": f"{time.perf_counter() - started:.0f} s",
        "fastdup": "2.54 in its own venv (.venv-fastdup; it pins numpy < 2), its own model, on the same image files",
        "versions": versions(),
    }
    write(args.out, meta, results)
    print(f"[bench] wrote {args.out / 'quality.md'} in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


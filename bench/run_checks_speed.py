"""``make bench-checks``: wall time of winnow's image checks on 10,000 images, against CleanVision.

Usage: ``python -m bench.run_checks_speed [--seed 7] [--work bench/work] [--out bench/results]`` from
the repository root; writes ``checks_speed.md`` and ``checks_speed.json``.

1. Build (once; reused while its ``manifest.json`` matches) ``bench/work/checks_speed/images``:
   10,000 Fashion-MNIST images upscaled 8x to 224×224, tinted (a random background and garment
   colour each, so the set is colour like most photo sets, plus mild noise) and saved as RGB JPEG,
   quality 90, in ``<class>/`` folders: the usual input size and file format of image classifiers.
   A few images carry a planted problem (:data:`PLANTS`), so the checks have something to find.
2. Read every file once, so both tools start with a warm page cache.
3. Time winnow's check path stage by stage in a fresh process, with the library functions the audit
   flow calls and a real DuckDB file: ingest, the measure stage in shards of the flow's default size
   (one decode per image: quality properties and pHash/dHash, cached in DuckDB by content hash),
   loading the properties back, the ``corrupt`` and image-quality checks, the exact-duplicate
   detector (content hashes from ingest) and storing the findings. Then CleanVision in a fresh
   process on the same files. Then winnow again, as a second run on the same DuckDB file: every
   property is cached, so only ingest (which re-reads and re-hashes every file) and the cheap stages
   are left.

Timings are wall seconds (``perf_counter``); CPU seconds add user and system time of the process and
of its reaped children (CleanVision's worker pool), and are less sensitive to other load on the
machine. A process's peak RSS is its ``VmHWM`` (``/proc/self/status``), not ``getrusage``'s
``ru_maxrss``: Linux carries ``ru_maxrss`` over from the parent into a spawned process, so there it
reported the benchmark's own 400 MiB instead of the tool's. CleanVision's workers are forked, so for
them ``ru_maxrss`` of the largest reaped worker is the right figure (it counts the pages it shares
with its parent).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from bench.report import results_head


# Only the standard library, numpy and Pillow at module level: each tool runs in a spawned process,
# which imports this module before its timed stages start.

N_IMAGES = 10_000
SIDE = 224
JPEG_QUALITY = 90
NOISE = 5.0
GOAL_SECONDS = 60.0
PLANTS: dict[str, int] = {
    "dark": 20, "light": 20, "blurry": 20, "low_information": 20, "grayscale": 20, "odd_size": 20,
    "odd_aspect_ratio": 20, "truncated": 20, "exact_duplicate": 20, "near_duplicate": 20,
}
"""Planted images per problem; see :func:`_plant` for what each one is."""
CLEANVISION_QUALITY = ("dark", "light", "blurry", "low_information", "odd_size", "odd_aspect_ratio", "grayscale")
CLEANVISION_DUPLICATES = ("exact_duplicates", "near_duplicates")
WINNOW_SUB_ISSUE = {"dark": "too_dark", "light": "too_light"}
"""winnow's ``low_quality`` sub-issue names where they differ from the planted kind (and CleanVision's)."""


# -- the image folder ----------------------------------------------------------------------------


def _tinted(pixels: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A 28×28 garment as a 224×224 RGB photo: background and garment each get a random colour, and
    sensor-like noise (σ = :data:`NOISE` grey levels) gives it the fine texture of a real photo."""
    background = rng.integers(110, 246, 3).astype(np.float32)
    garment = rng.integers(10, 200, 3).astype(np.float32)
    weight = pixels.astype(np.float32)[..., None] / 255.0
    small = Image.fromarray((background * (1 - weight) + garment * weight).round().astype(np.uint8))
    rgb = np.asarray(small.resize((SIDE, SIDE), Image.Resampling.BICUBIC), np.float32)
    rgb += rng.normal(0, NOISE, rgb.shape).astype(np.float32)
    return Image.fromarray(rgb.clip(0, 255).round().astype(np.uint8))


def _jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _plant(kind: str, image: Image.Image, original: bytes) -> bytes:
    """The file of an image with a planted problem: ``image`` is a fresh garment, ``original`` the
    encoded file of a clean one (for the duplicates)."""
    if kind == "dark":
        return _jpeg(ImageEnhance.Brightness(image).enhance(0.12))
    if kind == "light":
        return _jpeg(Image.blend(image, Image.new("RGB", image.size, (255, 255, 255)), 0.92))
    if kind == "blurry":
        return _jpeg(image.filter(ImageFilter.GaussianBlur(6)))
    if kind == "low_information":  # one flat colour: the garment's mean
        return _jpeg(Image.new("RGB", image.size, tuple(int(v) for v in np.asarray(image).reshape(-1, 3).mean(axis=0))))
    if kind == "grayscale":  # a single-channel JPEG, as grayscale photos in colour sets usually are
        return _jpeg(image.convert("L"))
    if kind == "odd_size":  # a thumbnail
        return _jpeg(image.resize((56, 56), Image.Resampling.BICUBIC))
    if kind == "odd_aspect_ratio":  # 4:1, same area as the others
        return _jpeg(image.resize((2 * SIDE, SIDE // 2), Image.Resampling.BICUBIC))
    if kind == "truncated":  # the download stopped half way
        data = _jpeg(image)
        return data[: len(data) // 2]
    if kind == "exact_duplicate":
        return original
    if kind == "near_duplicate":  # the same picture, re-encoded at a lower quality
        return _jpeg(Image.open(io.BytesIO(original)), quality=60)
    raise ValueError(f"unknown plant {kind!r}")


def build_folder(root: Path, seed: int) -> dict[str, list[str]]:
    """Write ``root/<class>/img_NNNNN.jpg`` unless a matching build is there; return the relative
    paths of the planted images per kind (for duplicates: the copies and their originals).
    ``manifest.json`` is written last, so a killed build is rebuilt."""
    from bench.planted import FASHION_CLASSES, _fashion_mnist

    spec = {"images": N_IMAGES, "side": SIDE, "jpeg_quality": JPEG_QUALITY, "noise": NOISE, "seed": seed, "plants": PLANTS}
    manifest = root / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text())["spec"] == spec:
        return json.loads(manifest.read_text())["planted"]

    rng = np.random.default_rng(seed)
    pixels, targets = _fashion_mnist()
    n_clean = N_IMAGES - sum(PLANTS.values())
    chosen = rng.choice(len(pixels), size=N_IMAGES, replace=False)
    files: list[tuple[str, bytes, str, int | None]] = []  # (class, file bytes, kind, index of the original)
    for i in chosen[:n_clean]:
        files.append((FASHION_CLASSES[targets[i]], _jpeg(_tinted(pixels[i], rng)), "clean", None))
    originals = iter(rng.choice(n_clean, size=PLANTS["exact_duplicate"] + PLANTS["near_duplicate"], replace=False).tolist())
    fresh = iter(chosen[n_clean:].tolist())
    for kind, count in PLANTS.items():
        for _ in range(count):
            i = next(fresh)
            original = next(originals) if kind in ("exact_duplicate", "near_duplicate") else None
            label = FASHION_CLASSES[targets[i]] if original is None else files[original][0]
            data = _plant(kind, _tinted(pixels[i], rng), b"" if original is None else files[original][1])
            files.append((label, data, kind, original))

    for old in root.rglob("*.jpg"):
        old.unlink()
    numbers = rng.permutation(len(files))
    paths = [f"{label}/img_{number:05d}.jpg" for number, (label, *_) in zip(numbers, files)]
    planted: dict[str, list[str]] = {kind: [] for kind in PLANTS}
    for path, (_, data, kind, original) in zip(paths, files):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
        if kind != "clean":
            planted[kind] += [path] if original is None else [path, paths[original]]
    manifest.write_text(json.dumps({"spec": spec, "planted": planted}, indent=1))
    return planted


def warm_page_cache(root: Path) -> int:
    """Read every file under ``root`` once; return the bytes read."""
    return sum(len(p.read_bytes()) for p in root.rglob("*.jpg"))


# -- timing --------------------------------------------------------------------------------------


@dataclass
class Stage:
    """One timed stage: wall and CPU seconds, and the peak RSS (MiB) of the process so far."""

    name: str
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float


@dataclass
class Timed:
    """What one tool did in its own process: its stages and what it found."""

    tool: str
    stages: list[Stage] = field(default_factory=list)
    found: dict[str, Any] = field(default_factory=dict)
    largest_worker_rss_mib: float | None = None
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)
    load_after: tuple[float, float, float] | None = None

    @property
    def total(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def cpu_total(self) -> float:
        return sum(s.cpu_seconds for s in self.stages)

    @property
    def peak_rss_mib(self) -> float:
        return max(s.peak_rss_mib for s in self.stages)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body as stage ``name``."""
        start, cpu = time.perf_counter(), _cpu_seconds()
        yield
        self.stages.append(Stage(name, time.perf_counter() - start, _cpu_seconds() - cpu, _peak_rss_mib()))

    def finish(self) -> Timed:
        """Record the load average and the largest reaped worker's peak RSS; return self."""
        self.load_after = os.getloadavg()
        workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        self.largest_worker_rss_mib = workers / 1024 if workers else None
        return self


def _peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (``VmHWM``; see the module doc)."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def in_fresh_process(function: Callable[..., Timed], *args: Any) -> Timed:
    """Run ``function(*args)`` in a new (spawned) interpreter, so imports and peak RSS are its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


# -- the tools -----------------------------------------------------------------------------------


def time_winnow(folder: str, db: str, label: str) -> Timed:
    """One check run of ``folder`` into the DuckDB file ``db``, stage by stage (see the module doc)."""
    timed = Timed(label)
    with timed.stage("import winnow"):
        import pandas as pd

        from checks.corrupt import check_corrupt
        from checks.image_quality import check_image_quality
        from detectors.exact_duplicate import detect_exact_duplicate
        from winnow import stages
        from winnow.config import DEFAULT_SHARD_SIZE, AuditConfig
        from winnow.datasets import ingest
        from winnow.findings import validate_findings
        from winnow.store import Store

    store = Store(db)
    config = AuditConfig(source=folder, name="checks-speed")
    measurer = stages.measurer_for("image")
    assert measurer is not None
    with timed.stage("ingest: list, read + hash, header check (datasets.ingest)"):
        dataset = ingest(folder)
    with timed.stage("store: open the run, save items (open_run, Store.save_items)"):
        run_id, _ = stages.open_run(store, config)
        store.save_items(run_id, dataset.items)
    cached = 0
    with timed.stage(f"measure: decode, properties, pHash/dHash, cache (measure_shard × {DEFAULT_SHARD_SIZE})"):
        errors: dict[str, str] = {}
        for rows in stages.shards(dataset, DEFAULT_SHARD_SIZE):
            result = stages.measure_shard(store, dataset, rows, measurer)
            errors.update(result["errors"])
            cached += result["cached"]
        stages.record_decode_errors(store, run_id, dataset, errors)
    with timed.stage("load properties (load_properties)"):
        properties = stages.load_properties(store, dataset.items, measurer.kind)
    with timed.stage("check_corrupt"):
        corrupt = check_corrupt(dataset.items)
    with timed.stage("check_image_quality"):
        quality = check_image_quality(properties)
    with timed.stage("exact-duplicate detector (content hashes)"):
        duplicates = detect_exact_duplicate(dataset.items[dataset.items["error"].isna()].reset_index(drop=True))
    with timed.stage("store findings (Store.save_results)"):
        findings = validate_findings(pd.concat([corrupt, quality, duplicates.findings], ignore_index=True))
        store.save_results(run_id, findings, duplicates.pairs)

    fired = [json.loads(d) if isinstance(d, str) else d for d in quality.loc[quality["flagged"], "detail"]]
    timed.found = {
        "items": len(dataset.items), "properties cached before this run": cached, "measured": len(properties),
        "flagged": {
            "corrupt": int(corrupt["flagged"].sum()), "exact_duplicate": int(duplicates.findings["flagged"].sum()),
            **{name: sum(name in d["fired"] for d in fired) for name in sorted({n for d in fired for n in d["fired"]})},
        },
        "flagged_items": {
            "corrupt": corrupt.loc[corrupt["flagged"], "item_id"].tolist(),
            "exact_duplicate": duplicates.findings.loc[duplicates.findings["flagged"], "item_id"].tolist(),
            **{kind: [i for i, d in zip(quality.loc[quality["flagged"], "item_id"], fired) if WINNOW_SUB_ISSUE.get(kind, kind) in d["fired"]]
               for kind in CLEANVISION_QUALITY},
        },
    }
    return timed.finish()


def time_cleanvision(root: str, files: list[str], n_jobs: int) -> Timed:
    """CleanVision 0.3.7 on ``files`` (relative to ``root``): its seven image-property issue types in
    one pass (one decode per image), then exact (MD5 of pixels) and near (8×8 pHash) duplicates in a
    second pass (a second decode), each over a pool of ``n_jobs`` processes."""
    timed = Timed("CleanVision")
    with timed.stage("import cleanvision"):
        from cleanvision import Imagelab
    paths = [f"{root}/{f}" for f in files]
    with timed.stage("Imagelab(filepaths)"):
        lab = Imagelab(filepaths=paths, verbose=False)
    with timed.stage(f"find_issues: {', '.join(CLEANVISION_QUALITY)}"):
        lab.find_issues({name: {} for name in CLEANVISION_QUALITY}, n_jobs=n_jobs, verbose=False)
    with timed.stage(f"find_issues: {', '.join(CLEANVISION_DUPLICATES)}"):
        lab.find_issues({name: {} for name in CLEANVISION_DUPLICATES}, n_jobs=n_jobs, verbose=False)
    issues = lab.issues.loc[paths]
    flagged = {name: [f for f, hit in zip(files, issues[f"is_{name}_issue"]) if hit] for name in CLEANVISION_QUALITY + CLEANVISION_DUPLICATES}
    timed.found = {"items": len(files), "flagged": {k: len(v) for k, v in flagged.items()}, "flagged_items": flagged}
    return timed.finish()


# -- the report ----------------------------------------------------------------------------------


def _stage_rows(timed: Timed) -> list[str]:
    rows = [f"| {timed.tool} | {s.name} | {s.seconds:.2f} | {s.cpu_seconds:.2f} | {s.peak_rss_mib:.0f} |" for s in timed.stages]
    rows.append(f"| **{timed.tool}** | **total** | **{timed.total:.2f}** | **{timed.cpu_total:.2f}** | **{timed.peak_rss_mib:.0f}**"
                f"{f' (+ largest worker {timed.largest_worker_rss_mib:.0f})' if timed.largest_worker_rss_mib else ''} |")
    return rows


def _found_rows(planted: dict[str, list[str]], first: Timed, cleanvision: Timed) -> list[str]:
    """Per planted kind: how many of the planted images each tool flagged for that issue type."""
    ours = {"truncated": "corrupt", "exact_duplicate": "exact_duplicate"}
    theirs = {"exact_duplicate": "exact_duplicates", "near_duplicate": "near_duplicates"}
    rows = ["| planted | images | winnow flagged (of planted / all) | CleanVision flagged (of planted / all) |", "|---|---|---|---|"]
    for kind, items in planted.items():
        cells = []
        for timed, name in ((first, ours.get(kind, kind)), (cleanvision, theirs.get(kind, kind))):
            hits = timed.found["flagged_items"].get(name)
            cells.append("–" if hits is None else f"{len(set(hits) & set(items))} / {len(hits)}")
        rows.append(f"| {kind} | {len(items)} | {cells[0]} | {cells[1]} |")
    return rows


def write_report(out: Path, meta: dict[str, Any], planted: dict[str, list[str]], runs: list[Timed]) -> dict[str, Any]:
    """Write ``checks_speed.json`` and ``checks_speed.md``; return the headline numbers."""
    first, cleanvision, second = runs
    quality_only = sum(s.seconds for s in cleanvision.stages if "duplicates" not in s.name)
    measure = next(s for s in first.stages if s.name.startswith("measure"))
    headline = {
        "images": first.found["items"],
        "winnow seconds (first run)": round(first.total, 2),
        "winnow images/s": round(first.found["items"] / first.total, 1),
        "winnow measure stage: share of the first run": f"{measure.seconds / first.total:.0%}",
        "winnow measure stage: cores busy (CPU s / wall s)": round(measure.cpu_seconds / measure.seconds, 2),
        "winnow seconds (second run, properties cached)": round(second.total, 2),
        "CleanVision seconds (9 issue types)": round(cleanvision.total, 2),
        "CleanVision seconds (7 property issue types only)": round(quality_only, 2),
        "ratio winnow / CleanVision, wall": round(first.total / cleanvision.total, 3),
        "ratio winnow / CleanVision 7 property types only, wall": round(first.total / quality_only, 3),
        "ratio winnow / CleanVision, CPU": round(first.cpu_total / cleanvision.cpu_total, 3),
        f"goal: first run < {GOAL_SECONDS:.0f} s on {os.cpu_count()} cores": "met" if first.total < GOAL_SECONDS else "NOT met",
    }
    out.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "headline": headline, "planted": {k: len(v) for k, v in planted.items()},
               "runs": [{**asdict(t), "found": {k: v for k, v in t.found.items() if k != "flagged_items"}} for t in runs]}
    (out / "checks_speed.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")

    lines = [
        *results_head("winnow image checks: speed on 10,000 images, against CleanVision", "`make bench-checks` (`bench/run_checks_speed.py`)",
                      "The module docstring says how the folder is built and what each stage does.", meta, headline),
        "Machines here are shared and noisy: compare the ratios (winnow and CleanVision measured in the same run,",
        "one after the other, on the same warm files) rather than seconds across runs. The load average before and",
        "after each tool is in the table below the stages.",
        "",
        "What each side computes:",
        "",
        "- **winnow**: ingest (list files, read and BLAKE2b-hash every file, Pillow header check), then one full",
        "  decode per image measuring brightness percentiles and spread, Laplacian variance and gradient energy, entropy,",
        "  grayscale, EXIF orientation, size and aspect ratio, plus pHash and dHash (the near-duplicate detector's",
        "  input; grouping near duplicates needs embeddings and is not part of this path), all cached in DuckDB; then",
        "  the `corrupt` check, the `low_quality` check (too_dark, too_light, blurry, low_information, odd_size,",
        "  odd_aspect_ratio, grayscale, exif_orientation) and `exact_duplicate` (same bytes), stored as findings.",
        "- **CleanVision**: dark, light, blurry, low_information, odd_size, odd_aspect_ratio, grayscale (one decode per",
        "  image), then exact_duplicates (MD5 of pixels) and near_duplicates (8×8 pHash sets) (a second decode). It gets",
        "  every file except the truncated ones: one truncated JPEG makes its worker raise `OSError: image file is",
        "  truncated` and aborts `find_issues` for the whole set.",
        "",
        "## Stages",
        "",
        "| tool | stage | wall s | CPU s | peak RSS MiB (so far) |",
        "|---|---|---|---|---|",
        *(row for timed in runs for row in _stage_rows(timed)),
        "",
        "| tool | load average before | after |",
        "|---|---|---|",
        *(f"| {t.tool} | {', '.join(f'{v:.2f}' for v in t.load_before)} | {', '.join(f'{v:.2f}' for v in t.load_after or ())} |" for t in runs),
        "",
        "## What was found (sanity check, not a quality score: `make bench-quality` scores that)",
        "",
        *_found_rows(planted, first, cleanvision),
        "",
        f"winnow's second run: {second.found['properties cached before this run']} of {second.found['items']} items had cached",
        "properties; only the others (the truncated files: a decode error is not cached) were decoded again.",
        "",
    ]
    (out / "checks_speed.md").write_text("\n".join(lines))
    return headline


def main(argv: list[str] | None = None) -> int:
    from bench.planted import SEED, WORK
    from bench.quality import machine, versions
    from winnow.stages import MEASURE_THREADS

    parser = argparse.ArgumentParser(description="wall time of winnow's image checks on 10,000 images, against CleanVision")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--work", type=Path, default=WORK, help="where the image folder and the DuckDB file go (git-ignored)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)

    root = (args.work / "checks_speed" / "images").resolve()
    print(f"[bench-checks] building or reusing {root}", flush=True)
    started = time.perf_counter()
    planted = build_folder(root, args.seed)
    built = time.perf_counter() - started
    megabytes = warm_page_cache(root) / 2**20
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))
    db = (args.work / "checks_speed" / "checks_speed.duckdb").resolve()
    for stale in (db, db.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)

    runs = []
    print(f"[bench-checks] winnow, first run on {len(files)} images", flush=True)
    runs.append(in_fresh_process(time_winnow, str(root), str(db), "winnow"))
    print(f"[bench-checks] winnow: {runs[-1].total:.1f} s; CleanVision", flush=True)
    readable = [f for f in files if f not in set(planted["truncated"])]
    runs.append(in_fresh_process(time_cleanvision, str(root), readable, os.cpu_count() or 1))
    print(f"[bench-checks] CleanVision: {runs[-1].total:.1f} s; winnow, second run (properties cached)", flush=True)
    runs.append(in_fresh_process(time_winnow, str(root), str(db), "winnow, second run"))

    meta = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "folder": f"{len(files)} JPEG files, {megabytes:.0f} MiB, {SIDE}×{SIDE} RGB quality {JPEG_QUALITY} except the planted ones "
                  f"(seed {args.seed}; {'built' if built > 1 else 'reused'} in {built:.0f} s), page cache warmed before timing",
        "CleanVision n_jobs": os.cpu_count(),
        "winnow measure threads": MEASURE_THREADS,
        "total wall time of the benchmark": f"{time.perf_counter() - started:.0f} s",
        "versions": versions(),
    }
    headline = write_report(args.out, meta, planted, runs)
    for key, value in headline.items():
        print(f"[bench-checks] {key}: {value}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

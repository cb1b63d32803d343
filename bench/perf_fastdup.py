"""fastdup and winnow side by side on the same image folder (issue 9): the ratio of wall times.

The folder is :data:`N_IMAGES` Fashion-MNIST training images (Debian ``dataset-fashion-mnist``),
drawn at random (seeded) and written as 28×28 PNG files in ``<class>/`` folders. fastdup 2.54 runs
in its own venv (``bench/fastdup_peer.py``: it embeds every image with the model it ships, builds
its kNN graph, similarity pairs and components); winnow runs a whole audit on the same folder
(``winnow.audit``: ingest, image quality and perceptual hashes, EfficientNet-Lite0 embeddings,
every detector, storing) in a fresh interpreter with an empty DuckDB file and Prefect home. Each
side's wall time counts from the start of its process to its end, so both include their imports
and model loading; fastdup's own timing of ``fd.run`` is given too, and winnow's per-stage seconds.

What each finds is not measured here: the near-duplicate AP of both on the planted image set is
taken from ``bench/results/quality.json`` (``make bench-quality``), where the same two tools ran on
the same files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

N_IMAGES = 10_000
DATASET = "perf-fastdup"


def write_folder(root: Path, seed: int, n: int = N_IMAGES) -> Path:
    """``root/<class>/img_NNNNN.png``: ``n`` Fashion-MNIST training images, written once."""
    from PIL import Image

    from bench.planted import FASHION_CLASSES, _fashion_mnist

    done = root / f".complete-{n}-{seed}"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    pixels, labels = _fashion_mnist()
    for i in np.random.default_rng(seed).choice(len(pixels), n, replace=False):
        folder = root / FASHION_CLASSES[labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i]).save(folder / f"img_{i:05d}.png")
    done.touch()
    return root


def audit_folder(root: str, db: str, prefect_home: str) -> dict[str, Any]:
    """A whole ``winnow.audit`` of the folder (in a fresh interpreter): its summary and per-stage seconds."""
    os.environ["PREFECT_HOME"] = prefect_home
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import winnow

    report = winnow.audit(root, db=db, name=DATASET)
    return {"summary": report.info}


def _timed_process(function: Any, *args: Any) -> dict[str, Any]:
    from bench.run_scale import in_fresh_process, load_average

    load, start = load_average(), time.perf_counter()
    out = in_fresh_process(function, *args)
    return {**out, "seconds": time.perf_counter() - start, "load before": load, "load after": load_average()}


def run_fastdup(root: str) -> dict[str, Any]:
    """fastdup on the folder in its venv: wall seconds of the whole process, and of ``fd.run`` alone."""
    import tempfile

    from bench.fastdup_peer import fastdup_python
    from bench.run_scale import load_average

    script = Path(__file__).with_name("fastdup_peer.py")
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "pairs.json"
        load, start = load_average(), time.perf_counter()
        subprocess.run([str(fastdup_python()), str(script), root, str(out), work], check=True, capture_output=True, timeout=7200)
        seconds = time.perf_counter() - start
        result = json.loads(out.read_text())
    return {"seconds": seconds, "run seconds": result["seconds"], "version": result.get("version"), "pairs": len(result["pairs"]),
            "load before": load, "load after": load_average()}


def quality_ap(results: Path) -> dict[str, Any]:
    """Near-duplicate AP of winnow and fastdup on the planted image set, from ``quality.json``."""
    path = results / "quality.json"
    if not path.exists():
        return {"source": f"{path} is missing: run make bench-quality"}
    quality = json.loads(path.read_text())
    rows = quality["datasets"]["images"]["rows"]
    ap = {r["method"]: r["metrics"]["ap"] for r in rows if r["issue_type"] == "near_duplicate" and r["metrics"] and r["method"] in ("winnow", "fastdup")}
    return {"source": f"bench/results/quality.json, generated {quality['meta'].get('generated', '?')}",
            "items": quality["datasets"]["images"]["info"].get("items"), "near_duplicate AP": ap}


def measure(work: Path, results: Path, seed: int, n: int = N_IMAGES) -> dict[str, Any]:
    """fastdup, then winnow, on the same folder, one after the other."""
    folder = work / "perf" / "fastdup"
    root = write_folder(folder / "images", seed, n)
    db, home = folder / "winnow.duckdb", folder / "prefect-home"
    for stale in (db, Path(f"{db}.wal")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    print(f"[bench-perf] fastdup on {n:,} images", flush=True)
    fastdup = run_fastdup(str(root))
    print(f"[bench-perf] fastdup took {fastdup['seconds']:.0f} s; winnow audit of the same folder", flush=True)
    ours = _timed_process(audit_folder, str(root), str(db), str(home))
    return {
        "images": n, "fastdup": fastdup,
        "winnow": {"seconds": ours["seconds"], "stage seconds": ours["summary"].get("seconds", {}), "embed": ours["summary"]["embed"],
                   "knn": ours["summary"]["knn"], "load before": ours["load before"], "load after": ours["load after"]},
        "ratio winnow / fastdup": ours["seconds"] / fastdup["seconds"],
        "quality": quality_ap(results),
    }

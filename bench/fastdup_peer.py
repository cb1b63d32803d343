"""fastdup as a peer: its own embedding model and kNN on the same image folder winnow audits.

fastdup 2.54 pins numpy < 2 and scikit-learn 1.5, which winnow cannot share, so it lives in its own
venv (``.venv-fastdup``, made by ``make bench-quality`` / ``make bench-perf``) and runs as a
subprocess: this file is both the worker (``python bench/fastdup_peer.py ROOT OUT.json`` inside
that venv) and the caller (:func:`fastdup_near_duplicates` in winnow's venv). fastdup works offline
with the model it ships.

Pairs are ranked by fastdup's cosine similarity between each image and its ``K`` nearest neighbours
(down to ``FLOOR``, so the ranking reaches far below its flagging threshold); flagged pairs are those
at or above ``ccthreshold`` = 0.96, the threshold fastdup groups duplicate components by.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV = Path(__file__).resolve().parents[1] / ".venv-fastdup"
K = 10
FLOOR = 0.5
FLAG = 0.96


def fastdup_python() -> Path:
    """The fastdup venv's interpreter (``WINNOW_FASTDUP_PYTHON`` overrides); says how to make it."""
    python = Path(os.environ.get("WINNOW_FASTDUP_PYTHON", VENV / "bin" / "python"))
    if not python.exists():
        raise RuntimeError(f"no fastdup venv at {python.parent.parent}: python3 -m venv {VENV} && {VENV}/bin/pip install fastdup==2.54")
    return python


def fastdup_near_duplicates(root: Path, ids: list[str]):
    """fastdup's near-duplicate pairs over the images under ``root`` as a :class:`PairRanking` of
    winnow item ids (paths relative to ``root``), and fastdup's own wall time in seconds."""
    from bench.scoring import PairRanking, canonical_pair

    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "pairs.json"
        subprocess.run([str(fastdup_python()), __file__, str(root), str(out), work], check=True, capture_output=True, timeout=3600)
        result = json.loads(out.read_text())
    known = set(ids)
    scores: dict = {}
    for a, b, similarity in result["pairs"]:
        if a in known and b in known and a != b:
            pair = canonical_pair(a, b)
            scores[pair] = max(scores.get(pair, -1.0), similarity)
    flagged = {pair for pair, s in scores.items() if s >= FLAG}
    return PairRanking(scores, flagged), result["seconds"]


def _worker(root: Path, out: Path, work: Path) -> None:
    """Inside the fastdup venv: run fastdup on ``root`` and write its pairs (relative paths) and time."""
    import fastdup

    started = time.perf_counter()
    fd = fastdup.create(work_dir=str(work / "fastdup"), input_dir=str(root))
    fd.run(overwrite=True, verbose=False, threshold=FLOOR, nearest_neighbors_k=K, ccthreshold=FLAG)
    seconds = time.perf_counter() - started
    similarity = fd.similarity()
    base = root.resolve()

    def relative(name: str) -> str:
        path = Path(name)
        return (path.resolve() if path.is_absolute() else (Path.cwd() / path).resolve()).relative_to(base).as_posix()

    pairs = [[relative(a), relative(b), float(d)] for a, b, d in zip(similarity["filename_from"], similarity["filename_to"], similarity["distance"])]
    out.write_text(json.dumps({"pairs": pairs, "seconds": seconds, "version": fastdup.__version__}))


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))

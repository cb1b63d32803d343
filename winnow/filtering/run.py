"""The passes of a filter run as plain functions (the Prefect flow in ``flows/filter.py`` wraps
each in a task), and the on-disk state that makes a run resumable.

Passes, in order:

1. :func:`open_plan` — find the shards, and start a run or pick up the unfinished run with the same
   inputs and configuration (``<out>/.winnow-state/runs/<run_id>/run.json``).
2. :func:`measure_pass` per shard (parallel, in groups of small shards: :func:`shard_groups`) —
   features for the enabled stages, and the ``corrupt`` removals.
3. The stages before the first embedding stage (:func:`leading_shard_stages`) are decided shard
   by shard with :func:`decide_shards`, in corpus order, each shard as soon as it is measured (while
   later shards are still being measured); then, for each remaining stage in order,
   :func:`embed_pass` per shard (parallel) before the first embedding stage and :func:`decide_pass`
   over all shards. Exact and MinHash dedup walk the shards in order against the persisted index;
   quality and anomaly go shard by shard; semantic dedup runs over the whole run.
4. :func:`write_pass` per shard (parallel, in the same groups) — the kept documents in the shard's
   own format.
5. :func:`finish` — one manifest Parquet file for the run, the same rows in DuckDB, the summary.

Every per-shard output is written whole (temporary name, then rename) and is its own marker, so a
killed run re-run with the same arguments redoes only what was missing; dedup writes a shard's
removals before committing its index delta, so a shard is never deduplicated against itself.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from winnow.errors import ConfigError
from winnow.filtering import text as textops
from winnow.filtering.config import EMBEDDING_STAGES, FilterConfig
from winnow.filtering.dedup import ShardDocs, exact_dedup, minhash_dedup
from winnow.filtering.features import (
    embed_shard,
    load_embeddings,
    load_features,
    measure_shard,
)
from winnow.filtering.index import DedupIndex
from winnow.filtering.manifest import Removal, combine_parts, removed_lines, write_part
from winnow.filtering.shards import Shard, discover_shards, read_documents, write_kept

STATE_DIR = ".winnow-state"


@dataclass(frozen=True)
class FilterPlan:
    """One filter run: its id, configuration, shards and where its state lives."""

    run_id: str
    config: FilterConfig
    shards: tuple[Shard, ...]
    db: str
    completed: bool = False

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    @property
    def state(self) -> Path:
        return self.out / STATE_DIR

    @property
    def run_dir(self) -> Path:
        return self.state / "runs" / self.run_id

    def features_path(self, shard: Shard) -> Path:
        return self.run_dir / "features" / f"{shard.ordinal:06d}.parquet"

    def embeddings_path(self, shard: Shard) -> Path:
        return self.run_dir / "embeddings" / f"{shard.ordinal:06d}.npz"

    def part_path(self, stage: str, shard: Shard) -> Path:
        return self.run_dir / "removals" / stage / f"{shard.ordinal:06d}.parquet"

    def written_marker(self, shard: Shard) -> Path:
        return self.run_dir / "written" / f"{shard.ordinal:06d}.json"

    def output_path(self, shard: Shard) -> Path:
        return self.out / shard.key

    def index_label(self, shard: Shard) -> str:
        return f"{self.run_id}-s{shard.ordinal:06d}"

    @property
    def manifest_path(self) -> Path:
        return self.out / "removals" / f"{self.run_id}.parquet"

    def parts_before(self, stage: str, shard: Shard) -> list[Path]:
        """Removal parts of ``shard`` from the measure pass and the stages configured before ``stage``."""
        earlier = ["corrupt", *self.config.stages[: self.config.stages.index(stage)]] if stage != "write" else ["corrupt", *self.config.stages]
        return [p for p in (self.part_path(s, shard) for s in earlier) if p.exists()]


# -- 1. open ------------------------------------------------------------------------------------


def open_plan(config: FilterConfig, db: str) -> FilterPlan:
    """Start a run, or resume the unfinished run of the same inputs and configuration.

    A completed run of the same inputs and configuration is returned as it is (``completed``): its
    documents are in the index now, so filtering them again would remove every one as a copy.
    """
    from winnow.store import Store
    from winnow.store.removals import register_filter_run

    shards = tuple(discover_shards(config.inputs))
    runs = Path(config.out) / STATE_DIR / "runs"
    fingerprint = config.fingerprint()
    shard_paths = [s.path for s in shards]
    for path in sorted(runs.glob("*/run.json")) if runs.exists() else []:
        record = json.loads(path.read_text())
        if record["fingerprint"] == fingerprint and record["shards"] == shard_paths:
            plan = FilterPlan(record["run_id"], config, shards, db, completed=record["status"] == "completed")
            if not plan.completed:
                register_filter_run(Store(db), plan.run_id, dataset=config.dataset, source=config.inputs, config=_stored(config))
            return plan
    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    plan = FilterPlan(run_id, config, shards, db)
    _check_outputs(plan)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(plan.run_dir / "run.json", {"run_id": run_id, "fingerprint": fingerprint, "shards": shard_paths,
                                              "status": "running", "config": config.to_dict()})
    register_filter_run(Store(db), run_id, dataset=config.dataset, source=config.inputs, config=_stored(config))
    return plan


def _stored(config: FilterConfig) -> dict[str, Any]:
    return {"command": "filter", **config.to_dict()}


def _check_outputs(plan: FilterPlan) -> None:
    """Refuse to overwrite filtered shards an earlier run wrote (a later batch whose shard names repeat)."""
    inputs = {s.path for s in plan.shards}
    for shard in plan.shards:
        target = plan.output_path(shard)
        if str(target.resolve()) in inputs:
            raise ConfigError(f"--out {plan.out} would overwrite the input shard {shard.path}; choose an --out outside the inputs.")
        if target.exists():
            raise ConfigError(
                f"{target} already exists (written by an earlier filter run into {plan.out}); give this batch's shards "
                "other names, or filter into a new --out (the dedup index stays in the old one)."
            )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    os.replace(partial, path)


# -- 2. measure ---------------------------------------------------------------------------------

TASK_BYTES = 32 << 20
"""Input bytes per measure or write task. Submitting a task to Dask costs the flow process about
0.3 CPU-seconds (Prefect serialises its settings for each task), more in the worker and the API
server: as much as measuring ten thousand documents (``bench/results/filter.md``). So small shards
are grouped, in corpus order, until a group holds this much; see :func:`shard_groups`."""
GROUPS_PER_WORKER = 4
"""At least this many groups per worker, when there are shards enough: the work stays spread over
the workers, and dedup can start on the first group while later ones are measured."""


def shard_groups(shards: tuple[Shard, ...], workers: int) -> list[tuple[Shard, ...]]:
    """Consecutive shards grouped into tasks of about :data:`TASK_BYTES` of input, and at most
    ``len(shards) / (GROUPS_PER_WORKER × workers)`` shards each. Every shard keeps its own markers,
    so a killed group resumes shard by shard."""
    most = max(1, len(shards) // (GROUPS_PER_WORKER * workers))
    groups: list[tuple[Shard, ...]] = []
    current: list[Shard] = []
    size = 0
    for shard in shards:
        current.append(shard)
        size += os.path.getsize(shard.path)
        if size >= TASK_BYTES or len(current) >= most:
            groups.append(tuple(current))
            current, size = [], 0
    if current:
        groups.append(tuple(current))
    return groups


def measure_shards(plan: FilterPlan, shards: tuple[Shard, ...]) -> list[dict[str, int]]:
    """:func:`measure_pass` for each of ``shards`` (one task for a group of shards)."""
    return [measure_pass(plan, shard) for shard in shards]


def measure_pass(plan: FilterPlan, shard: Shard) -> dict[str, int]:
    """Features of every document of ``shard``, and its ``corrupt`` removals (skipped when done)."""
    path = plan.features_path(shard)
    if path.exists():
        return {"skipped": 1}
    measured = path.with_name(path.name + ".tmp")
    unreadable = measure_shard(shard, plan.config, measured)
    corrupt = [Removal(d.line, d.doc_id, "corrupt", f"unreadable: {d.error}", None, {"error": d.error}) for d in unreadable]
    write_part(plan.part_path("corrupt", shard), plan.run_id, shard.key, corrupt)
    os.replace(measured, path)  # the features file is the shard's marker: it comes last
    return {"unreadable": len(unreadable)}


# -- 3. stages ----------------------------------------------------------------------------------


def _alive(plan: FilterPlan, stage: str, shard: Shard, lines: np.ndarray) -> np.ndarray:
    """Which of ``lines`` are still kept when ``stage`` comes up in ``shard``."""
    removed = removed_lines(plan.parts_before(stage, shard))
    return ~np.isin(lines, np.fromiter(removed, np.int64, len(removed)))


def embed_pass(plan: FilterPlan, shard: Shard, stage: str) -> dict[str, int]:
    """Embeddings of the documents of ``shard`` still kept before ``stage`` (skipped when done)."""
    path = plan.embeddings_path(shard)
    if path.exists():
        return {"embedded": 0, "skipped": 1}
    features = load_features(plan.features_path(shard), plan.config.minhash.num_perm, "ids")
    alive = _alive(plan, stage, shard, features.lines)
    options = plan.config.semantic if stage == "semantic" else plan.config.anomaly
    return embed_shard(shard, plan.config, set(features.lines[alive].tolist()), path, options.model, options.device, options.batch_size)


def leading_shard_stages(config: FilterConfig) -> tuple[str, ...]:
    """The configured stages before the first one that embeds: they decide a shard from its own
    features and the index alone, so they can run shard by shard as soon as the shard is measured."""
    stages = []
    for stage in config.stages:
        if stage in EMBEDDING_STAGES:
            break
        stages.append(stage)
    return tuple(stages)


def open_indexes(plan: FilterPlan) -> dict[str, DedupIndex]:
    """The persisted dedup indexes of the enabled index stages, loaded once for the whole run, with
    the deltas of completed runs and of this one (not of runs left unfinished)."""
    runs = {plan.run_id}
    for path in (plan.state / "runs").glob("*/run.json"):
        record = json.loads(path.read_text())
        if record["status"] == "completed":
            runs.add(record["run_id"])
    return {stage: _dedup_index(plan, stage, runs) for stage in plan.config.stages if stage in ("exact", "minhash")}


def decide_shards(plan: FilterPlan, stages: tuple[str, ...], shards: list[Shard], indexes: dict[str, DedupIndex]) -> dict[str, int]:
    """Decide ``stages`` (none of them embeds) for each of ``shards``, shard by shard, each in the
    configured order; shards must come in corpus order for the dedup stages. Returns the removals
    per stage (shards done before count 0)."""
    removed = dict.fromkeys(stages, 0)
    for shard in shards:
        for stage in stages:
            if stage in indexes:
                removed[stage] += _dedup_shard(plan, stage, shard, indexes[stage])
                continue
            path = plan.part_path(stage, shard)
            if not path.exists():
                removals = _quality_shard(plan, shard)  # the only per-shard stage that does not embed
                write_part(path, plan.run_id, shard.key, removals)
                removed[stage] += len(removals)
    return removed


def decide_pass(plan: FilterPlan, stage: str, indexes: dict[str, DedupIndex]) -> dict[str, int]:
    """Run one stage over every shard in order; returns the removals it made (0 for shards done before)."""
    if stage == "semantic":
        return _semantic_stage(plan)
    reference = _anomaly_reference(plan) if stage == "anomaly" and _pending(plan, stage) else None
    removed = 0
    for shard in plan.shards:
        if stage in indexes:
            removed += _dedup_shard(plan, stage, shard, indexes[stage])
            continue
        path = plan.part_path(stage, shard)
        if path.exists():
            continue
        removals = _quality_shard(plan, shard) if stage == "quality" else _anomaly_shard(plan, shard, reference)
        write_part(path, plan.run_id, shard.key, removals)
        removed += len(removals)
    return {"removed": removed}


def _pending(plan: FilterPlan, stage: str) -> bool:
    return any(not plan.part_path(stage, shard).exists() for shard in plan.shards)


def _dedup_index(plan: FilterPlan, stage: str, runs: set[str]) -> DedupIndex:
    root = plan.state / "index" / stage
    if stage == "exact":
        return DedupIndex(root, 1, np.uint64, {"key": "blake2b-64 of winnow.datasets.hashing.normalize_text"}, runs)
    m = plan.config.minhash
    bands, rows = (m.bands, m.rows) if m.bands else textops.lsh_params(m.threshold, m.num_perm)
    params = {"scheme": "datasketch-affine32", "num_perm": m.num_perm, "seed": m.seed, "shingle_size": m.shingle_size,
              "bands": bands, "rows": rows}
    return DedupIndex(root, bands, np.uint32, params, runs)


def _dedup_shard(plan: FilterPlan, stage: str, shard: Shard, index: DedupIndex) -> int:
    """Exact or MinHash dedup of one shard: its removals are written, then its index delta is
    committed (the delta is the marker: a shard with one is skipped)."""
    label = plan.index_label(shard)
    if index.has(label):
        return 0
    m = plan.config.minhash
    features = load_features(plan.features_path(shard), m.num_perm, stage)
    alive = np.flatnonzero(features.readable & _alive(plan, stage, shard, features.lines))
    docs = ShardDocs(features.lines[alive], [features.doc_ids[i] for i in alive.tolist()])
    if stage == "exact":
        keys = features.exact[alive]
        removals, kept = exact_dedup(index, docs, keys)
        write_part(plan.part_path(stage, shard), plan.run_id, shard.key, removals)
        index.commit(label, keys[kept].reshape(-1, 1), [docs.doc_ids[i] for i in kept.tolist()])
    else:
        signatures = features.signatures[alive]
        keys = textops.band_keys(signatures, index.tables, index.params["rows"])
        removals, kept = minhash_dedup(index, docs, signatures, keys, features.shingles[alive] > 0,
                                       threshold=m.threshold, shingle_size=m.shingle_size)
        write_part(plan.part_path(stage, shard), plan.run_id, shard.key, removals)
        index.commit(label, keys[kept], [docs.doc_ids[i] for i in kept.tolist()], signatures[kept])
    return len(removals)


def _quality_shard(plan: FilterPlan, shard: Shard) -> list[Removal]:
    from winnow.filtering.rules import quality_removals

    features = load_features(plan.features_path(shard), plan.config.minhash.num_perm, "quality")
    alive = np.flatnonzero(features.readable & _alive(plan, "quality", shard, features.lines))
    properties = features.quality.take(alive)
    return quality_removals(features.lines[alive], [features.doc_ids[i] for i in alive.tolist()], properties, plan.config.quality.params)


def _kept_embeddings(plan: FilterPlan, stage: str, shard: Shard) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Lines, doc ids and vectors of the documents of ``shard`` still kept before ``stage``."""
    features = load_features(plan.features_path(shard), plan.config.minhash.num_perm, "ids")
    lines, vectors = load_embeddings(plan.embeddings_path(shard))
    ids = dict(zip(features.lines.tolist(), features.doc_ids))
    alive = _alive(plan, stage, shard, lines)
    return lines[alive], [ids[line] for line in lines[alive].tolist()], vectors[alive]


def _anomaly_reference(plan: FilterPlan):
    from winnow.embed import get_embedder
    from winnow.filtering.rules import build_reference

    options = plan.config.anomaly
    texts = _reference_texts(Path(options.reference), plan.config.text_key)
    if len(texts) < 2:
        raise ConfigError(f"anomaly.reference {options.reference} has {len(texts)} usable document(s); it needs at least 2 good documents.")
    embedder = get_embedder(options.model, "text", options.device)
    vectors = np.concatenate([
        embedder.embed([embedder.prepare(t) for t in texts[i : i + options.batch_size]]) for i in range(0, len(texts), options.batch_size)
    ])
    return build_reference(vectors, options)


def _reference_texts(path: Path, text_key: str) -> list[str]:
    """The reference documents: a .txt file (one per line) or a JSONL / Parquet file with ``text_key``."""
    if path.suffix == ".txt":
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    shard = Shard(str(path.resolve()), path.name, 0)
    return [textops.normalize_document(d.text) for d in read_documents(shard, text_key, None) if d.text is not None]


def _anomaly_shard(plan: FilterPlan, shard: Shard, reference) -> list[Removal]:
    from winnow.filtering.rules import anomaly_removals

    lines, doc_ids, vectors = _kept_embeddings(plan, "anomaly", shard)
    return anomaly_removals(reference, lines, doc_ids, vectors)


def _semantic_stage(plan: FilterPlan) -> dict[str, int]:
    from winnow.filtering.semantic import semantic_duplicates

    done = plan.run_dir / "removals" / "semantic" / "_done"
    if done.exists():
        return {"removed": 0}
    per_shard = [_kept_embeddings(plan, "semantic", shard) for shard in plan.shards]
    owners = [(shard, line, doc_id) for shard, (lines, ids, _) in zip(plan.shards, per_shard) for line, doc_id in zip(lines.tolist(), ids)]
    vectors = np.concatenate([v for _, _, v in per_shard]) if owners else np.zeros((0, 1), np.float32)
    options = plan.config.semantic
    matches = semantic_duplicates(vectors, threshold=options.threshold, clusters=options.clusters, seed=options.seed)
    by_shard: dict[int, list[Removal]] = {shard.ordinal: [] for shard in plan.shards}
    for match in matches:
        shard, line, doc_id = owners[match.position]
        related = owners[match.kept][2]
        by_shard[shard.ordinal].append(Removal(
            line, doc_id, "semantic",
            f"semantic near-duplicate of {related} (cosine {match.cosine:.3f} >= {options.threshold:.3f}, cluster {match.cluster})",
            related, {"cosine": round(match.cosine, 4), "threshold": options.threshold, "cluster": match.cluster},
        ))
    for shard in plan.shards:
        write_part(plan.part_path("semantic", shard), plan.run_id, shard.key, sorted(by_shard[shard.ordinal], key=lambda r: r.line))
    done.write_text(str(len(matches)))
    return {"removed": len(matches)}


# -- 4. write -----------------------------------------------------------------------------------


def write_pass(plan: FilterPlan, shard: Shard) -> dict[str, int]:
    """Write the kept documents of ``shard`` under ``--out`` in its own format (skipped when done)."""
    marker = plan.written_marker(shard)
    if marker.exists():
        return json.loads(marker.read_text())
    dropped = removed_lines(plan.parts_before("write", shard))
    normalize = textops.normalize_document if "exact" in plan.config.stages and plan.config.exact.normalize else None
    written = write_kept(shard, plan.output_path(shard), dropped, plan.config.text_key, normalize)
    stats = {"written": written, "removed": len(dropped)}
    marker.parent.mkdir(parents=True, exist_ok=True)
    _write_json(marker, stats)
    return stats


def write_shards(plan: FilterPlan, shards: tuple[Shard, ...]) -> list[dict[str, int]]:
    """:func:`write_pass` for each of ``shards`` (one task for a group of shards)."""
    return [write_pass(plan, shard) for shard in shards]


# -- 5. finish ----------------------------------------------------------------------------------


def finish(plan: FilterPlan, started: float, pass_seconds: dict[str, float]) -> dict[str, Any]:
    """Combine the removal parts into ``<out>/removals/<run_id>.parquet``, load them into DuckDB,
    mark the run completed and return its summary."""
    from winnow.store import Store
    from winnow.store.removals import save_removals

    parts = [plan.part_path(stage, shard) for shard in plan.shards for stage in ("corrupt", *plan.config.stages)]
    counts = combine_parts([p for p in parts if p.exists()], plan.manifest_path)
    store = Store(plan.db)
    rows = save_removals(store, plan.run_id, plan.manifest_path)
    written = sum(json.loads(plan.written_marker(s).read_text())["written"] for s in plan.shards)
    removed = {stage: counts.get(stage, 0) for stage in ("corrupt", *plan.config.stages)}
    summary = {
        "run_id": plan.run_id, "dataset": plan.config.dataset, "shards": len(plan.shards), "items": written + rows,
        "kept": written, "removed": rows, "flagged": removed, "stages": list(plan.config.stages), "out": str(plan.out),
        "manifest": str(plan.manifest_path), "db": str(store.path), "seconds": round(time.perf_counter() - started, 2),
        "pass_seconds": pass_seconds,
    }
    store.finish_run(plan.run_id, status="completed", counts=summary)
    record = json.loads((plan.run_dir / "run.json").read_text())
    _write_json(plan.run_dir / "run.json", {**record, "status": "completed", "summary": summary})
    return summary


def completed_summary(plan: FilterPlan) -> dict[str, Any]:
    """The stored summary of a run that had already completed."""
    return {**json.loads((plan.run_dir / "run.json").read_text())["summary"], "already_completed": True}


def first_embedding_stage(config: FilterConfig) -> str | None:
    return next((s for s in config.stages if s in EMBEDDING_STAGES), None)

"""The stages of one audit as plain functions; ``flows/audit.py`` wraps each in a Prefect task.

Each stage commits its own output to the store, so a killed run resumes from the last committed
stage: ingest is re-read and checked against what was stored, embedding skips every vector already
in the cache, and detection replaces the run's findings in one transaction.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from checks import check_corrupt
from checks.image_quality import check_image_quality, measure_image
from checks.text_quality import check_text_quality, measure_text
from detectors import REGISTRY, build_knn_graph, default_detectors, run_detectors, validate_params
from detectors.drift import MIN_SAMPLES, detect_drift, drift_finding
from winnow.config import AuditConfig
from winnow.datasets import Dataset, ingest
from winnow.datasets.images import decode_image
from winnow.embed import Embedder, embed_payloads, get_embedder
from winnow.errors import ConfigError, SourceError
from winnow.findings import ISSUE_TYPES, empty_findings, empty_pairs, validate_findings
from winnow.store import Store


def open_run(store: Store, config: AuditConfig, resume: str | None = None) -> tuple[str, AuditConfig]:
    """A new run for ``config``, or the stored config of run ``resume`` when resuming."""
    if resume:
        run = store.get_run(resume)
        return resume, AuditConfig.from_dict(run["config"])
    run_id = store.create_run(dataset=config.name or "", source=config.source, modality=config.modality or "", config=config.to_dict())
    return run_id, config


def ingest_stage(store: Store, run_id: str, config: AuditConfig) -> Dataset:
    """Read the source and commit its items; on resume, insist the source is unchanged."""
    dataset = ingest(
        config.source, modality=config.modality, text_col=config.text_col, path_col=config.path_col,
        label_col=config.label_col, id_col=config.id_col, name=config.name,
    )
    if "ingest" in store.stages(run_id):
        stored = store.load_items(run_id)
        same = list(stored["item_id"]) == list(dataset.items["item_id"]) and list(stored["content_hash"]) == list(dataset.items["content_hash"])
        if not same:
            raise SourceError(f"{config.source} changed since run {run_id} started; start a new audit instead of --resume.")
        dataset.items["error"] = stored["error"].to_numpy()  # keeps decode errors found while embedding
    else:
        store.set_run_modality(run_id, dataset.modality)
        store.save_items(run_id, dataset.items)
    return dataset


MEASURE_THREADS = 4


@dataclass(frozen=True)
class Measurer:
    """Per-item raw properties for a modality; ``kind`` versions the property cache."""

    kind: str
    measure: Callable[[Any], dict[str, Any]]


def measurer_for(modality: str) -> Measurer | None:
    """The property measurer of a modality (tables have none: GX checks read the rows directly)."""
    if modality == "image":
        return Measurer("image-v1", lambda path: measure_image(decode_image(path)))
    if modality == "text":
        return Measurer("text-v1", measure_text)
    return None


def _measure_one(measurer: Measurer, payload: Any) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return measurer.measure(payload), None
    except Exception as exc:  # a bad item must never stop the shard
        return None, f"cannot decode: {type(exc).__name__}: {exc}"


def measure_shard(store: Store, dataset: Dataset, rows: pd.DataFrame, measurer: Measurer) -> dict[str, Any]:
    """Measure the rows whose content has no cached properties yet and commit them.

    Returns counts and the errors (``item_id -> reason``) of items that could not be decoded.
    """
    cached = store.cached_hashes("properties", measurer.kind, rows["content_hash"].tolist())
    todo = _uncached(rows, cached)
    with ThreadPoolExecutor(max_workers=MEASURE_THREADS) as pool:
        measured = list(pool.map(lambda p: _measure_one(measurer, p), payloads(dataset, todo)))
    store.save_properties(measurer.kind, {h: props for h, (props, _) in zip(todo["content_hash"], measured) if props is not None})
    failed = {h: error for h, (_, error) in zip(todo["content_hash"], measured) if error is not None}
    return _shard_outcome(rows, cached, failed)


def _uncached(rows: pd.DataFrame, cached: set[str]) -> pd.DataFrame:
    """One row per content not in the cache yet: items sharing content are computed once."""
    unique = rows.drop_duplicates("content_hash")
    return unique[~unique["content_hash"].isin(cached)]


def _shard_outcome(rows: pd.DataFrame, cached: set[str], failed: dict[str, str]) -> dict[str, Any]:
    """Counts of a shard and the reason (``item_id -> reason``) for every item whose content failed."""
    errors = {item: failed[h] for item, h in zip(rows["item_id"], rows["content_hash"]) if h in failed}
    return {"items": len(rows), "cached": int(rows["content_hash"].isin(cached).sum()), "errors": errors}


def load_properties(store: Store, items: pd.DataFrame, kind: str) -> pd.DataFrame:
    """``item_id`` plus one column per measured property, for readable items with cached properties."""
    readable = items[items["error"].isna()]
    cache = store.cached_properties(kind, readable["content_hash"].tolist())
    rows = [{"item_id": item, **cache[h]} for item, h in zip(readable["item_id"], readable["content_hash"]) if h in cache]
    return pd.DataFrame(rows) if rows else pd.DataFrame({"item_id": pd.Series(dtype=object)})


def embedder_for(dataset: Dataset, config: AuditConfig) -> Embedder:
    """The embedder the config asks for, fitted to the data when it is the tabular encoder."""
    return get_embedder(config.model, dataset.modality, config.device, features=dataset.features)


def payloads(dataset: Dataset, rows: pd.DataFrame) -> list[Any]:
    """What the embedder reads for each row: a path, a text or a feature record."""
    if dataset.modality == "image":
        return rows["uri"].tolist()
    if dataset.modality == "text":
        return rows["text"].tolist()
    assert dataset.features is not None
    return dataset.features.iloc[rows.index.to_numpy()].to_dict(orient="records")


def shards(dataset: Dataset, shard_size: int) -> list[pd.DataFrame]:
    """Readable items split into shards of ``shard_size`` (index = position in ``dataset.items``)."""
    readable = dataset.readable
    return [readable.iloc[i : i + shard_size] for i in range(0, len(readable), shard_size)]


def embed_shard(store: Store, dataset: Dataset, rows: pd.DataFrame, embedder: Embedder, batch_size: int) -> dict[str, Any]:
    """Embed the rows whose content is not cached yet and commit their vectors.

    Returns counts and the decode errors (``item_id -> reason``) of items that could not be embedded.
    """
    cached = store.cached_hashes("vectors", embedder.model_id, rows["content_hash"].tolist())
    todo = _uncached(rows, cached)
    result = embed_payloads(embedder, payloads(dataset, todo), batch_size=batch_size)
    hashes = todo["content_hash"].to_numpy()
    store.save_vectors(embedder.model_id, hashes[result.ok].tolist(), result.vectors)
    failed = {hashes[i]: reason for i, reason in result.errors.items()}
    return {**_shard_outcome(rows, cached, failed), "computed": len(result.ok)}


def record_decode_errors(store: Store, run_id: str, dataset: Dataset, errors: dict[str, str]) -> None:
    """Items that failed to decode become unreadable items (and so ``corrupt`` findings)."""
    if errors:
        mask = dataset.items["item_id"].isin(errors)
        dataset.items.loc[mask, "error"] = dataset.items.loc[mask, "item_id"].map(errors)
        store.save_items(run_id, dataset.items)


def load_vectors(store: Store, items: pd.DataFrame, model_id: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The readable items that have a cached vector, and their vectors, row-aligned."""
    readable = items[items["error"].isna()]
    cache = store.cached_vectors(model_id, readable["content_hash"].tolist())
    embedded = readable[readable["content_hash"].isin(cache)].reset_index(drop=True)
    if embedded.empty:
        return embedded, np.zeros((0, 0), np.float32)
    return embedded, np.stack([cache[h] for h in embedded["content_hash"]])


def usable_labels(items: pd.DataFrame) -> np.ndarray | None:
    """The items' labels when at least two classes are present, else ``None`` (label detectors skip)."""
    labels = items["label"].to_numpy(dtype=object) if "label" in items else None
    if labels is None or pd.Series(labels).dropna().nunique() < 2:
        return None
    return labels


def user_probabilities(config: AuditConfig, items: pd.DataFrame, embedded: pd.DataFrame) -> np.ndarray | None:
    """The caller's out-of-fold probabilities (``--pred-probs``), row-aligned with the embedded items."""
    if config.pred_probs is None:
        return None
    probs = np.load(config.pred_probs)
    if probs.ndim != 2 or len(probs) != len(items):
        raise ConfigError(f"--pred-probs has shape {probs.shape}; it needs one row per item ({len(items)}) and one column per class.")
    return probs[embedded["ordinal"].to_numpy()]


def perceptual_hashes(embedded: pd.DataFrame, properties: pd.DataFrame | None) -> np.ndarray | None:
    """pHash hex strings row-aligned with the embedded items, when every one of them was measured."""
    if properties is None or "phash" not in properties:
        return None
    hashes = embedded["item_id"].map(properties.set_index("item_id")["phash"])
    return None if hashes.isna().any() else hashes.to_numpy(dtype=object)


def quality_checks(modality: str, properties: pd.DataFrame | None) -> list[pd.DataFrame]:
    """``low_quality`` findings from the measured properties of images or texts."""
    if properties is None or properties.empty:
        return []
    if modality == "image":
        return [check_image_quality(properties)]
    if modality == "text":
        return [check_text_quality(properties)]
    return []


def table_checks(dataset: Dataset, config: AuditConfig) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Run the Great Expectations suite given with ``--suite`` on a table: ``(findings, check_results)``."""
    if config.suite is None:
        return None
    if dataset.table is None:
        raise ConfigError(f"--suite checks tables, but {config.source} was read as {dataset.modality} data.")
    from checks.tabular import load_suite, run_suite, schema_finding

    suite = load_suite(Path(config.suite))
    findings, check_results = run_suite(dataset.table, suite, id_col=config.id_col, item_ids=dataset.items["item_id"].tolist())
    return pd.concat([findings, schema_finding(check_results)], ignore_index=True), check_results


@dataclass
class Detections:
    """All findings and pairs of a run, plus what did not run."""

    findings: pd.DataFrame
    pairs: pd.DataFrame
    skipped: dict[str, str]
    failed: dict[str, str]
    knn_method: str
    check_results: pd.DataFrame | None = None


def detect_stage(
    items: pd.DataFrame, embedded: pd.DataFrame, vectors: np.ndarray, modality: str, config: AuditConfig, device: str,
    properties: pd.DataFrame | None = None, rule_checks: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> Detections:
    """Run the checks and every selected detector; the kNN graph is built once and shared.

    Detectors that need no inputs see every readable item; the others see the embedded items.
    ``properties`` (``item_id`` + measured columns) feeds the quality checks and, for images, the
    perceptual hashes of the near-duplicate detector; ``rule_checks`` are the findings and check
    results of a table's suite (see :func:`table_checks`).
    """
    names = config.detectors or default_detectors()
    validate_params(config.params)
    content_only = [n for n in names if not REGISTRY[n].requires]
    needs_inputs = [n for n in names if REGISTRY[n].requires]
    outcomes = [run_detectors(items[items["error"].isna()].reset_index(drop=True), modality, {}, config.params, names=content_only)]
    knn = build_knn_graph(vectors, k=config.k, device=device) if len(embedded) else None
    inputs = {
        "knn": knn, "vectors": vectors if len(embedded) else None, "labels": usable_labels(embedded),
        "hashes": perceptual_hashes(embedded, properties), "pred_probs": user_probabilities(config, items, embedded),
    }
    outcomes.append(run_detectors(embedded, modality, inputs, config.params, names=needs_inputs))
    results = [r for o in outcomes for r in o.results.values()]
    checks = [check_corrupt(items)] + quality_checks(modality, properties) + ([rule_checks[0]] if rule_checks else [])
    findings = validate_findings(pd.concat(checks + [r.findings for r in results], ignore_index=True))
    pair_frames = [r.pairs for r in results if len(r.pairs)]
    pairs = pd.concat(pair_frames, ignore_index=True) if pair_frames else empty_pairs()
    skipped = {k: v for o in outcomes for k, v in o.skipped.items()}
    failed = {k: v for o in outcomes for k, v in o.failed.items()}
    return Detections(findings, pairs, skipped, failed, knn.method if knn is not None else "none", rule_checks[1] if rule_checks else None)


def summarize(store: Store, run_id: str, top: int = 5) -> dict[str, Any]:
    """Counts per issue type and the top flagged items, for the CLI, the artifact and ``runs``."""
    counts = store.issue_counts(run_id)
    flagged = store.findings(run_id, flagged_only=True)
    order = {t: i for i, t in enumerate(ISSUE_TYPES)}
    flagged = flagged.assign(_o=flagged["issue_type"].map(order)).sort_values(["_o", "score"], ascending=[True, False])
    top_items = flagged.groupby("issue_type", sort=False).head(top)[["issue_type", "item_id", "score", "reason"]]
    return {
        "run_id": run_id,
        "items": int(len(store.load_items(run_id))),
        "flagged": {r.issue_type: int(r.flagged) for r in counts.itertuples()},
        "scored": {r.issue_type: int(r.scored) for r in counts.itertuples()},
        "pairs": int(len(store.pairs(run_id))),
        "top": top_items.to_dict(orient="records"),
        "failed_checks": store.check_results(run_id, failed_only=True)[["check_name", "observed"]].to_dict(orient="records"),
    }


# -- drift against a reference run (run level) ---------------------------------------------------

PREVIOUS_RUN = "previous"


@dataclass
class DriftOutcome:
    """The run-level ``drift`` finding (empty when not tested), why it was skipped, and a summary."""

    findings: pd.DataFrame
    skipped: str | None = None
    summary: dict[str, Any] | None = None


def check_reference(store: Store, config: AuditConfig) -> None:
    """Fail before any work when ``--reference`` names a run that does not exist or did not complete."""
    if config.reference in (None, PREVIOUS_RUN):
        return
    status = store.get_run(config.reference)["status"]
    if status != "completed":
        raise ConfigError(f"--reference {config.reference} is {status}; pick a completed run (`winnow runs` lists them) or --reference previous.")


def reference_run(store: Store, run_id: str, config: AuditConfig) -> str | None:
    """The run to compare with: ``config.reference``, or for ``previous`` the dataset's newest
    completed run that started before ``run_id`` (stable when the run is resumed later)."""
    if config.reference != PREVIOUS_RUN:
        return config.reference
    runs = store.list_runs(config.name)
    started = runs.loc[runs["run_id"] == run_id, "started"].iloc[0]
    earlier = runs[(runs["status"] == "completed") & (runs["started"] < started)]
    return str(earlier.iloc[0]["run_id"]) if len(earlier) else None


def drift_stage(store: Store, run_id: str, config: AuditConfig, embedded: pd.DataFrame, vectors: np.ndarray, model_id: str) -> DriftOutcome:
    """Test this run's embedded items against the reference run's, with the same model's cached vectors.

    Skips (with the reason) when there is no reference, it was embedded with another model, or
    either side has too few embedded items; see :mod:`detectors.drift` for the tests.
    """
    reference = reference_run(store, run_id, config)
    if reference is None:
        return DriftOutcome(empty_findings(), f"dataset {config.name!r} has no earlier completed run to compare with")
    reference_model = store.stages(reference).get("embed", {}).get("model_id")
    if reference_model != model_id:
        return DriftOutcome(
            empty_findings(),
            f"reference run {reference} was embedded with {reference_model}, this run with {model_id}; "
            f"re-audit the reference with --model {model_id} to compare them",
        )
    ref_items, ref_vectors = load_vectors(store, store.load_items(reference), model_id)
    if min(len(ref_items), len(embedded)) < MIN_SAMPLES:
        return DriftOutcome(empty_findings(), f"drift needs {MIN_SAMPLES} embedded items on each side; reference {reference} has {len(ref_items)}, this run {len(embedded)}")
    result = detect_drift(ref_vectors, vectors, reference_labels=ref_items["label"].to_numpy(), batch_labels=embedded["label"].to_numpy())
    summary = {"reference": reference, "drifted": result.drifted, "score": result.score, "reason": result.reason, **result.detail()}
    return DriftOutcome(drift_finding(result), None, summary)


def add_drift(detections: Detections, drift: DriftOutcome) -> Detections:
    """``detections`` with the drift finding appended, or its skip reason recorded."""
    if drift.skipped:
        detections.skipped["drift"] = drift.skipped
    if len(drift.findings):
        detections.findings = validate_findings(pd.concat([detections.findings, drift.findings], ignore_index=True))
    return detections

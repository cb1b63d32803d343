"""The stages of one audit as plain functions; ``flows/audit.py`` wraps each in a Prefect task.

Each stage commits its own output to the store, so a killed run resumes from the last committed
stage: ingest is re-read and checked against what was stored, embedding skips every vector already
in the cache, and detection replaces the run's findings in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from checks import check_corrupt
from detectors import REGISTRY, build_knn_graph, default_detectors, run_detectors, validate_params
from winnow.config import AuditConfig
from winnow.datasets import Dataset, ingest
from winnow.embed import Embedder, embed_payloads, get_embedder
from winnow.errors import SourceError
from winnow.findings import ISSUE_TYPES, empty_pairs, validate_findings
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
    unique = rows.drop_duplicates("content_hash")
    cached = store.cached_vectors(embedder.model_id, unique["content_hash"].tolist())
    todo = unique[~unique["content_hash"].isin(cached)]
    result = embed_payloads(embedder, payloads(dataset, todo), batch_size=batch_size)
    hashes = todo["content_hash"].to_numpy()
    store.save_vectors(embedder.model_id, hashes[result.ok].tolist(), result.vectors)
    failed_hashes = {hashes[i]: reason for i, reason in result.errors.items()}
    errors = {item: failed_hashes[h] for item, h in zip(rows["item_id"], rows["content_hash"]) if h in failed_hashes}
    return {"items": len(rows), "cached": int(rows["content_hash"].isin(cached).sum()), "computed": len(result.ok), "errors": errors}


def record_embed_errors(store: Store, run_id: str, dataset: Dataset, errors: dict[str, str]) -> None:
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


@dataclass
class Detections:
    """All findings and pairs of a run, plus what did not run."""

    findings: pd.DataFrame
    pairs: pd.DataFrame
    skipped: dict[str, str]
    failed: dict[str, str]
    knn_method: str


def detect_stage(items: pd.DataFrame, embedded: pd.DataFrame, vectors: np.ndarray, modality: str, config: AuditConfig, device: str) -> Detections:
    """Run the corrupt check and every selected detector; the kNN graph is built once and shared.

    Detectors that need no inputs see every readable item; the others see the embedded items.
    """
    names = config.detectors or default_detectors()
    validate_params(config.params)
    content_only = [n for n in names if not REGISTRY[n].requires]
    needs_inputs = [n for n in names if REGISTRY[n].requires]
    outcomes = [run_detectors(items[items["error"].isna()].reset_index(drop=True), modality, {}, config.params, names=content_only)]
    knn = build_knn_graph(vectors, k=config.k, device=device) if len(embedded) else None
    inputs = {"knn": knn, "vectors": vectors if len(embedded) else None, "labels": usable_labels(embedded)}
    outcomes.append(run_detectors(embedded, modality, inputs, config.params, names=needs_inputs))
    results = [r for o in outcomes for r in o.results.values()]
    findings = validate_findings(pd.concat([check_corrupt(items)] + [r.findings for r in results], ignore_index=True))
    pair_frames = [r.pairs for r in results if len(r.pairs)]
    pairs = pd.concat(pair_frames, ignore_index=True) if pair_frames else empty_pairs()
    skipped = {k: v for o in outcomes for k, v in o.skipped.items()}
    failed = {k: v for o in outcomes for k, v in o.failed.items()}
    return Detections(findings, pairs, skipped, failed, knn.method if knn is not None else "none")


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
    }

"""The per-document filters: text quality rules and the anomaly score against good documents.

Quality reuses ``checks.text_quality`` as it is: the properties measured per document
(:func:`checks.text_quality.measure_text`) are scored by :func:`check_text_quality` over a shard,
and every flagged document is removed with the finding's reason. The anomaly stage treats cleaning
as anomaly detection (DCAD-2000): a document's score is the mean cosine distance from its
embedding to its ``k`` nearest documents of a reference set of good ones; the threshold is either
given or the ``quantile`` of the reference documents' own leave-one-out scores (from the shared
kNN graph of ``detectors.knn``), so "as unusual as the rarest good documents" is the limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from winnow.filtering.config import AnomalyOptions
from winnow.filtering.manifest import Removal


def quality_removals(lines: np.ndarray, doc_ids: list[str], properties: pa.Table, params: dict) -> list[Removal]:
    """Documents of one shard that fail the text quality rules (``params`` are
    ``check_text_quality``'s keyword arguments)."""
    from checks.text_quality import check_text_quality

    if len(doc_ids) == 0:
        return []
    frame = properties.to_pandas()
    frame["item_id"] = [str(i) for i in range(len(doc_ids))]
    findings = check_text_quality(frame, **params)
    flagged = findings[findings["flagged"]]
    removals = []
    for row in flagged.itertuples():
        i = int(row.item_id)
        detail = json.loads(row.detail) if isinstance(row.detail, str) else row.detail
        removals.append(Removal(int(lines[i]), doc_ids[i], "quality", f"low quality: {row.reason}", None,
                                {"score": round(float(row.score), 4), "fired": detail.get("fired")}))
    return sorted(removals, key=lambda r: r.line)


@dataclass(frozen=True)
class Reference:
    """The reference set's vectors and the score threshold derived from it."""

    vectors: np.ndarray
    threshold: float
    k: int
    calibrated: bool


def build_reference(vectors: np.ndarray, options: AnomalyOptions) -> Reference:
    """The anomaly threshold: ``options.threshold``, else the ``options.quantile`` of the
    reference documents' leave-one-out scores."""
    from detectors.knn import build_knn_graph

    k = min(options.k, max(len(vectors) - 1, 1))
    if options.threshold is not None:
        return Reference(vectors, float(options.threshold), k, calibrated=False)
    graph = build_knn_graph(vectors, k)
    own = 1.0 - np.where(graph.indices >= 0, graph.similarities, np.nan)
    scores = np.nanmean(own, axis=1)
    return Reference(vectors, float(np.quantile(scores, options.quantile)), k, calibrated=True)


def anomaly_scores(reference: Reference, vectors: np.ndarray) -> np.ndarray:
    """Mean cosine distance from each vector to its ``k`` nearest reference vectors (faiss, exact)."""
    import faiss

    if len(vectors) == 0:
        return np.zeros(0, np.float32)
    index = faiss.IndexFlatIP(reference.vectors.shape[1])
    index.add(np.ascontiguousarray(reference.vectors, dtype=np.float32))
    sims, _ = index.search(np.ascontiguousarray(vectors, dtype=np.float32), min(reference.k, len(reference.vectors)))
    return 1.0 - sims.mean(axis=1)


def anomaly_removals(reference: Reference, lines: np.ndarray, doc_ids: list[str], vectors: np.ndarray) -> list[Removal]:
    """Documents scoring at or above the reference threshold."""
    scores = anomaly_scores(reference, vectors)
    how = "the reference set's own" if reference.calibrated else "the configured"
    return [
        Removal(int(lines[i]), doc_ids[i], "anomaly",
                f"unlike the reference documents (mean cosine distance {scores[i]:.3f} to the {reference.k} nearest, "
                f">= {reference.threshold:.3f}, {how} threshold)",
                None, {"score": round(float(scores[i]), 4), "threshold": round(reference.threshold, 4), "k": reference.k})
        for i in np.flatnonzero(scores >= reference.threshold).tolist()
    ]

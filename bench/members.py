"""Each member of winnow's off-topic and outlier ensembles, ranked alone, so the ensembles earn their place.

Computed on the same inputs as the audit (cached embeddings, the same kNN graph, the texts and
the thumbnails the measure stage stores, rebuilt here from the same files by
:func:`bench.signals.bench_thumbnails`) through the detectors' own member functions
(``detectors.off_topic.member_scores``, ``detectors.outlier.member_scores``). A member ranks
items but asserts nothing, so its rows have no flagged set.
"""

from __future__ import annotations

import time

import numpy as np

from bench.audited import Audited
from bench.planted import Planted
from bench.scoring import ItemRanking
from bench.signals import Signal, bench_thumbnails
from detectors import off_topic, outlier
from detectors.knn import build_knn_graph
from winnow.config import DEFAULT_K


def ensemble_members(truth: Planted, audited: Audited) -> list[Signal]:
    """Off-topic members (when off-topic items were planted) and outlier members (when outliers were)."""
    items, vectors = audited.embedded, audited.vectors
    ids = items["item_id"].astype(str).tolist()
    labels = items["label"].to_numpy(dtype=object) if "label" in items else None
    knn = build_knn_graph(vectors, k=DEFAULT_K)
    found: list[Signal] = []
    if truth.items.get("off_topic"):
        start = time.perf_counter()
        scores = off_topic.member_scores(items, vectors=vectors, knn=knn, labels=labels, k=DEFAULT_K)
        seconds = time.perf_counter() - start
        found += [("off_topic", f"winnow member: {name}", _ranking(ids, values), seconds) for name, values in scores.items()]
    if truth.items.get("outlier"):
        start = time.perf_counter()
        scores = outlier.member_scores(items, knn=knn, vectors=vectors, labels=labels, thumbnails=bench_thumbnails(truth, items), k=DEFAULT_K)
        seconds = time.perf_counter() - start
        found += [("outlier", f"winnow member: {name}", _ranking(ids, values), seconds)
                  for name, values in scores.items() if name in outlier.MEMBERS]
    return found


def _ranking(ids: list[str], values: np.ndarray) -> ItemRanking:
    return ItemRanking(dict(zip(ids, np.asarray(values, dtype=float))))

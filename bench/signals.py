"""Each signal that winnow's fused detectors combine, ranked on its own, so the fusion earns its place.

Computed on the same inputs as the audit (cached embeddings, the same kNN graph, the thumbnails
the measure stage stores — rebuilt here from the same files with the same function — and the
texts), through the detectors' own functions:

* near-duplicates (pairs, each item with its best candidate as in winnow's ranking): for images the
  embedding cosine, the aligned pixels and the aligned gradients, each normalised against the
  items' background exactly as inside the fusion; for texts the cosine and the word-set Jaccard.
* label errors (items): each out-of-fold probe's normalised margin on its own (embeddings; pixels
  or words), and the neighbours' label disagreement.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from bench.audited import Audited
from bench.planted import Planted
from bench.scoring import ItemRanking, PairRanking, canonical_pair
from detectors.knn import build_knn_graph
from detectors.label_error import (
    neighbour_disagreement,
    out_of_fold_probabilities,
    second_view_probabilities,
)
from detectors.near_duplicate import (
    knn_candidates,
    normalised_closeness,
    verified_candidates,
)
from winnow.config import DEFAULT_K
from winnow.embed.thumbnails import decode_thumbnails, thumbnail

Signal = tuple[str, str, Any, float]
"""``(issue type, method name, ranking, seconds)``."""


def bench_thumbnails(truth: Planted, items: pd.DataFrame) -> np.ndarray | None:
    """The thumbnails the audit stored for these items, rebuilt from the benchmark's image files."""
    if truth.modality != "image":
        return None
    root = Path(truth.source)
    return decode_thumbnails([thumbnail(Image.open(root / item)) for item in items["item_id"]])


def best_pairs(ids: np.ndarray, a: np.ndarray, b: np.ndarray, scores: np.ndarray) -> PairRanking:
    """Every item paired with its highest-scoring candidate, as winnow's pair ranking does."""
    members, other, value = np.r_[a, b], np.r_[b, a], np.r_[scores, scores]
    order = np.lexsort((-value, members))
    members, other, value = members[order], other[order], value[order]
    first = np.r_[True, members[1:] != members[:-1]]
    ranking: dict[tuple[str, str], float] = {}
    for i, j, s in zip(members[first], other[first], value[first]):
        pair = canonical_pair(str(ids[i]), str(ids[j]))
        ranking[pair] = max(float(s), ranking.get(pair, -np.inf))
    return PairRanking(ranking)


def near_duplicate_signals(truth: Planted, audited: Audited) -> list[Signal]:
    """Each near-duplicate signal's pair ranking (see the module docstring)."""
    items, vectors = audited.embedded, audited.vectors
    ids = items["item_id"].astype(str).to_numpy()
    start = time.perf_counter()
    knn = build_knn_graph(vectors, k=DEFAULT_K)
    thumbnails = bench_thumbnails(truth, items)
    if thumbnails is not None:
        c = verified_candidates(items, knn, thumbnails, vectors)
        seconds = time.perf_counter() - start
        names = {"cosine": "embedding cosine", "pixels": "aligned pixels", "gradients": "aligned gradients"}
        return [("near_duplicate", f"winnow signal: {names[key]} (normalised)", best_pairs(ids, c.a, c.b, normalised_closeness(c.a, c.b, c.evidence[key], len(ids))), seconds)
                for key in names]
    c = knn_candidates(items, knn, None, 0.95, 4, 0.75)
    seconds = time.perf_counter() - start
    if "word_jaccard" not in c.evidence:
        return []
    jaccard = np.nan_to_num(c.evidence["word_jaccard"], nan=-1.0)
    return [("near_duplicate", "winnow signal: embedding cosine", best_pairs(ids, c.a, c.b, c.evidence["cosine"]), seconds),
            ("near_duplicate", "winnow signal: word Jaccard", best_pairs(ids, c.a, c.b, jaccard), seconds)]


def _margin(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    given = probs[np.arange(len(y)), y]
    return np.where(np.arange(probs.shape[1])[None, :] == y[:, None], -np.inf, probs).max(axis=1) - given


def label_error_signals(truth: Planted, audited: Audited) -> list[Signal]:
    """Each label-error signal's item ranking (see the module docstring)."""
    items, vectors = audited.embedded, audited.vectors
    labels = items["label"].to_numpy(dtype=object)
    has = pd.notna(labels)
    if has.sum() < 4:
        return []
    ids = items["item_id"].astype(str).to_numpy()[has]
    given = labels[has].astype(str)
    start = time.perf_counter()
    probs, classes = out_of_fold_probabilities(vectors[has], given, folds=5)
    y = np.searchsorted(classes, given)
    signals = [("label_error", "winnow signal: embedding probe", ItemRanking(dict(zip(ids, _margin(probs, y)))), time.perf_counter() - start)]
    start = time.perf_counter()
    second = second_view_probabilities(items, bench_thumbnails(truth, items), has, given, 5)
    if second is not None:
        name = "pixel probe" if truth.modality == "image" else "word probe"
        signals.append(("label_error", f"winnow signal: {name}", ItemRanking(dict(zip(ids, _margin(second, y)))), time.perf_counter() - start))
    start = time.perf_counter()
    y_all = np.full(len(labels), -1)
    y_all[has] = y
    disagreement = neighbour_disagreement(y_all, build_knn_graph(vectors, k=DEFAULT_K), DEFAULT_K)[has]
    signals.append(("label_error", "winnow signal: neighbour disagreement", ItemRanking(dict(zip(ids, disagreement))), time.perf_counter() - start))
    return signals

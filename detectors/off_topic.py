"""Off-topic items: content that does not belong to the dataset's domain at all.

Off-topic items arrive two ways: scattered (each one far from everything) or as a batch from the
wrong source (a tight cluster of their own, so each one has close neighbours and fools plain kNN
distance). The detector is an ensemble of views (*members*); each member's own ranking is reported
by the benchmark (``bench/quality.py``), so every member in the default has earned its place.

Views of the embeddings:

* ``knn_distance`` — mean cosine distance to the ``k`` nearest neighbours (scattered items);
* ``knn_density`` — that distance divided by the neighbours' own (a local outlier factor, for
  datasets of very uneven density);
* ``linkage`` — the distance at which single-linkage merging first puts an item in a group of at
  least 10 % of the data (on the kNN graph's minimum spanning tree): a batch from another source
  smaller than that joins late however tight it is (SelfClean's idea);
* ``mahalanobis`` — robust Mahalanobis distance to the nearest class Gaussian, at several ranks
  (``detectors.mahalanobis``: shrinkage, and re-fitted without the items it sets aside, so a batch
  cannot mask itself);
* ``centroid`` — cosine distance to the dataset's mean direction (the isotropic counterpart of
  ``mahalanobis``: what the whole dataset has in common, an off-topic item lacks);
* ``isolation_forest`` — Isolation Forest on the embeddings' leading principal components.

Evidence from the texts themselves (texts only, ``detectors.text_evidence``):

* ``text_format`` — much longer than the other texts, and an ending most texts do not share
  (sentences among titles or titles among sentences).

**Combination rule.** Every view becomes a robust z-score over the run (median / MAD). The
embedding views look at the same evidence, so their z-scores are averaged (their independent noise
cancels) and the average is standardised again, leaving out a view that does not fit the run's
data — one that alone puts more than 2 % of the items past the threshold, most of them items the
other views find ordinary (``detectors.evidence.consensus_z``; ``detail.members_left_out`` names it); the text-format evidence is independent of the
embedding, so its z-scores are *added* to the embedding's positive part
(``detectors.evidence.positive_sum``). Unlike the outlier detector, the sum is not divided by the
square root of the number of terms (Stouffer's normalisation): the format of a headline or a plot
summary is weak evidence on its own, and the division kept 12 of the text benchmark's 120 planted
off-topic items flagged (precision 1.00, recall 0.10) against 120 flagged without it (0.90 / 0.90),
at the price of a looser rule for texts — an item ordinary in its embedding but long and oddly
ended can pass. For images (one term) the two are the same. The score is therefore on a z scale, and an item is flagged when
it reaches ``z``.

The default (``DEFAULT_MEMBERS``) is what the benchmarks support: ``linkage`` (batches),
``mahalanobis`` and ``centroid`` (batches and scattered items in real embeddings), ``knn_distance``
(scattered items; on the synthetic mixture of ``bench/run_scale.py`` — many small clusters, random
directions planted — it is the only view that finds them, where the three others rank them last) and
``text_format``. Averaged in, ``knn_distance`` costs the image benchmark some AP (0.99 without it,
0.95 with it): its batch of rendered characters are each other's neighbours. ``knn_density`` and
``isolation_forest`` ranked near chance on the benchmark sets; they stay selectable with ``members``
(a tuple, or a comma-separated string: ``--param off_topic.members=linkage,mahalanobis``).
Normalising per labelled class was tried and lost: a batch filed under one class shifts that class's
own median.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest

from detectors.evidence import (
    comparable_rows,
    consensus_z,
    positive_sum,
    restrict_graph,
    row_means,
    scatter,
    selected_members,
    take_rows,
)
from detectors.knn import KnnGraph
from detectors.mahalanobis import mahalanobis_z
from detectors.result import Detection
from detectors.text_evidence import format_z
from winnow.findings import make_findings

FOREST_DIM = 64
FOREST_SAMPLE = 100_000
EMBEDDING_MEMBERS = ("knn_distance", "knn_density", "linkage", "mahalanobis", "centroid", "isolation_forest")
TEXT_MEMBERS = ("text_format",)
MEMBERS = EMBEDDING_MEMBERS + TEXT_MEMBERS
DEFAULT_MEMBERS = ("knn_distance", "linkage", "mahalanobis", "centroid", "text_format")
DEFAULT_Z = 3.5


def knn_distance_score(knn: KnnGraph, k: int) -> np.ndarray:
    """Mean cosine distance to the ``k`` nearest neighbours."""
    valid = knn.indices[:, :k] >= 0
    return row_means(1.0 - knn.similarities[:, :k], valid, empty=0.0)


def knn_density_score(knn: KnnGraph, k: int) -> np.ndarray:
    """Mean kNN distance relative to the neighbours' mean kNN distance."""
    cols = knn.indices[:, :k]
    valid = cols >= 0
    own = knn_distance_score(knn, k)
    reference = row_means(own[np.where(valid, cols, 0)], valid, empty=1.0)
    return own / np.maximum(reference, 1e-6)


def centroid_score(vectors: np.ndarray) -> np.ndarray:
    """Cosine distance to the mean direction of all the (L2-normalised) vectors (summed in float64,
    projected in the vectors' own precision: no float64 copy of a million vectors)."""
    vectors = np.asarray(vectors)
    mean = vectors.mean(axis=0, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors)) * max(float(np.linalg.norm(mean)), 1e-12)
    return 1.0 - (vectors @ mean.astype(vectors.dtype, copy=False)) / np.maximum(norms, 1e-12)


def isolation_forest_score(vectors: np.ndarray, seed: int) -> np.ndarray:
    """Isolation Forest's anomaly score on the leading principal components."""
    dim = min(FOREST_DIM, vectors.shape[1], len(vectors) - 1)
    fit_rows = np.random.default_rng(seed).choice(len(vectors), size=min(FOREST_SAMPLE, len(vectors)), replace=False)
    pca = PCA(dim, svd_solver="randomized" if dim < min(len(fit_rows), vectors.shape[1]) else "full", random_state=seed).fit(vectors[fit_rows])
    reduced = pca.transform(vectors)
    return -IsolationForest(random_state=seed, n_estimators=200).fit(reduced).score_samples(reduced)


def linkage_score(knn: KnnGraph, min_fraction: float = 0.1) -> np.ndarray:
    """The distance at which single-linkage merging puts each item in a group of at least
    ``min_fraction`` of the items (computed on the kNN graph's minimum spanning tree).

    Real modes of the data (classes, styles) reach that size among themselves at small distances; a
    stray item, or a batch from another source smaller than ``min_fraction``, gets there only by
    joining the bulk, at a large distance. Items the kNN graph never connects to such a group get
    the largest merge distance seen.
    """
    n = knn.indices.shape[0]
    target = max(2, int(np.ceil(min_fraction * n)))
    rows = np.repeat(np.arange(n), knn.k)
    cols = knn.indices.ravel()
    keep = cols >= 0
    distance = np.clip(1.0 - knn.similarities.ravel()[keep], 1e-9, None)
    tree = minimum_spanning_tree(coo_matrix((distance, (rows[keep], cols[keep])), shape=(n, n))).tocoo()
    parent = np.arange(n)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    joined = np.full(n, np.nan)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for e in np.argsort(tree.data, kind="stable"):
        a, b = find(int(tree.row[e])), find(int(tree.col[e]))
        if a == b:
            continue
        if len(members[a]) < len(members[b]):
            a, b = b, a
        merged = len(members[a]) + len(members[b])
        if merged >= target:
            for side in (a, b):
                if len(members[side]) < target:
                    joined[members[side]] = tree.data[e]
        parent[b] = a
        members[a].extend(members.pop(b))
    fallback = float(np.nanmax(joined)) if np.isfinite(joined).any() else 1.0
    return np.where(np.isnan(joined), fallback, joined)


def detect_off_topic(
    items: pd.DataFrame, *, vectors: np.ndarray, knn: KnnGraph, labels: np.ndarray | None = None, k: int = 10,
    z: float = DEFAULT_Z, members: tuple[str, ...] | str = DEFAULT_MEMBERS, seed: int = 0,
) -> Detection:
    """Score every item by the selected members combined as the module docstring says; flag the
    items whose score reaches ``z``. ``text_format`` is skipped when the items carry no text. Items
    with an unusable vector score 0 and take no part in the run's statistics."""
    members = selected_members(members, MEMBERS, "off_topic")
    if not any(m in EMBEDDING_MEMBERS for m in members) and _texts(items) is None:
        raise ValueError("off_topic needs an embedding member, or text_format on texts; got only text_format on items without text")
    ids = items["item_id"].astype(str).to_numpy()
    n = len(ids)
    rows = comparable_rows(knn, vectors)
    if len(rows) < 5:
        return Detection(make_findings(ids, "off_topic", np.zeros(n), np.zeros(n, bool), [None] * n, [{}] * n))
    subset = items.iloc[rows].reset_index(drop=True)
    texts = _texts(subset)
    graph, kept = restrict_graph(knn, rows), take_rows(vectors, rows, n)
    kept_labels = take_rows(None if labels is None else np.asarray(labels, dtype=object), rows, n)
    views = [m for m in members if m in EMBEDDING_MEMBERS]
    raw = {m: _embedding_member(m, kept, graph, kept_labels, k, seed) for m in views}
    evidence: dict[str, np.ndarray] = {}
    left_out: list[str] = []
    if views:
        evidence["embedding"], left_out = consensus_z({m: raw[m] for m in views}, z)
    if "text_format" in members and texts is not None:
        evidence.update(format_z(texts))
        raw["text_format"] = evidence["length"] + evidence["ending"]
    scores = positive_sum(list(evidence.values()))
    flagged = scores >= z
    reasons = np.full(len(rows), None, dtype=object)
    reasons[flagged] = [_reason(evidence, i, scores[i], z) for i in np.flatnonzero(flagged)]
    details = pd.DataFrame({**raw, **{f"{name}_z": values for name, values in evidence.items()}, "threshold": z,
                            "members_left_out": ",".join(left_out) or None}, index=rows).reindex(range(n))
    return Detection(make_findings(
        ids, "off_topic", scatter(scores, rows, n, 0.0), scatter(flagged, rows, n, False), scatter(reasons, rows, n, None), details,
    ))


def member_scores(
    items: pd.DataFrame, *, vectors: np.ndarray, knn: KnnGraph, labels: np.ndarray | None = None, k: int = 10, seed: int = 0,
) -> dict[str, np.ndarray]:
    """Every member's own score (higher = more off-topic), row-aligned with ``items``; ``text_format``
    only when the items carry text. The benchmark ranks each alone."""
    out = {m: _embedding_member(m, vectors, knn, labels, k, seed) for m in EMBEDDING_MEMBERS}
    texts = _texts(items)
    if texts is not None:
        out["text_format"] = sum(format_z(texts).values())
    return out


_EXPLAIN = {
    "embedding": "its embedding is unlike the rest of the dataset",
    "length": "much longer than the other texts",
    "ending": "ends unlike most texts (sentence ending or not)",
}


def _reason(evidence: dict[str, np.ndarray], i: int, score: float, z: float) -> str:
    parts = sorted((name for name in evidence if evidence[name][i] > 0.5), key=lambda name: -evidence[name][i])
    because = "; ".join(f"{_EXPLAIN[name]} (z = {evidence[name][i]:.1f})" for name in parts)
    return f"off-topic: {because} — combined {score:.1f} >= {z}"


def _texts(items: pd.DataFrame) -> list[str] | None:
    """The items' texts when every item has one, else ``None``."""
    if "text" not in items or items["text"].isna().any():
        return None
    return items["text"].astype(str).tolist()


def _embedding_member(name: str, vectors: np.ndarray, knn: KnnGraph, labels: np.ndarray | None, k: int, seed: int) -> np.ndarray:
    if name == "knn_distance":
        return knn_distance_score(knn, k)
    if name == "knn_density":
        return knn_density_score(knn, k)
    if name == "linkage":
        return linkage_score(knn)
    if name == "mahalanobis":
        return mahalanobis_z(vectors, labels, seed=seed)
    if name == "centroid":
        return centroid_score(vectors)
    return isolation_forest_score(vectors, seed)

"""Off-topic items: content that does not belong to the dataset's domain at all.

Off-topic items arrive two ways: scattered (each one far from everything) or as a batch from the
wrong source (a tight cluster of their own, so each one has close neighbours and fools plain kNN
distance). Each view below sees a different case:

* ``knn_distance`` — mean cosine distance to the ``k`` nearest neighbours (scattered items);
* ``linkage`` — the distance at which single-linkage merging first puts an item in a group of at
  least 10 % of the data (on the kNN graph's minimum spanning tree): a batch from another source
  smaller than that joins late however tight it is (SelfClean's idea);
* ``knn_density`` — kNN distance divided by the neighbours' own kNN distance (a local outlier
  factor, for datasets of very uneven density);
* ``mahalanobis`` — distance to the nearest class Gaussian (shared covariance) of the
  PCA-reduced embeddings, or to the global one without labels;
* ``isolation_forest`` — Isolation Forest on the same reduced embeddings.

Each view becomes a robust z-score (median / MAD over the run; normalising per labelled class was
tried and lost on the benchmark, because a batch filed under one class shifts that class's own
median). The default combines
``knn_distance`` and ``linkage`` by their maximum ("far from everything *or* joins late"): on the
demo sets the other views added noise (their AP is reported by the benchmark when they are
selected with ``members``). An item is flagged when the combined z reaches ``z``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest

from detectors.knn import KnnGraph
from detectors.result import Detection
from winnow.findings import make_findings
from winnow.robust import robust_threshold

PCA_DIM = 64
MEMBERS = ("knn_distance", "linkage", "knn_density", "mahalanobis", "isolation_forest")
DEFAULT_MEMBERS = ("knn_distance", "linkage")


def robust_z(values: np.ndarray) -> np.ndarray:
    """``(x - median) / spread`` with spread = 1.4826 · MAD, but at least half the standard deviation:
    merge heights are often tied, and a near-zero MAD would turn every small difference into a
    huge z."""
    _, median, mad = robust_threshold(values, 0.0)
    spread = max(mad, 0.5 * float(np.std(values)), 1e-9)
    return (values - median) / spread


def knn_distance_score(knn: KnnGraph, k: int) -> np.ndarray:
    """Mean cosine distance to the ``k`` nearest neighbours."""
    valid = knn.indices[:, :k] >= 0
    return _row_means(1.0 - knn.similarities[:, :k], valid, empty=0.0)


def _row_means(values: np.ndarray, valid: np.ndarray, *, empty: float) -> np.ndarray:
    """Mean of each row's ``valid`` entries; ``empty`` for a row without any."""
    counts = valid.sum(axis=1)
    return np.divide(np.where(valid, values, 0.0).sum(axis=1), counts, out=np.full(len(values), empty), where=counts > 0)


def knn_density_score(knn: KnnGraph, k: int) -> np.ndarray:
    """Mean kNN distance relative to the neighbours' mean kNN distance."""
    cols = knn.indices[:, :k]
    valid = cols >= 0
    own = knn_distance_score(knn, k)
    reference = _row_means(own[np.where(valid, cols, 0)], valid, empty=1.0)
    return own / np.maximum(reference, 1e-6)


def mahalanobis_score(reduced: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """Distance to the nearest class Gaussian (shared covariance), or to the global one without labels."""
    groups = [np.arange(len(reduced))] if labels is None else [np.flatnonzero(labels == c) for c in pd.unique(labels)]
    groups = [g for g in groups if len(g) >= 2] or [np.arange(len(reduced))]
    centred = np.concatenate([reduced[g] - reduced[g].mean(axis=0) for g in groups])
    covariance = np.cov(centred, rowvar=False) + 1e-3 * np.eye(reduced.shape[1])
    precision = np.linalg.pinv(covariance)
    distances = []
    for g in groups:
        diff = reduced - reduced[g].mean(axis=0)
        distances.append(np.sqrt(np.einsum("ij,jk,ik->i", diff, precision, diff).clip(min=0)))
    return np.min(np.stack(distances), axis=0)


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
    z: float = 3.5, members: tuple[str, ...] = DEFAULT_MEMBERS, combine: str = "max", seed: int = 0,
) -> Detection:
    """Score every item with the selected views combined by ``max`` or ``mean`` of their robust z."""
    unknown = sorted(set(members) - set(MEMBERS))
    if unknown or not members or combine not in ("max", "mean"):
        raise ValueError(f"off_topic members must come from {MEMBERS} and combine be max or mean; got {members}, {combine!r}")
    ids = items["item_id"].astype(str).to_numpy()
    n = len(ids)
    if n < 5:
        return Detection(make_findings(ids, "off_topic", np.zeros(n), np.zeros(n, bool), [None] * n, [{}] * n))
    if labels is not None:
        labels = np.asarray(labels, dtype=object)
        labels = labels if pd.notna(labels).all() and len(set(labels)) > 1 else None
    raw = {name: _member(name, vectors, knn, labels, k, seed) for name in members}
    zs = {name: robust_z(values) for name, values in raw.items()}
    stacked = np.stack([zs[m] for m in members])
    scores = stacked.max(axis=0) if combine == "max" else stacked.mean(axis=0)
    flagged = scores >= z
    reasons = np.full(n, None, dtype=object)
    reasons[flagged] = [f"unlike the rest of the dataset: {_strongest(zs, i)} (z = {scores[i]:.1f} >= {z})" for i in np.flatnonzero(flagged)]
    details = pd.DataFrame({**raw, **{f"{m}_z": zs[m] for m in members}, "threshold": z})
    return Detection(make_findings(ids, "off_topic", scores, flagged, reasons, details))


_EXPLAIN = {
    "knn_distance": "far from all its nearest neighbours",
    "linkage": "joins the bulk of the data only at a large distance (it sits in a separate group)",
    "knn_density": "much sparser surroundings than its neighbours have",
    "mahalanobis": "far from the distribution of every class",
    "isolation_forest": "isolated quickly by random splits",
}


def _strongest(zs: dict[str, np.ndarray], i: int) -> str:
    return _EXPLAIN[max(zs, key=lambda m: zs[m][i])]


def _member(name: str, vectors: np.ndarray, knn: KnnGraph, labels: np.ndarray | None, k: int, seed: int) -> np.ndarray:
    if name == "knn_distance":
        return knn_distance_score(knn, k)
    if name == "knn_density":
        return knn_density_score(knn, k)
    if name == "linkage":
        return linkage_score(knn)
    reduced = PCA(min(PCA_DIM, vectors.shape[1], len(vectors) - 1), random_state=seed).fit_transform(vectors)
    if name == "mahalanobis":
        return mahalanobis_score(reduced, labels)
    return -IsolationForest(random_state=seed, n_estimators=200).fit(reduced).score_samples(reduced)

"""Semantic dedup (SemDeDup, Abbas et al. 2023): cluster the embeddings with faiss k-means, then
inside each cluster remove documents whose cosine similarity to an earlier kept document is at
least the threshold, keeping one representative per group of near-duplicates.

Clustering makes the pairwise comparison affordable: a cluster of m documents costs m² dot
products instead of n² for the whole corpus. The representative kept is the first document in
corpus order (like exact and MinHash dedup), so the outcome does not depend on the clustering's
order of work. This stage holds the kept documents' embeddings of the whole run in memory
(384 floats each for MiniLM): it is meant for the corpus left after the cheaper stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TRAIN_POINTS_PER_CLUSTER = 256
"""faiss k-means trains on at most this many points per cluster (a random sample)."""


@dataclass(frozen=True)
class SemanticMatch:
    """``position`` (row in the input) is removed as a near-duplicate of ``kept`` (row), at ``cosine``."""

    position: int
    kept: int
    cosine: float
    cluster: int


def default_clusters(n: int) -> int:
    """About sqrt(n / 10): clusters of a few dozen documents on small sets, a few hundred on large ones."""
    return max(1, round(math.sqrt(n / 10)))


def semantic_duplicates(vectors: np.ndarray, *, threshold: float, clusters: int | None = None, seed: int = 0) -> list[SemanticMatch]:
    """Near-duplicates among L2-normalised ``vectors`` (rows in corpus order)."""
    import faiss

    n = len(vectors)
    if n < 2:
        return []
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    k = min(clusters or default_clusters(n), n)
    if k > 1:
        kmeans = faiss.Kmeans(vectors.shape[1], k, niter=20, seed=seed, spherical=True,
                              max_points_per_centroid=TRAIN_POINTS_PER_CLUSTER, verbose=False)
        kmeans.train(vectors)
        _, assignment = kmeans.index.search(vectors, 1)
        assignment = assignment[:, 0]
    else:
        assignment = np.zeros(n, np.int64)
    matches: list[SemanticMatch] = []
    for cluster in np.unique(assignment).tolist():
        members = np.flatnonzero(assignment == cluster)  # ascending: corpus order
        if len(members) < 2:
            continue
        sims = vectors[members] @ vectors[members].T
        kept: list[int] = []
        for position in range(len(members)):
            if kept:
                best = int(np.argmax(sims[position, kept]))
                cosine = float(sims[position, kept[best]])
                if cosine >= threshold:
                    matches.append(SemanticMatch(int(members[position]), int(members[kept[best]]), cosine, int(cluster)))
                    continue
            kept.append(position)
    return sorted(matches, key=lambda m: m.position)

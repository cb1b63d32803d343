"""Single-signal baselines: what one distance alone achieves, so the fused detectors earn their place.

* pHash only: 64-bit perceptual hashes (imagehash), pairs ranked by Hamming distance.
* kNN distance only: mean cosine distance to the ``k`` nearest neighbours, items ranked by it.
"""

from __future__ import annotations

from pathlib import Path

import imagehash
import numpy as np
from PIL import Image
from sklearn.neighbors import NearestNeighbors

from bench.scoring import ItemRanking, PairRanking, canonical_pair

PHASH_CANDIDATE_BITS = 12
PHASH_FLAG_BITS = 4


def phash_pairs(root: Path, ids: list[str], candidate_bits: int = PHASH_CANDIDATE_BITS, flag_bits: int = PHASH_FLAG_BITS) -> PairRanking:
    """Pairs within ``candidate_bits`` Hamming distance, scored by minus the distance; flagged within
    ``flag_bits`` (of 64)."""
    hashes = np.array([int(str(imagehash.phash(Image.open(root / i))), 16) for i in ids], dtype=np.uint64)
    scores: dict[tuple[str, str], float] = {}
    flagged = set()
    for a in range(len(ids) - 1):
        distance = np.bitwise_count(hashes[a] ^ hashes[a + 1 :])
        for offset in np.flatnonzero(distance <= candidate_bits):
            pair = canonical_pair(ids[a], ids[a + 1 + offset])
            scores[pair] = -float(distance[offset])
            if distance[offset] <= flag_bits:
                flagged.add(pair)
    return PairRanking(scores, flagged)


def knn_distance(ids: list[str], features: np.ndarray, k: int = 10) -> ItemRanking:
    """Mean cosine distance to the ``k`` nearest other items; no decision rule, so nothing is flagged."""
    distances, _ = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(features).kneighbors(features)
    return ItemRanking(dict(zip(ids, distances[:, 1:].mean(axis=1))))

"""Near-duplicates: items whose embeddings — and, for images, perceptual hashes — say "same content".

Each kNN pair gets one similarity on the cosine scale: the embedding cosine, or, when perceptual
hashes are given and the cosine is at least ``min_cosine``, the pHash similarity
``1 - (1 - threshold) * hamming / phash_max_distance`` if that is higher (so a Hamming distance of
``phash_max_distance`` bits lands exactly on the threshold and identical hashes on 1). pHash is
robust to re-encoding and brightness changes that move a CNN embedding; the cosine guard stops
unrelated images with colliding hashes (blank frames) from pairing.

Edges join kNN neighbours whose similarity is ``>= threshold`` (neighbours with the same content
hash are exact duplicates and are left to that detector). Connected components form groups; each
group keeps its first-seen item. Scores are chosen so that ``flagged`` is exactly
``score >= threshold``: a non-keeper scores its strongest edge inside the group, a keeper or an
ungrouped item scores its most similar neighbour outside its group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from detectors.knn import KnnGraph
from detectors.result import Detection
from winnow.findings import make_findings

METHOD = "embedding_cosine"
FUSED_METHOD = "phash+embedding"
DEFAULT_THRESHOLD = 0.95


def hamming_to_neighbours(hashes: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Bits that differ between each item's 64-bit hash (hex) and each neighbour's."""
    values = np.array([int(h, 16) for h in hashes], dtype=np.uint64)
    return np.bitwise_count(values[:, None] ^ values[np.where(indices >= 0, indices, 0)]).astype(np.int64)


def fused_similarities(knn: KnnGraph, hashes: np.ndarray | None, threshold: float, phash_max_distance: int, min_cosine: float) -> tuple[np.ndarray, np.ndarray]:
    """``(similarity, from_phash)`` per kNN pair on the cosine scale (see the module docstring)."""
    cosine = knn.similarities
    if hashes is None or knn.k == 0:
        return cosine, np.zeros(cosine.shape, bool)
    hamming = hamming_to_neighbours(hashes, knn.indices)
    phash = 1.0 - (1.0 - threshold) * hamming / max(phash_max_distance, 1)
    use = (cosine >= min_cosine) & (phash > cosine) & (knn.indices >= 0)
    return np.where(use, phash, cosine).astype(np.float32), use


def _edges(items: pd.DataFrame, knn: KnnGraph, sims_matrix: np.ndarray, from_phash: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(items)
    rows = np.repeat(np.arange(n), knn.k)
    cols = knn.indices.ravel()
    sims = sims_matrix.ravel()
    fused = from_phash.ravel()
    hashes = items["content_hash"].to_numpy()
    valid = cols >= 0
    valid[valid] &= hashes[rows[valid]] != hashes[cols[valid]]
    strong = valid & (sims >= threshold)
    a, b = np.minimum(rows[strong], cols[strong]), np.maximum(rows[strong], cols[strong])
    edge_frame = (
        pd.DataFrame({"a": a, "b": b, "sim": sims[strong], "fused": fused[strong]})
        .sort_values("sim", ascending=False)
        .drop_duplicates(["a", "b"])
    )
    return edge_frame["a"].to_numpy(), edge_frame["b"].to_numpy(), edge_frame["sim"].to_numpy(), edge_frame["fused"].to_numpy()


def detect_near_duplicate(
    items: pd.DataFrame, *, knn: KnnGraph, hashes: np.ndarray | None = None, threshold: float = DEFAULT_THRESHOLD,
    phash_max_distance: int = 4, min_cosine: float = 0.75,
) -> Detection:
    """Group near-duplicates; ``items`` (``item_id``, ``ordinal``, ``content_hash``), ``knn`` and
    ``hashes`` (pHash hex strings, images only) are row-aligned."""
    n = len(items)
    ids = items["item_id"].astype(str).to_numpy()
    similarities, from_phash = fused_similarities(knn, hashes, threshold, phash_max_distance, min_cosine)
    a, b, sim, fused = _edges(items, knn, similarities, from_phash, threshold)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component, minlength=component.max() + 1 if n else 0)
    ordinals = items["ordinal"].to_numpy()
    order = np.lexsort((ordinals, component))
    first = np.r_[True, component[order][1:] != component[order][:-1]] if n else np.array([], bool)
    keeper_idx = np.empty(component.max() + 1 if n else 0, dtype=np.int64)
    keeper_idx[component[order][first]] = order[first]

    grouped = sizes[component] > 1
    keeper = keeper_idx[component]
    is_keeper = keeper == np.arange(n)
    flagged = grouped & ~is_keeper

    # strongest edge inside the group, per item
    inside = np.full(n, -np.inf)
    np.maximum.at(inside, a, sim)
    np.maximum.at(inside, b, sim)
    # most similar neighbour outside the group (or any different-content neighbour when ungrouped)
    cols = knn.indices
    hashes = items["content_hash"].to_numpy()
    safe_cols = np.where(cols >= 0, cols, 0)
    outside_mask = (cols >= 0) & (component[safe_cols] != component[:, None]) & (hashes[safe_cols] != hashes[:, None])
    outside_sims = np.where(outside_mask, similarities, -np.inf)
    nearest_out = outside_sims.argmax(axis=1) if knn.k else np.zeros(n, np.int64)
    outside = outside_sims.max(axis=1) if knn.k else np.full(n, -np.inf)
    scores = np.where(flagged, inside, outside)
    scores = np.where(np.isfinite(scores), scores, 0.0)

    group_size = sizes[component]
    keeper_ids = ids[keeper].astype(object)
    reasons = np.full(n, None, dtype=object)
    reasons[flagged] = [
        f"near-duplicate of {k} (similarity {s:.3f} >= {threshold:.3f}), group of {g}"
        for k, s, g in zip(keeper_ids[flagged], scores[flagged], group_size[flagged])
    ]
    kept = grouped & ~flagged
    reasons[kept] = [f"kept as the representative of {g} near-duplicates" for g in group_size[kept]]
    nearest = np.full(n, None, dtype=object)
    if knn.k:
        has_outside = outside_mask.any(axis=1)
        nearest[has_outside] = ids[safe_cols[np.arange(n), nearest_out]][has_outside]
    details = pd.DataFrame({"similarity": scores, "threshold": threshold, "group_size": group_size, "nearest_outside_group": nearest})
    related = np.where(flagged, keeper_ids, None)
    groups = np.where(grouped, "near:" + keeper_ids, None)

    findings = make_findings(ids, "near_duplicate", scores, flagged, reasons, details, related_item_ids=related, group_ids=groups)
    pairs = pd.DataFrame({"item_a": ids[a], "item_b": ids[b], "similarity": sim.astype(float), "method": np.where(fused, FUSED_METHOD, METHOD)})
    return Detection(findings, pairs)

"""Near-duplicates: items whose embeddings are closer than a cosine threshold.

Edges join kNN neighbours with cosine similarity ``>= threshold`` (neighbours with the same content
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
DEFAULT_THRESHOLD = 0.95


def _edges(items: pd.DataFrame, knn: KnnGraph, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(items)
    rows = np.repeat(np.arange(n), knn.k)
    cols = knn.indices.ravel()
    sims = knn.similarities.ravel()
    hashes = items["content_hash"].to_numpy()
    valid = cols >= 0
    valid[valid] &= hashes[rows[valid]] != hashes[cols[valid]]
    strong = valid & (sims >= threshold)
    a, b = np.minimum(rows[strong], cols[strong]), np.maximum(rows[strong], cols[strong])
    edge_frame = pd.DataFrame({"a": a, "b": b, "sim": sims[strong]}).drop_duplicates(["a", "b"])
    return edge_frame["a"].to_numpy(), edge_frame["b"].to_numpy(), edge_frame["sim"].to_numpy()


def detect_near_duplicate(items: pd.DataFrame, *, knn: KnnGraph, threshold: float = DEFAULT_THRESHOLD) -> Detection:
    """Group near-duplicates; ``items`` (``item_id``, ``ordinal``, ``content_hash``) is row-aligned with ``knn``."""
    n = len(items)
    ids = items["item_id"].astype(str).to_numpy()
    a, b, sim = _edges(items, knn, threshold)
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
    outside_sims = np.where(outside_mask, knn.similarities, -np.inf)
    nearest_out = outside_sims.argmax(axis=1) if knn.k else np.zeros(n, np.int64)
    outside = outside_sims.max(axis=1) if knn.k else np.full(n, -np.inf)
    scores = np.where(flagged, inside, outside)
    scores = np.where(np.isfinite(scores), scores, 0.0)

    reasons, details, related, groups = [], [], [], []
    for i in range(n):
        group = f"near:{ids[keeper[i]]}" if grouped[i] else None
        groups.append(group)
        if flagged[i]:
            related.append(ids[keeper[i]])
            reasons.append(f"near-duplicate of {ids[keeper[i]]} (cosine {scores[i]:.3f} >= {threshold:.3f}), group of {sizes[component[i]]}")
        else:
            related.append(None)
            reasons.append(f"kept as the representative of {sizes[component[i]]} near-duplicates" if grouped[i] else None)
        nearest = ids[safe_cols[i, nearest_out[i]]] if knn.k and outside_mask[i].any() else None
        details.append({"cosine": float(scores[i]), "threshold": threshold, "group_size": int(sizes[component[i]]), "nearest_outside_group": nearest})

    findings = make_findings(ids, "near_duplicate", scores, flagged, reasons, details, related_item_ids=related, group_ids=groups)
    pairs = pd.DataFrame({"item_a": ids[a], "item_b": ids[b], "similarity": sim.astype(float), "method": METHOD})
    return Detection(findings, pairs)

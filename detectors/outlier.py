"""Outliers: items far from their nearest neighbours in embedding space.

Score = mean cosine distance to the ``k`` nearest items with other content (exact copies would
otherwise hide an outlier that was duplicated). The threshold is set per run from the score
distribution: ``median + z * 1.4826 * MAD`` (a robust z-score), so it adapts to the model and the
data instead of being a fixed constant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.knn import KnnGraph
from detectors.result import Detection
from winnow.findings import make_findings
from winnow.robust import robust_threshold

DEFAULT_Z = 3.5


def detect_outlier(items: pd.DataFrame, *, knn: KnnGraph, k: int = 10, z: float = DEFAULT_Z) -> Detection:
    """Score every item by kNN distance; flag robust-z outliers. ``items`` is row-aligned with ``knn``."""
    ids = items["item_id"].astype(str).to_numpy()
    hashes = items["content_hash"].to_numpy()
    cols = knn.indices[:, :k]
    safe = np.where(cols >= 0, cols, 0)
    usable = (cols >= 0) & (hashes[safe] != hashes[:, None])
    distance = np.where(usable, 1.0 - knn.similarities[:, :k], np.nan)
    with np.errstate(invalid="ignore"):
        counts = usable.sum(axis=1)
        scores = np.where(counts > 0, np.nansum(distance, axis=1) / np.maximum(counts, 1), 0.0)
    threshold, median, mad = robust_threshold(scores, z)
    flagged = scores >= threshold if len(ids) > 2 else np.zeros(len(ids), bool)
    reasons = np.full(len(ids), None, dtype=object)
    reasons[flagged] = [
        f"far from its neighbours: mean cosine distance {s:.3f} to {c} nearest (threshold {threshold:.3f}, median {median:.3f})"
        for s, c in zip(scores[flagged], counts[flagged])
    ]
    details = pd.DataFrame({"mean_distance": scores, "neighbours": counts, "threshold": threshold, "median": median, "mad": mad})
    return Detection(make_findings(ids, "outlier", scores, flagged, reasons, details))

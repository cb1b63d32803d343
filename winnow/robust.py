"""Robust statistics shared by detectors and checks (kept free of heavy imports: checks load it
without pulling in scikit-learn or faiss)."""

from __future__ import annotations

import numpy as np


def robust_threshold(scores: np.ndarray, z: float) -> tuple[float, float, float]:
    """``(threshold, median, scaled MAD)`` for a robust z-score cut-off."""
    median = float(np.median(scores)) if len(scores) else 0.0
    mad = float(1.4826 * np.median(np.abs(scores - median))) if len(scores) else 0.0
    return median + z * max(mad, 1e-6), median, mad

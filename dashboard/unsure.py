"""The "unsure" band of a queue: the items whose flag a small change of the threshold would flip.

Every detector flags an item when its score passes the run's calibrated threshold (or, for a few,
a rule that the score only approximates). Items far above are clear issues and items far below
clearly fine; the ones near the threshold are where a detector *should abstain* and a person
decide — anomaly detection with rejection (Perini et al., 2023, reject where the prediction's
confidence is low). The dashboard gives them their own queue, reviewed first.

The rule, per run and issue type, from the scores of every finding of that type:

1. **Threshold** ``τ``: the one the detector recorded in ``detail.threshold`` (near_duplicate,
   off_topic, outlier) when it agrees with the flags (every flagged score ``≥ τ``, every other
   ``< τ``); otherwise the cut the flags imply: halfway between the ``k``-th and ``k+1``-th highest
   score for ``k`` flagged items (``0.5`` for low_quality's sub-scores; for label_error, whose flag
   is a rule, the score above which as many items lie as were flagged). No band when neither
   exists (no recorded threshold and nothing, or everything, flagged).
2. **Width**: ``δ = BAND_FRACTION · |τ − median score|``. An item is unsure when
   ``|score − τ| ≤ δ``: moving the threshold 15 % of the way towards the typical item, or as far
   away, would flip its flag. The width scales with each detector's own score range, so one
   fraction serves similarities, robust z-scores and probabilities alike; 0/1 scores (exact
   duplicates, corrupt files) are certain by construction and get an empty band.
3. **Cap**: at most :data:`MAX_BAND` items, the closest to ``τ``, so the band stays an
   afternoon's work on a large dataset.

The band is returned as a score interval, so the store pages it like any other score filter.
Pure: arrays in, a :class:`Band` out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BAND_FRACTION = 0.15
MAX_BAND = 500


@dataclass(frozen=True)
class Band:
    """The unsure band of one queue: scores in ``[low, high]`` around the threshold."""

    threshold: float
    threshold_from: str
    """``"detector"`` (its recorded threshold) or ``"flags"`` (the cut the flags imply)."""
    low: float
    high: float
    size: int

    def describe(self) -> str:
        """One sentence for the page: what the band is and where its threshold came from."""
        source = "the detector's threshold" if self.threshold_from == "detector" else "the cut between flagged and unflagged scores"
        return (f"{self.size} item(s) scored {self.low:.3f}–{self.high:.3f}, close to {source} ({self.threshold:.3f}); "
                "a small change of the threshold would flip their flag.")


def threshold_of(scores: np.ndarray, flagged: np.ndarray, recorded: float | None) -> tuple[float, str] | None:
    """``(τ, where it came from)`` for these findings (step 1 of the module docstring), or ``None``."""
    scores, flagged = np.asarray(scores, np.float64), np.asarray(flagged, bool)
    if recorded is not None and np.isfinite(recorded):
        if (scores[flagged] >= recorded).all() and (scores[~flagged] < recorded).all():
            return float(recorded), "detector"
    k = int(flagged.sum())
    if k == 0 or k == len(scores):
        return None
    ordered = np.sort(scores)[::-1]
    return float((ordered[k - 1] + ordered[k]) / 2), "flags"


def unsure_band(scores: np.ndarray, flagged: np.ndarray, recorded_threshold: float | None = None, *,
                fraction: float = BAND_FRACTION, max_items: int = MAX_BAND) -> Band | None:
    """The unsure band of one run's findings of one issue type, or ``None`` when it has no
    threshold or no item near it (see the module docstring for the rule)."""
    scores = np.asarray(scores, np.float64)
    found = threshold_of(scores, flagged, recorded_threshold)
    if found is None:
        return None
    tau, source = found
    width = fraction * abs(tau - float(np.median(scores)))
    distance = np.abs(scores - tau)
    inside = np.flatnonzero(distance <= width)
    if len(inside) == 0:
        return None
    if len(inside) > max_items:
        inside = inside[np.argsort(distance[inside], kind="stable")[:max_items]]
    low, high = float(scores[inside].min()), float(scores[inside].max())
    size = int(((scores >= low) & (scores <= high)).sum())
    return Band(tau, source, low, high, size)

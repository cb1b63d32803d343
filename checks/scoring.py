"""Scoring shared by the quality checks: severities, relative and absolute rules, and the
translation of sub-issues into one ``low_quality`` finding per item.

Every rule turns a measurement into a *severity* ``r >= 0``; ``r >= 1`` means it fired (see the
"Scoring" section of :mod:`checks.image_quality`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd

from winnow.findings import empty_findings, make_findings
from winnow.robust import robust_threshold

ISSUE_TYPE = "low_quality"
# relative rules need a few items to have a distribution to compare with
MIN_ITEMS_RELATIVE = 5

Tail = Literal["low", "high", "both"]


@dataclass(frozen=True)
class SubIssue:
    """One sub-issue scored over the dataset.

    ``severity`` is per item (``>= 1`` means it fired), ``describe(i)`` is the reason phrase for
    item ``i`` (called only where it fired) and ``thresholds`` the dataset-level limits it used.
    """

    name: str
    severity: np.ndarray
    describe: Callable[[int], str]
    thresholds: dict[str, Any]


def severity_to_score(severity: np.ndarray) -> np.ndarray:
    """Map severities to 0..1 sub-scores: ``1 - 2 ** -r`` (0.5 exactly at the threshold)."""
    return 1.0 - np.exp2(-np.maximum(severity, 0.0))


@dataclass(frozen=True)
class Relative:
    """A relative rule's outcome: severity per item and the dataset's robust centre and spread."""

    severity: np.ndarray
    median: float
    spread: float
    z: float | None

    def limit(self, sign: int) -> float | None:
        """The threshold on the measured scale, below (``sign=-1``) or above (``+1``) the median."""
        return None if self.z is None else self.median + sign * self.z * self.spread


def relative_rule(values: np.ndarray, *, z: float | None, floor: float, tail: Tail) -> Relative:
    """Robust-z severity of each value against the whole set, in the ``tail`` direction(s).

    Off (all zeros) when ``z`` is None or there are fewer than :data:`MIN_ITEMS_RELATIVE` values.
    """
    values = np.asarray(values, dtype=float)
    _, median, mad = robust_threshold(values, 0.0)
    spread = max(mad, floor)
    if z is None or len(values) < MIN_ITEMS_RELATIVE:
        return Relative(np.zeros(len(values)), median, spread, None)
    deviation = (values - median) / spread
    directed = {"low": -deviation, "high": deviation, "both": np.abs(deviation)}[tail]
    return Relative(np.maximum(directed, 0.0) / z, median, spread, z)


def at_most(values: np.ndarray, limit: float | None, *, offset: float = 1.0) -> np.ndarray:
    """Severity of an absolute "at most ``limit``" guard: ``(limit + offset) / (value + offset)``.

    It is 1 at the limit and grows as the value falls towards 0 (``offset`` keeps 0 finite);
    zeros when the guard is off.
    """
    if limit is None:
        return np.zeros(len(values))
    return (limit + offset) / (np.asarray(values, dtype=float) + offset)


def at_least(values: np.ndarray, limit: float | None) -> np.ndarray:
    """Severity of an absolute "at least ``limit``" guard: ``value / limit``; zeros when off."""
    if limit is None:
        return np.zeros(len(values))
    if limit <= 0:
        raise ValueError(f"an 'at least' limit must be positive, got {limit}; use None to turn the rule off")
    return np.asarray(values, dtype=float) / limit


def require_columns(properties: pd.DataFrame, columns: tuple[str, ...], measure: str) -> None:
    """Raise ``ValueError`` naming the missing columns and the function that produces them."""
    missing = [c for c in ("item_id", *columns) if c not in properties.columns]
    if missing:
        raise ValueError(f"properties lack columns {missing}; build them with {measure}() and add item_id")


def either_limit(relative: float | None, absolute: float | None, fires: Literal["below", "above"]) -> float | None:
    """The limit an item crosses first when either rule fires it: the larger of two "at most"
    limits (``fires="below"``) or the smaller of two "at least" ones; None when both are off."""
    active = [x for x in (relative, absolute) if x is not None]
    return None if not active else max(active) if fires == "below" else min(active)


def fmt(value: float | None, spec: str = ",.0f") -> str:
    """A number for a reason sentence; ``-`` for a rule that is off."""
    return "-" if value is None else format(value, spec)


def _rounded(value: Any) -> Any:
    """``value`` with every float rounded to 4 significant digits: details stay short and readable."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return float(f"{value:.4g}") if isinstance(value, float) else value


def quality_findings(item_ids: pd.Series, sub_issues: list[SubIssue]) -> pd.DataFrame:
    """One ``low_quality`` finding per item from its sub-issues (see "Scoring" in the module doc).

    ``reason`` joins the phrases of every sub-issue that fired; ``detail`` holds every sub-score,
    the names of those that fired and the dataset-level thresholds.
    """
    if len(item_ids) == 0:
        return empty_findings()
    severities = np.vstack([s.severity for s in sub_issues])
    sub_scores = severity_to_score(severities)
    fired = severities >= 1.0
    thresholds = _rounded({s.name: s.thresholds for s in sub_issues})
    reasons, details = [], []
    for i in range(len(item_ids)):
        names = [s.name for s, f in zip(sub_issues, fired[:, i]) if f]
        phrases = [s.describe(i) for s, f in zip(sub_issues, fired[:, i]) if f]
        reasons.append("; ".join(phrases) if phrases else None)
        details.append({
            "sub_scores": {s.name: round(float(v), 4) for s, v in zip(sub_issues, sub_scores[:, i])},
            "fired": names,
            "thresholds": thresholds,
        })
    return make_findings(item_ids, ISSUE_TYPE, sub_scores.max(axis=0), fired.any(axis=0), reasons, details)

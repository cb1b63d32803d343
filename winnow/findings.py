"""The findings contract: one long frame, one row per (item, issue type).

Every detector and check returns this shape, and the store persists it unchanged. The column list,
the issue-type vocabulary and :func:`validate_findings` live together so that the contract is
checked in one place (see ARCHITECTURE.md, "Findings").

Run-level findings (``drift``: the whole batch against a reference run) are not about one item:
they use the item id :data:`RUN_ITEM_ID` (``"__run__"``), which has no row in ``items``. Code that
joins findings to items must expect it (a left join leaves its item columns empty).
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import numpy as np
import pandas as pd

ISSUE_TYPES: tuple[str, ...] = (
    "exact_duplicate",
    "near_duplicate",
    "off_topic",
    "label_error",
    "outlier",
    "low_quality",
    "corrupt",
    "check_failed",
    "drift",
)

FINDINGS_COLUMNS: tuple[str, ...] = (
    "run_id",
    "item_id",
    "issue_type",
    "score",
    "flagged",
    "related_item_id",
    "group_id",
    "suggested_label",
    "reason",
    "detail",
)

RUN_ITEM_ID = "__run__"
"""The ``item_id`` of a run-level finding (one per run and issue type, e.g. ``drift``)."""

PAIRS_COLUMNS: tuple[str, ...] = ("item_a", "item_b", "similarity", "method", "run_id")

_DTYPES: dict[str, str] = {
    "run_id": "object",
    "item_id": "object",
    "issue_type": "object",
    "score": "float64",
    "flagged": "bool",
    "related_item_id": "object",
    "group_id": "object",
    "suggested_label": "object",
    "reason": "object",
    "detail": "object",
}


def empty_findings() -> pd.DataFrame:
    """A findings frame with no rows and the contract's columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in FINDINGS_COLUMNS})


def empty_pairs() -> pd.DataFrame:
    """A pairs frame with no rows."""
    return pd.DataFrame(
        {
            "item_a": pd.Series(dtype="object"),
            "item_b": pd.Series(dtype="object"),
            "similarity": pd.Series(dtype="float64"),
            "method": pd.Series(dtype="object"),
            "run_id": pd.Series(dtype="object"),
        }
    )


def make_findings(
    item_ids: Iterable[str],
    issue_type: str,
    scores: Iterable[float],
    flagged: Iterable[bool],
    reasons: Iterable[str],
    details: Iterable[dict[str, Any]] | pd.DataFrame,
    *,
    related_item_ids: Iterable[str | None] | None = None,
    group_ids: Iterable[str | None] | None = None,
    suggested_labels: Iterable[str | None] | None = None,
) -> pd.DataFrame:
    """Build a validated findings frame for one issue type (``run_id`` is filled in by the flow).

    ``details`` is one dict per item, or a frame with one row per item and one column per key: a
    frame is serialised by pandas in one call, which a detector scoring a million items needs.
    """
    ids = [str(i) for i in item_ids]
    n = len(ids)

    def column(values: Iterable[Any] | None) -> list[Any]:
        out = [None] * n if values is None else list(values)
        if len(out) != n:
            raise ValueError(f"findings column has {len(out)} values for {n} items")
        return out

    frame = pd.DataFrame(
        {
            "run_id": [None] * n,
            "item_id": ids,
            "issue_type": [issue_type] * n,
            "score": np.asarray(column(scores), dtype="float64"),
            "flagged": np.asarray(column(flagged), dtype=bool),
            "related_item_id": column(related_item_ids),
            "group_id": column(group_ids),
            "suggested_label": column(suggested_labels),
            "reason": column(reasons),
            "detail": column(_records_json(details)) if isinstance(details, pd.DataFrame) else
                      [json.dumps(d, sort_keys=True, default=_json_default) for d in column(details)],
        }
    )
    return validate_findings(frame.astype(_DTYPES) if n else empty_findings())


def _records_json(details: pd.DataFrame) -> list[str]:
    """One JSON object per row, keys sorted as ``json.dumps(sort_keys=True)`` sorts them."""
    if details.empty:
        return ["{}"] * len(details)
    return details[sorted(details.columns)].to_json(orient="records", lines=True, double_precision=15).splitlines()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def validate_findings(frame: pd.DataFrame) -> pd.DataFrame:
    """Check that ``frame`` honours the findings contract and return it.

    Raises ``ValueError`` naming the first violated rule: missing or extra columns, an issue type
    outside the vocabulary, a NaN score, an item with two rows for the same issue type, or a
    reason missing on a flagged row.
    """
    missing = [c for c in FINDINGS_COLUMNS if c not in frame.columns]
    extra = [c for c in frame.columns if c not in FINDINGS_COLUMNS]
    if missing or extra:
        raise ValueError(f"findings columns differ from the contract: missing {missing}, extra {extra}")
    unknown = sorted(set(frame["issue_type"]) - set(ISSUE_TYPES))
    if unknown:
        raise ValueError(f"unknown issue types {unknown}; valid: {list(ISSUE_TYPES)}")
    if frame["score"].isna().any():
        raise ValueError("findings have NaN scores; every item needs a finite score")
    if frame.duplicated(["item_id", "issue_type"]).any():
        dup = frame.loc[frame.duplicated(["item_id", "issue_type"]), ["item_id", "issue_type"]].iloc[0]
        raise ValueError(f"item {dup.item_id!r} has two {dup.issue_type} findings")
    no_reason = frame["flagged"] & frame["reason"].isna()
    if no_reason.any():
        raise ValueError(f"flagged finding for {frame.loc[no_reason, 'item_id'].iloc[0]!r} has no reason")
    return frame[list(FINDINGS_COLUMNS)]

"""Exact duplicates: items whose content hash is equal (same bytes, same normalised text, same row).

The first item seen (lowest ingest ordinal) is kept; every later copy is flagged with score 1 and
points at it. Every other item gets score 0.
"""

from __future__ import annotations

import pandas as pd

from detectors.result import Detection
from winnow.findings import make_findings

METHOD = "content_hash"


def detect_exact_duplicate(items: pd.DataFrame) -> Detection:
    """Flag later copies of identical content; ``items`` needs ``item_id``, ``ordinal``, ``content_hash``."""
    ordered = items.sort_values("ordinal")
    keeper_of = ordered.groupby("content_hash", sort=False)["item_id"].transform("first")
    size_of = ordered.groupby("content_hash", sort=False)["item_id"].transform("size")
    is_copy = ordered["item_id"] != keeper_of
    in_group = size_of > 1
    reasons = [
        f"exact copy of {keeper} (same content hash)" if copy else
        (f"kept as the first of {size} identical items" if group else None)
        for keeper, copy, group, size in zip(keeper_of, is_copy, in_group, size_of)
    ]
    findings = make_findings(
        ordered["item_id"],
        "exact_duplicate",
        scores=is_copy.astype(float),
        flagged=is_copy,
        reasons=reasons,
        details=[{"content_hash": h, "group_size": int(s)} for h, s in zip(ordered["content_hash"], size_of)],
        related_item_ids=[k if c else None for k, c in zip(keeper_of, is_copy)],
        group_ids=[f"exact:{k}" if g else None for k, g in zip(keeper_of, in_group)],
    )
    pairs = pd.DataFrame(
        {
            "item_a": keeper_of[is_copy].astype(str).to_numpy(),
            "item_b": ordered.loc[is_copy, "item_id"].astype(str).to_numpy(),
            "similarity": 1.0,
            "method": METHOD,
        }
    )
    return Detection(findings, pairs)

"""Exact duplicates: items whose content hash is equal (same bytes, same normalised text, same row).

The first item seen (lowest ingest ordinal) is kept; every later copy is flagged with score 1 and
points at it. Every other item gets score 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.result import Detection
from winnow.findings import make_findings

METHOD = "content_hash"


def detect_exact_duplicate(items: pd.DataFrame) -> Detection:
    """Flag later copies of identical content; ``items`` needs ``item_id``, ``ordinal``, ``content_hash``."""
    ordered = items.sort_values("ordinal")
    keeper_of = ordered.groupby("content_hash", sort=False)["item_id"].transform("first")
    size_of = ordered.groupby("content_hash", sort=False)["item_id"].transform("size")
    is_copy = (ordered["item_id"] != keeper_of).to_numpy()
    in_group = (size_of > 1).to_numpy()
    keepers, sizes = keeper_of.to_numpy(), size_of.to_numpy()
    reasons = np.full(len(ordered), None, dtype=object)
    reasons[is_copy] = [f"exact copy of {keeper} (same content hash)" for keeper in keepers[is_copy]]
    kept = in_group & ~is_copy
    reasons[kept] = [f"kept as the first of {size} identical items" for size in sizes[kept]]
    findings = make_findings(
        ordered["item_id"],
        "exact_duplicate",
        scores=is_copy.astype(float),
        flagged=is_copy,
        reasons=reasons,
        details=pd.DataFrame({"content_hash": ordered["content_hash"].to_numpy(), "group_size": sizes}),
        related_item_ids=np.where(is_copy, keepers, None),
        group_ids=np.where(in_group, "exact:" + keepers.astype(str).astype(object), None),
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

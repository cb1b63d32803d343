"""Corrupt items: anything ingest or decoding could not read (empty, truncated, not an image,
a decompression bomb, a missing text, a non-numeric value in a numeric column)."""

from __future__ import annotations

import pandas as pd

from winnow.findings import make_findings


def check_corrupt(items: pd.DataFrame) -> pd.DataFrame:
    """Score 1 and flag every item with an ``error``; score 0 for the rest."""
    bad = items["error"].notna().to_numpy()
    return make_findings(
        items["item_id"],
        "corrupt",
        scores=bad.astype(float),
        flagged=bad,
        reasons=[e if b else None for e, b in zip(items["error"], bad)],
        details=[{"error": e} if b else {} for e, b in zip(items["error"], bad)],
    )

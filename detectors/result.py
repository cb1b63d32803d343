"""What a detector returns: findings for every item it scored, and duplicate pairs if any."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from winnow.findings import empty_pairs


@dataclass
class Detection:
    """Findings (contract columns) and pairs (``item_a, item_b, similarity, method``)."""

    findings: pd.DataFrame
    pairs: pd.DataFrame = field(default_factory=empty_pairs)

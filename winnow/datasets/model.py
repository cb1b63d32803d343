"""The ingested dataset: an items frame (one row per item) plus, for tables, the feature frame."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

MODALITIES: tuple[str, ...] = ("image", "text", "tabular")

ITEM_COLUMNS: tuple[str, ...] = (
    "item_id",
    "ordinal",
    "modality",
    "uri",
    "text",
    "label",
    "content_hash",
    "metadata",
    "error",
)


@dataclass
class Dataset:
    """What ingest hands to the rest of the audit.

    ``items`` has :data:`ITEM_COLUMNS`; ``error`` is a human reason for items that could not be
    read (they become ``corrupt`` findings and get no embedding). For a tabular source,
    ``features`` holds the parsed feature columns and ``table`` the rows exactly as read (id and label
    columns included, for rule checks), both row-aligned with ``items``; both are ``None`` otherwise.
    """

    name: str
    source: str
    modality: str
    items: pd.DataFrame
    features: pd.DataFrame | None = None
    table: pd.DataFrame | None = None

    @property
    def readable(self) -> pd.DataFrame:
        """Items that were read successfully."""
        return self.items[self.items["error"].isna()]


def items_frame(rows: list[dict]) -> pd.DataFrame:
    """Build an items frame with every column of :data:`ITEM_COLUMNS`, in order."""
    frame = pd.DataFrame(rows, columns=list(ITEM_COLUMNS))
    frame["ordinal"] = range(len(frame))
    for column in ITEM_COLUMNS:
        if column != "ordinal":
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame

"""Text sources: a manifest (CSV / Parquet / JSONL) with one text per row."""

from __future__ import annotations

import json

import pandas as pd

from winnow.datasets.columns import id_values, label_values
from winnow.datasets.hashing import hash_text
from winnow.datasets.model import Dataset, items_frame


def ingest_texts(
    frame: pd.DataFrame, *, text_col: str, label_col: str | None, id_col: str | None, source: str,
    name: str,
) -> Dataset:
    """One item per row; an empty or missing text is kept as an item with an ``error``."""
    ids = id_values(frame, id_col)
    labels = label_values(frame, label_col)
    rows = []
    for item_id, label, value in zip(ids, labels, frame[text_col]):
        text = None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
        error = None
        if text is None:
            error = f"text column {text_col!r} is missing a value"
        elif not text.strip():
            error = "text is empty (only whitespace)"
        rows.append(
            {
                "item_id": item_id,
                "modality": "text",
                "uri": None,
                "text": text,
                "label": label,
                "content_hash": hash_text(text or ""),
                "metadata": json.dumps({"chars": len(text or "")}),
                "error": error,
            }
        )
    return Dataset(name=name, source=source, modality="text", items=items_frame(rows))

"""Tabular sources: each row of a CSV / Parquet / JSONL table is an item.

Feature columns are all columns except the id and label columns. A column is numeric when at least
90 % of its non-missing values parse as numbers; a value that does not parse in such a column, an
infinite value, or a row with no values at all makes that row ``corrupt`` (with the column named),
while the other rows are audited as usual.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from winnow.datasets.columns import id_values, label_values
from winnow.datasets.hashing import hash_row
from winnow.datasets.model import Dataset, items_frame
from winnow.errors import SourceError

NUMERIC_SHARE = 0.9


def coerce_features(features: pd.DataFrame) -> tuple[pd.DataFrame, list[str | None]]:
    """Parse mostly-numeric columns as numbers and return ``(features, per-row error)``."""
    errors: list[str | None] = [None] * len(features)
    out = features.copy()
    for column in features.columns:
        values = features[column]
        if pd.api.types.is_bool_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype):
            continue
        present = values.notna()
        parsed = pd.to_numeric(values, errors="coerce")
        if present.sum() == 0 or parsed[present].notna().mean() < NUMERIC_SHARE:
            continue
        bad = present & (parsed.isna() | np.isinf(parsed.astype("float64")))
        for row in np.flatnonzero(bad.to_numpy()):
            if errors[row] is None:
                errors[row] = f"column {column!r} has a non-numeric or infinite value {values.iloc[row]!r}"
        out[column] = parsed.astype("float64").where(~bad, np.nan)
    empty = out.isna().all(axis=1).to_numpy()
    for row in np.flatnonzero(empty):
        errors[row] = errors[row] or "row has no values"
    return out, errors


def ingest_table(
    frame: pd.DataFrame, *, label_col: str | None, id_col: str | None, source: str, name: str
) -> Dataset:
    """One item per row; the content hash covers the feature values, not the id or label."""
    if frame.columns.duplicated().any():
        dupes = sorted(set(map(str, frame.columns[frame.columns.duplicated()])))
        raise SourceError(f"{source} has duplicated column names {dupes}; rename them and retry.")
    feature_cols = [c for c in frame.columns if c not in {label_col, id_col}]
    if not feature_cols:
        raise SourceError(f"{source} has no feature columns besides the id and label columns.")
    ids = id_values(frame, id_col)
    labels = label_values(frame, label_col)
    features, errors = coerce_features(frame[feature_cols].reset_index(drop=True))
    records = features.to_dict(orient="records")
    rows = [
        {
            "item_id": item_id,
            "modality": "tabular",
            "uri": None,
            "text": None,
            "label": label,
            "content_hash": hash_row(record),
            "metadata": json.dumps({"row": i}),
            "error": error,
        }
        for i, (item_id, label, record, error) in enumerate(zip(ids, labels, records, errors))
    ]
    return Dataset(
        name=name, source=source, modality="tabular", items=items_frame(rows), features=features,
        table=frame.reset_index(drop=True),
    )

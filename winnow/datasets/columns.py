"""Column roles shared by manifests and tables: item ids and labels."""

from __future__ import annotations

import pandas as pd

from winnow.errors import SourceError


def require_columns(frame: pd.DataFrame, source: str, **roles: str | None) -> None:
    """Fail with the list of available columns when a named column is missing."""
    for role, column in roles.items():
        if column is not None and column not in frame.columns:
            raise SourceError(
                f"{source} has no column {column!r} (given as {role.replace('_', '-')}); "
                f"its columns are: {', '.join(map(str, frame.columns))}"
            )


def id_values(frame: pd.DataFrame, id_col: str | None) -> list[str]:
    """Item ids: the ``id_col`` values as strings, else the 0-based row number."""
    if id_col is None:
        return [str(i) for i in range(len(frame))]
    values = frame[id_col]
    if values.isna().any():
        row = int(values.isna().to_numpy().nonzero()[0][0])
        raise SourceError(
            f"id column {id_col!r} is empty in row {row} (0-based, header excluded; in CSV files NA, null, None and nan "
            "also read as empty); every item needs an id."
        )
    ids = values.astype(str)
    dupes = ids[ids.duplicated()].unique()[:5]
    if len(dupes):
        raise SourceError(
            f"id column {id_col!r} has duplicate values (e.g. {', '.join(dupes)}); item ids must be "
            "unique. Pick another --id-col, or leave it out to use row numbers."
        )
    return ids.tolist()


def label_values(frame: pd.DataFrame, label_col: str | None) -> list[str | None]:
    """Labels as strings (``None`` where missing or when there is no label column)."""
    if label_col is None:
        return [None] * len(frame)
    return [None if pd.isna(v) else str(v) for v in frame[label_col]]

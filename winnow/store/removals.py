"""Filter runs and their removal manifests in DuckDB (the ``removals`` table, migration
``0003_filter_removals``). A filter run is a row of ``runs`` with modality ``text``, so
``winnow runs`` lists it next to audits; its counts hold the documents read and the removals per
stage.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from winnow.store import Store

REMOVAL_COLUMNS = ("run_id", "doc_id", "shard", "line", "stage", "reason", "related_doc_id", "detail")


def register_filter_run(store: Store, run_id: str, *, dataset: str, source: str, config: dict[str, Any]) -> None:
    """Add a ``running`` row for a filter run, or set an existing one (a resumed run) back to running."""
    now = datetime.now(UTC).replace(tzinfo=None)
    with store.transaction() as con:
        con.execute(
            "INSERT INTO runs (run_id, dataset, source, modality, config, started, status) VALUES (?, ?, ?, 'text', ?, ?, 'running') "
            "ON CONFLICT (run_id) DO UPDATE SET status = 'running', error = NULL",
            [run_id, dataset, source, json.dumps(config, sort_keys=True, default=str), now],
        )


def save_removals(store: Store, run_id: str, manifest: Path) -> int:
    """Replace a run's removals with the rows of the manifest Parquet file, in one transaction
    (so loading it again after an interruption neither loses nor doubles a row); return the count."""
    with store.transaction() as con:
        con.execute("DELETE FROM removals WHERE run_id = ?", [run_id])
        con.execute(
            f"INSERT INTO removals ({', '.join(REMOVAL_COLUMNS)}) SELECT {', '.join(REMOVAL_COLUMNS)} FROM read_parquet(?) WHERE run_id = ?",
            [str(manifest), run_id],
        )
        return int(con.execute("SELECT count(*) FROM removals WHERE run_id = ?", [run_id]).fetchall()[0][0])


def removals(store: Store, run_id: str, stage: str | None = None) -> pd.DataFrame:
    """A run's removals (optionally of one stage), in shard and line order."""
    sql = f"SELECT {', '.join(REMOVAL_COLUMNS)} FROM removals WHERE run_id = ?"
    params: list[Any] = [run_id]
    if stage is not None:
        sql += " AND stage = ?"
        params.append(stage)
    with store.connect(read_only=True) as con:
        return con.execute(sql + " ORDER BY shard, line", params).df()


def removal_counts(store: Store, run_id: str) -> dict[str, int]:
    """Removed documents per stage for a run."""
    with store.connect(read_only=True) as con:
        rows = con.execute("SELECT stage, count(*) FROM removals WHERE run_id = ? GROUP BY stage ORDER BY stage", [run_id]).fetchall()
    return {stage: int(n) for stage, n in rows}

"""The removal manifest: one row per removed document, saying which stage removed it and why.

Columns (:data:`COLUMNS`): ``run_id, doc_id, shard, line, stage, reason, related_doc_id, detail``.
``stage`` is a filter stage (``exact``, ``minhash``, ``semantic``, ``quality``, ``anomaly``) or
``corrupt`` for a line that could not be read as a document; ``related_doc_id`` is the kept
document a duplicate was matched to; ``detail`` is JSON evidence (similarity, threshold, fired
rules…). Each stage writes one part file per shard (written whole or not at all); the run's parts
are combined into ``<out>/removals/<run_id>.parquet`` and loaded into DuckDB when the run ends.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = ("run_id", "doc_id", "shard", "line", "stage", "reason", "related_doc_id", "detail")
SCHEMA = pa.schema([
    ("run_id", pa.string()), ("doc_id", pa.string()), ("shard", pa.string()), ("line", pa.int64()), ("stage", pa.string()),
    ("reason", pa.string()), ("related_doc_id", pa.string()), ("detail", pa.string()),
])


@dataclass(frozen=True)
class Removal:
    """One removed document of a shard (the shard and run are added when the part is written)."""

    line: int
    doc_id: str
    stage: str
    reason: str
    related_doc_id: str | None = None
    detail: dict[str, Any] | None = None


def write_part(path: Path, run_id: str, shard_key: str, removals: list[Removal]) -> None:
    """Write one shard's removals for one stage, atomically (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "run_id": [run_id] * len(removals),
        "doc_id": [r.doc_id for r in removals],
        "shard": [shard_key] * len(removals),
        "line": [r.line for r in removals],
        "stage": [r.stage for r in removals],
        "reason": [r.reason for r in removals],
        "related_doc_id": [r.related_doc_id for r in removals],
        "detail": [json.dumps(r.detail or {}, sort_keys=True, default=float) for r in removals],
    }, schema=SCHEMA)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial)
    os.replace(partial, path)


def combine_parts(paths: list[Path], out: Path) -> dict[str, int]:
    """Write the rows of several part files to ``out`` (temporary name, then rename), one part at
    a time (the manifest of a large run is never whole in memory); return the rows per stage."""
    import pyarrow.compute as pc

    counts: dict[str, int] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with pq.ParquetWriter(partial, SCHEMA) as writer:
        for path in paths:
            table = pq.read_table(path, schema=SCHEMA)
            writer.write_table(table)
            for item in pc.value_counts(table.column("stage")).to_pylist():
                counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    os.replace(partial, out)
    return counts


def removed_lines(paths: list[Path]) -> set[int]:
    """Lines removed in the given parts of one shard."""
    lines: set[int] = set()
    for path in paths:
        lines.update(pq.read_table(path, columns=["line"]).column("line").to_pylist())
    return lines

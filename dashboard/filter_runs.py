"""What the dashboard shows of a ``winnow filter`` run: its stages in pipeline order, what each
removes, a removal's evidence in words, and a removed document read back from its shard.

Documents are read only from the shards the run's input glob matches (a shard is looked up by
its key in that list, never opened by a path from the database), as thumbnails are served only
from inside an audit's source folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from winnow.errors import WinnowError
from winnow.filtering.shards import Shard, discover_shards, read_documents

STAGE_TEXT = {
    "corrupt": "unreadable lines",
    "exact": "exact copies",
    "minhash": "near-copies (MinHash)",
    "semantic": "paraphrases (embeddings)",
    "quality": "low-quality text",
    "anomaly": "unlike the reference set",
}
MAX_SCAN = 200_000
"""Documents read at most while looking for a kept document by its id."""


def stage_order(run: dict[str, Any], removed: dict[str, int]) -> list[str]:
    """``corrupt`` (always on), the configured stages in the order they ran, then any other stage
    that removed something."""
    configured = ["corrupt", *((run.get("config") or {}).get("stages") or [])]
    return list(dict.fromkeys([*configured, *sorted(removed)]))


def describe_detail(detail: Any) -> str:
    """A removal's evidence (its ``detail`` JSON) in a few words: ``jaccard 0.742 · threshold 0.5``;
    an error message is left out (the reason says it)."""
    try:
        values = json.loads(detail) if isinstance(detail, str) else (detail or {})
    except ValueError:
        return str(detail)
    if not isinstance(values, dict):
        return str(values)
    parts = []
    for key, value in values.items():
        if key == "error":
            continue
        if isinstance(value, float):
            value = f"{value:.3g}"
        elif isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value))
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
        parts.append(f"{key.replace('_', ' ')} {value}")
    return " · ".join(parts)


@dataclass(frozen=True)
class Found:
    """A document read back from the corpus: where it is, and its text (``None`` with ``error``
    when the line is unreadable)."""

    shard: str
    line: int
    doc_id: str
    text: str | None
    error: str | None


def run_shards(source: str) -> dict[str, Shard]:
    """The shards of a filter run's input glob by key (empty when none are there any more)."""
    try:
        return {shard.key: shard for shard in discover_shards(source)}
    except WinnowError:
        return {}


def read_line(run: dict[str, Any], shard_key: str, line: int) -> Found | None:
    """The document at ``line`` of the run's shard ``shard_key``, or ``None`` when that shard is
    not among the run's inputs (any more) or has fewer lines."""
    shard = run_shards(run["source"]).get(shard_key)
    if shard is None:
        return None
    config = run.get("config") or {}
    for document in read_documents(shard, config.get("text_key") or "text", config.get("id_key")):
        if document.line == line:
            return Found(shard_key, line, document.doc_id, document.text, document.error)
        if document.line > line:
            break
    return None


def find_document(run: dict[str, Any], doc_id: str, limit: int = MAX_SCAN) -> Found | None:
    """The document ``doc_id`` among the run's shards: looked up directly when ids are
    ``<shard>:<line>`` (no ``--id-key``), else searched in corpus order over at most ``limit``
    documents. ``None`` when it is not there (an earlier filter run into the same ``--out`` kept it)."""
    config = run.get("config") or {}
    shards = run_shards(run["source"])
    if not config.get("id_key"):
        key, _, line = doc_id.rpartition(":")
        return read_line(run, key, int(line)) if key in shards and line.isdigit() else None
    read = 0
    for shard in shards.values():
        for document in read_documents(shard, config.get("text_key") or "text", config["id_key"]):
            if document.doc_id == doc_id:
                return Found(shard.key, document.line, document.doc_id, document.text, document.error)
            read += 1
            if read >= limit:
                return None
    return None

"""What each stage needs to know about a document, measured once per shard and kept on disk.

:func:`measure_shard` streams a shard in batches and writes one Parquet file of per-document
features: line, doc id, read error, the exact-dedup key, the MinHash signature and the text
quality properties, each only when its stage is on. :func:`embed_shard` embeds the documents still
kept when an embedding stage comes up (MiniLM by default) and writes them next to it. Both files
are written whole or not at all, and their presence is the shard's marker for the pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from winnow.errors import ConfigError
from winnow.filtering import text as textops
from winnow.filtering.config import FilterConfig
from winnow.filtering.shards import Document, Shard, read_documents


@dataclass
class Features:
    """A shard's features as arrays, row-aligned; ``error`` is None for readable documents."""

    lines: np.ndarray
    doc_ids: list[str]
    errors: list[str | None]
    exact: np.ndarray | None
    signatures: np.ndarray | None
    shingles: np.ndarray | None
    quality: pa.Table | None

    @property
    def readable(self) -> np.ndarray:
        return np.array([e is None for e in self.errors], dtype=bool)


def _batches(documents: Iterator[Document], size: int) -> Iterator[list[Document]]:
    while batch := list(islice(documents, size)):
        yield batch


def measure_shard(shard: Shard, config: FilterConfig, path: Path) -> list[Document]:
    """Measure every document of ``shard`` for the enabled stages and write the features to
    ``path``; return the documents that could not be read."""
    stages = set(config.stages)
    if "quality" in stages:
        from checks.text_quality import measure_text
    columns: dict[str, list] = {"line": [], "doc_id": [], "error": []}
    exact: list[np.ndarray] = []
    signatures: list[np.ndarray] = []
    shingles: list[np.ndarray] = []
    quality: list[dict] = []
    m = config.minhash
    missing_key = 0
    unreadable: list[Document] = []
    for batch in _batches(read_documents(shard, config.text_key, config.id_key), config.batch_size):
        unreadable.extend(d for d in batch if d.error is not None)
        columns["line"].extend(d.line for d in batch)
        columns["doc_id"].extend(d.doc_id for d in batch)
        columns["error"].extend(d.error for d in batch)
        missing_key += sum(1 for d in batch if d.error == f"no {config.text_key!r} key")
        texts = [d.text or "" for d in batch]
        encoded = textops.encode(textops.dedup_forms(texts)) if stages & {"exact", "minhash"} else []
        if "exact" in stages:
            exact.append(textops.exact_keys(encoded))
        if "minhash" in stages:
            hashes, counts = textops.shingles_of_words(*textops.word_hashes(encoded), m.shingle_size)
            signatures.append(textops.signatures(hashes, counts, m.num_perm, m.seed))
            shingles.append(counts)
        if "quality" in stages:
            quality.extend(measure_text(textops.normalize_document(t) if config.exact.normalize else t) for t in texts)
    total = len(columns["line"])
    if total and missing_key == total:
        raise ConfigError(f"no document in {shard.path} has a {config.text_key!r} key; pass --text-key with the field that holds the text.")
    table = pa.table({
        "line": pa.array(columns["line"], pa.int64()),
        "doc_id": pa.array(columns["doc_id"], pa.string()),
        "error": pa.array(columns["error"], pa.string()),
    })
    if exact:
        table = table.append_column("exact", pa.array(np.concatenate(exact), pa.uint64()))
    if signatures:
        flat = np.concatenate(signatures)
        table = table.append_column("signature", _signature_column(flat))
        table = table.append_column("shingles", pa.array(np.concatenate(shingles), pa.int64()))
    if quality:
        for name in quality[0]:
            table = table.append_column(f"q_{name}", pa.array([q[name] for q in quality]))
    _write_atomic(table, path)
    return unreadable


def _signature_column(signatures: np.ndarray) -> pa.Array:
    """Signatures as one fixed-size binary value each (``num_perm`` little-endian uint32): Parquet
    writes and reads these about 8 and 3 times faster than a list column of integers."""
    signatures = np.ascontiguousarray(signatures, np.dtype("<u4"))
    width = signatures.shape[1] * 4
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(signatures), [None, pa.py_buffer(signatures.tobytes())])


def _signatures(column: pa.ChunkedArray, num_perm: int) -> np.ndarray:
    """The ``(rows, num_perm)`` uint32 view of a column written by :func:`_signature_column`."""
    array = column.combine_chunks()
    start = array.offset * num_perm * 4
    return np.frombuffer(array.buffers()[1], np.dtype("<u4"), count=len(array) * num_perm, offset=start).reshape(len(array), num_perm)


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    # signatures neither compress nor repeat: no compression, no dictionary (that halves the write)
    pq.write_table(table, partial, compression="none", use_dictionary=[c for c in table.column_names if c != "signature"])
    os.replace(partial, path)


FEATURE_GROUPS = {"ids": (), "exact": ("exact",), "minhash": ("signature", "shingles"), "quality": ()}
"""Columns each reader needs besides ``line, doc_id, error`` (quality also reads its ``q_*`` columns)."""


def load_features(path: Path, num_perm: int, stage: str | None = None) -> Features:
    """A shard's features; with ``stage`` (a key of :data:`FEATURE_GROUPS`), only the columns it
    reads (a shard's signatures are most of the file, and only MinHash dedup needs them)."""
    columns = None
    if stage in FEATURE_GROUPS:
        stored = pq.read_schema(path).names
        wanted = {"line", "doc_id", "error", *FEATURE_GROUPS[stage]}
        columns = [n for n in stored if n in wanted or (stage == "quality" and n.startswith("q_"))]
    table = pq.read_table(path, columns=columns)
    names = table.column_names
    signatures = None
    if "signature" in names:
        signatures = _signatures(table.column("signature"), num_perm)
    quality_columns = [n for n in names if n.startswith("q_")]
    quality = table.select(quality_columns).rename_columns([n[2:] for n in quality_columns]) if quality_columns else None
    return Features(
        lines=table.column("line").to_numpy(),
        doc_ids=table.column("doc_id").to_pylist(),
        errors=table.column("error").to_pylist(),
        exact=table.column("exact").to_numpy() if "exact" in names else None,
        signatures=signatures,
        shingles=table.column("shingles").to_numpy() if "shingles" in names else None,
        quality=quality,
    )


def embed_shard(shard: Shard, config: FilterConfig, lines: set[int], path: Path, model: str, device: str | None,
                batch_size: int) -> dict[str, int]:
    """Embed the documents of ``shard`` at ``lines`` (L2-normalised float32) and save
    ``{lines, vectors}`` to ``path`` (.npz)."""
    from winnow.embed import get_embedder

    embedder = get_embedder(model, "text", device)
    kept_lines: list[int] = []
    chunks: list[np.ndarray] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            chunks.append(embedder.embed([embedder.prepare(t) for t in pending]))
            pending.clear()

    for document in read_documents(shard, config.text_key, config.id_key):
        if document.line in lines and document.text is not None:
            kept_lines.append(document.line)
            pending.append(textops.normalize_document(document.text) if config.exact.normalize else document.text)
            if len(pending) >= batch_size:
                flush()
    flush()
    vectors = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, embedder.dim), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, lines=np.asarray(kept_lines, np.int64), vectors=vectors)
    os.replace(partial, path)
    return {"embedded": len(kept_lines)}


def load_embeddings(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as data:
        return data["lines"], data["vectors"]

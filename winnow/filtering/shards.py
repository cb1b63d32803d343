"""Corpus shards: finding them, streaming their documents, and writing the kept ones back in the
same format (``.jsonl``, ``.jsonl.gz``, ``.parquet``).

A document is identified by its ``--id-key`` value when given, else by ``<shard key>:<line>``
(1-based line of a JSONL shard, 1-based row of a Parquet shard). A line that is not a JSON object,
a missing or non-string text, or an empty text is not an error of the run: it comes out as a
:class:`Document` with ``error`` set, which becomes a ``corrupt`` removal.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from isal import igzip, isal_zlib

from winnow.errors import ConfigError, SourceError

FORMATS = (".jsonl.gz", ".jsonl", ".parquet")
GZIP_LEVEL = 1
"""Output compression for .jsonl.gz shards, with ISA-L's gzip (``isal``; levels 0-3): level 1
compresses this corpus about 5× faster than zlib's level 1, to slightly smaller files; compressing
was the largest cost of the write pass. Reading uses ISA-L too (about 2× zlib)."""
WRITE_BUFFER = 1 << 20
"""Bytes collected before each write: one compress call per megabyte, not per line."""


@dataclass(frozen=True)
class Shard:
    """One input file: ``key`` is its path relative to the common folder of all shards (also its
    name under ``--out``), ``ordinal`` its position in the sorted list."""

    path: str
    key: str
    ordinal: int

    @property
    def format(self) -> str:
        return shard_format(self.path)


class Document(NamedTuple):
    """One line or row: ``line`` is 1-based; ``text`` is None when ``error`` says why it is unusable.
    (A named tuple: a shard makes one per line, and a frozen dataclass cost more than parsing the line.)"""

    line: int
    doc_id: str
    text: str | None
    error: str | None = None


def shard_format(path: str) -> str:
    for suffix in FORMATS:
        if path.endswith(suffix):
            return suffix
    raise SourceError(f"{path} is not a .jsonl, .jsonl.gz or .parquet file; name shards by their format.")


def discover_shards(pattern: str) -> list[Shard]:
    """The files matching ``pattern`` (a glob, ``**`` allowed, or one file), sorted by path."""
    paths = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p))
    if not paths:
        raise SourceError(f"no shards match {pattern!r}; quote the glob (e.g. 'shards/*.jsonl.gz') and check the folder.")
    unsupported = [p for p in paths if not p.endswith(FORMATS)]
    if unsupported:
        raise SourceError(f"{unsupported[0]} is not a .jsonl, .jsonl.gz or .parquet file; narrow the glob to the corpus shards.")
    absolute = [str(Path(p).resolve()) for p in paths]
    root = os.path.commonpath(absolute) if len(absolute) > 1 else os.path.dirname(absolute[0])
    if root in absolute:  # one file: its folder is the root
        root = os.path.dirname(root)
    return [Shard(path=p, key=os.path.relpath(p, root), ordinal=i) for i, p in enumerate(absolute)]


def read_documents(shard: Shard, text_key: str, id_key: str | None) -> Iterator[Document]:
    """Every document of a shard in order, streaming (one line or one Parquet batch at a time)."""
    if shard.format == ".parquet":
        yield from _read_parquet(shard, text_key, id_key)
    else:
        yield from _read_jsonl(shard, text_key, id_key)


READ_BLOCK = 1 << 20
"""Bytes read (and decompressed) at a time; lines are split out of each block."""


def jsonl_lines(path: str) -> Iterator[bytes]:
    """The lines of a ``.jsonl`` or ``.jsonl.gz`` file without their ``\n``, read a block at a
    time (far cheaper than a gzip readline per line). Every complete line of a damaged gzip stream
    is yielded before the error (``EOFError`` for a truncated one, ``OSError`` for bad data)."""
    rest = b""
    for block in _gzip_blocks(path) if path.endswith(".gz") else _plain_blocks(path):
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def _plain_blocks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while block := handle.read(READ_BLOCK):
            yield block


def _gzip_blocks(path: str) -> Iterator[bytes]:
    """Decompressed blocks of a gzip file of one or more members."""
    decompressor = None
    with open(path, "rb") as handle:
        while compressed := handle.read(READ_BLOCK):
            while compressed:
                if decompressor is None or decompressor.eof:
                    decompressor = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
                try:
                    yield decompressor.decompress(compressed)
                except isal_zlib.error as exc:
                    raise OSError(f"not a valid gzip stream ({exc})") from exc
                compressed = decompressor.unused_data if decompressor.eof else b""
    if decompressor is not None and not decompressor.eof:
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")


def _read_jsonl(shard: Shard, text_key: str, id_key: str | None) -> Iterator[Document]:
    line = 0
    try:
        for line, raw in enumerate(jsonl_lines(shard.path), start=1):
            yield _document(shard, line, raw, text_key, id_key)
    except (OSError, EOFError) as exc:  # a truncated gzip stream: what was read is kept
        yield Document(line=-1, doc_id=f"{shard.key}:end", text=None, error=f"shard could not be read to the end: {exc}")


def _document(shard: Shard, line: int, raw: bytes, text_key: str, id_key: str | None) -> Document:
    fallback = f"{shard.key}:{line}"
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if not raw.strip():
            return Document(line, fallback, None, "empty line")
        return Document(line, fallback, None, f"not valid JSON ({exc})")
    if not isinstance(record, dict):
        return Document(line, fallback, None, f"a JSON {type(record).__name__}, not an object")
    return _checked(line, _doc_id(record.get(id_key) if id_key else None, fallback), record.get(text_key, _MISSING), text_key)


_MISSING = object()


def _doc_id(value: Any, fallback: str) -> str:
    return fallback if value is None else str(value)


def _checked(line: int, doc_id: str, text: Any, text_key: str) -> Document:
    if text is _MISSING:
        return Document(line, doc_id, None, f"no {text_key!r} key")
    if not isinstance(text, str):
        return Document(line, doc_id, None, f"{text_key!r} is {type(text).__name__}, not a string")
    if not text.strip():
        return Document(line, doc_id, None, "text is empty (only whitespace)")
    return Document(line, doc_id, text)


def _read_parquet(shard: Shard, text_key: str, id_key: str | None) -> Iterator[Document]:
    try:
        parquet = pq.ParquetFile(shard.path)
    except (OSError, pa.ArrowInvalid) as exc:
        yield Document(line=-1, doc_id=f"{shard.key}:end", text=None, error=f"not a readable Parquet file: {exc}")
        return
    names = parquet.schema_arrow.names
    if text_key not in names:
        raise ConfigError(f"{shard.path} has no column {text_key!r} (columns: {names}); pass --text-key.")
    if id_key and id_key not in names:
        raise ConfigError(f"{shard.path} has no column {id_key!r} (columns: {names}); pass --id-key or leave it out.")
    line = 0
    columns = [text_key] + ([id_key] if id_key else [])
    for batch in parquet.iter_batches(batch_size=4096, columns=columns):
        texts = batch.column(0).to_pylist()
        ids = batch.column(1).to_pylist() if id_key else [None] * len(texts)
        for text, doc_id in zip(texts, ids):
            line += 1
            value = _MISSING if text is None else text
            document = _checked(line, _doc_id(doc_id, f"{shard.key}:{line}"), value, text_key)
            if text is None:
                document = Document(line, document.doc_id, None, f"{text_key!r} is null")
            yield document


def write_kept(shard: Shard, out_path: Path, drop_lines: set[int], text_key: str,
               transform: Callable[[str], str] | None) -> int:
    """Write the shard's documents whose line is not in ``drop_lines`` to ``out_path`` in the
    shard's format, with ``transform`` (normalisation) applied to the text and every other field as
    it was. Written to a temporary name and renamed, so a killed write leaves no half file.
    Returns the number of documents written."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    if shard.format == ".parquet":
        written = _write_parquet(shard, partial, drop_lines, text_key, transform)
    else:
        written = _write_jsonl(shard, partial, drop_lines, text_key, transform)
    os.replace(partial, out_path)
    return written


def _open_output(path: Path, compressed: bool):
    return igzip.open(path, "wb", compresslevel=GZIP_LEVEL) if compressed else open(path, "wb")


def _write_jsonl(shard: Shard, partial: Path, drop_lines: set[int], text_key: str, transform: Callable[[str], str] | None) -> int:
    written = 0
    buffer: list[bytes] = []
    size = 0
    with _open_output(partial, shard.format == ".jsonl.gz") as sink:
        try:
            for line, raw in enumerate(jsonl_lines(shard.path), start=1):
                if line in drop_lines:
                    continue
                if transform is not None:
                    record = orjson.loads(raw)
                    text = record[text_key]
                    new_text = transform(text)
                    if new_text != text:
                        record[text_key] = new_text
                        raw = orjson.dumps(record)
                buffer.append(raw)
                size += len(raw)
                written += 1
                if size >= WRITE_BUFFER:
                    sink.write(b"\n".join(buffer) + b"\n")
                    buffer, size = [], 0
        except (OSError, EOFError):
            pass  # a truncated stream: the readable part is written, the rest was recorded as corrupt
        if buffer:
            sink.write(b"\n".join(buffer) + b"\n")
    return written


def _write_parquet(shard: Shard, partial: Path, drop_lines: set[int], text_key: str, transform: Callable[[str], str] | None) -> int:
    parquet = pq.ParquetFile(shard.path)
    dropped = np.fromiter(drop_lines, np.int64, len(drop_lines))
    written = 0
    first = 1
    with pq.ParquetWriter(partial, parquet.schema_arrow) as writer:
        for batch in parquet.iter_batches(batch_size=4096):
            lines = np.arange(first, first + batch.num_rows)
            first += batch.num_rows
            kept = batch.filter(pa.array(~np.isin(lines, dropped)))
            if transform is not None and kept.num_rows:
                index = kept.schema.get_field_index(text_key)
                column = [transform(t) for t in kept.column(index).to_pylist()]
                arrays = list(kept.columns)
                arrays[index] = pa.array(column, kept.schema.field(index).type)
                kept = pa.RecordBatch.from_arrays(arrays, schema=kept.schema)
            writer.write_batch(kept)
            written += kept.num_rows
    return written

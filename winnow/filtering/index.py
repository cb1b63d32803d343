"""The persisted dedup index: what exact and MinHash dedup remember across shards and across runs.

An index maps keys to the documents that were kept ("owners", numbered in corpus order): one
table for exact dedup (the 64-bit text hash), one table per LSH band for MinHash dedup (a 32-bit
band key). It lives under ``<out>/.winnow-state/index/<stage>/``:

* ``deltas/<seq>-<run>-s<shard>/`` — the truth, append-only: one folder per (run, shard) with the
  keys, doc ids and (MinHash) signatures of the documents that shard kept. A delta is written to a
  temporary folder and renamed, so it is either whole or absent, and its presence is the shard's
  completion marker for that stage: a killed run re-run with the same arguments skips shards whose
  delta exists and redoes the rest, and a later run dedups against every delta.
* ``segments/<first>-<last>/`` — a cache of the same keys, sorted for lookups: per table the keys
  of a run of consecutive deltas in sorted order with their owners, and the delta names it covers.
  A segment is used only while its deltas are exactly a run of the deltas that count (it is
  rebuilt otherwise), so the cache can always be deleted.

Memory stays bounded as the corpus grows (an LSM tree): newly committed deltas are held in memory
(sorted per delta) until they reach :data:`BUFFER_DOCS` documents, then written out as one
segment; whenever :data:`FANOUT` segments of the same size class follow each other they are merged
into one, table by table and :data:`MERGE_CHUNK` keys at a time. Lookups binary-search each segment through a read-only memory map and
hand its pages back to the kernel after each table, so neither the keys nor the signatures and doc
ids (read with ``pread`` for candidates only) accumulate in the process.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from winnow.errors import ConfigError

BUFFER_DOCS = 50_000
"""Kept documents held in memory (sorted per delta) before they are written out as a segment: at
25 bands, about 10 MiB of keys and owners."""
FANOUT = 4
"""Consecutive segments of one size class merged into one: lookups check at most about
``FANOUT × log_FANOUT(documents / BUFFER_DOCS)`` segments, and each key is rewritten that many times."""
MERGE_CHUNK = 1 << 16
"""Keys per segment and table taken at a time when segments are merged: a merge holds about
``FANOUT × MERGE_CHUNK`` keys of one table in memory (a few MiB), however large the segments."""


@dataclass
class _Delta:
    name: str
    folder: Path
    size: int


@dataclass
class _Run:
    """Sorted keys of consecutive owners ``base .. base + size``: a segment on disk, or one delta
    in the in-memory buffer (``keys``/``owners`` set, ``folder`` None)."""

    base: int
    size: int
    deltas: list[str]
    folder: Path | None = None
    keys: np.ndarray | None = None  # (tables, size), each row sorted
    owners: np.ndarray | None = None  # (tables, size) uint32, relative to base



class DedupIndex:
    """Sorted key tables (``tables`` columns of ``key_dtype``) with owners, persisted as deltas
    under ``root``. ``params`` describe how keys were made; opening an index made with other
    params is a :class:`ConfigError` (the keys would not be comparable). ``runs``, when given,
    are the runs whose deltas count (completed runs and the current one): the deltas of a run that
    was abandoned unfinished are left out, so its documents remove nothing."""

    def __init__(self, root: Path, tables: int, key_dtype: type, params: dict[str, Any], runs: set[str] | None = None,
                 buffer_docs: int = BUFFER_DOCS, merge_chunk: int = MERGE_CHUNK) -> None:
        self.root = Path(root)
        self.buffer_docs = buffer_docs
        self.merge_chunk = merge_chunk
        self.runs = runs
        self.tables = tables
        self.key_dtype = np.dtype(key_dtype)
        self.params = params
        self._deltas: list[_Delta] = []
        self._labels: set[str] = set()
        self._starts: list[int] = [0]  # owner number where each delta starts, plus the total
        self._offsets_cache: np.ndarray | None = None
        self._segments: list[_Run] = []
        self._buffer: list[_Run] = []
        self._layouts: dict[Path, tuple[int, np.dtype, tuple[int, ...]]] = {}
        self._check_params()
        self._load()

    # -- persistence -----------------------------------------------------------------------------

    @property
    def _deltas_dir(self) -> Path:
        return self.root / "deltas"

    @property
    def _segments_dir(self) -> Path:
        return self.root / "segments"

    def _check_params(self) -> None:
        path = self.root / "params.json"
        self._deltas_dir.mkdir(parents=True, exist_ok=True)
        if path.exists():
            stored = json.loads(path.read_text())
            if stored != self.params:
                raise ConfigError(
                    f"the dedup index in {self.root} was built with {stored}, not {self.params}; keep the "
                    "options it was built with, or filter into a new --out to start a new index."
                )
        else:
            path.write_text(json.dumps(self.params, sort_keys=True))

    def _load(self) -> None:
        names = sorted(p.name for p in self._deltas_dir.iterdir() if p.is_dir() and not p.name.endswith(".partial"))
        self._next = int(names[-1].split("-", 1)[0]) + 1 if names else 0
        for name in names:
            if self.runs is None or delta_run(name) in self.runs:
                folder = self._deltas_dir / name
                self._append_delta(_Delta(name, folder, self._layout(folder / "ids.npy")[2][0]))
        cached = self._cached_segments()
        position = 0
        while position < len(self._deltas):
            delta = self._deltas[position]
            segment = cached.pop(delta.name, None)
            if segment is not None and [d.name for d in self._deltas[position : position + len(segment.deltas)]] == segment.deltas:
                self._flush(merge=False)  # loose deltas before this segment become a segment first: runs stay in order
                segment.base = self._starts[position]
                self._segments.append(segment)
                position += len(segment.deltas)
                continue
            if segment is not None:
                shutil.rmtree(segment.folder, ignore_errors=True)
            keys = np.load(delta.folder / "keys.npy").reshape(delta.size, self.tables)
            self._buffer_delta(delta.name, keys, self._starts[position])
            position += 1
        for stale in cached.values():  # built from deltas that no longer count, or already covered
            shutil.rmtree(stale.folder, ignore_errors=True)

    def _cached_segments(self) -> dict[str, _Run]:
        """Segments on disk by their first delta's name (half-written ones are removed)."""
        found: dict[str, _Run] = {}
        if not self._segments_dir.exists():
            return found
        for folder in sorted(self._segments_dir.iterdir()):
            manifest = folder / "deltas.json"
            if folder.name.endswith(".partial") or not manifest.exists():
                shutil.rmtree(folder, ignore_errors=True)
                continue
            deltas = json.loads(manifest.read_text())
            run = _Run(0, self._layout(folder / "keys.npy")[2][1], deltas, folder=folder)
            if deltas[0] in found:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                found[deltas[0]] = run
        return found

    def _append_delta(self, delta: _Delta) -> None:
        self._deltas.append(delta)
        self._labels.add(delta.name.split("-", 1)[1])
        self._starts.append(self._starts[-1] + delta.size)
        self._offsets_cache = None

    @property
    def _offsets(self) -> np.ndarray:
        if self._offsets_cache is None:
            self._offsets_cache = np.asarray(self._starts, np.int64)
        return self._offsets_cache

    def has(self, label: str) -> bool:
        """Whether a delta named ``label`` (a run and shard) is committed."""
        return label in self._labels

    def commit(self, label: str, keys: np.ndarray, ids: list[str], signatures: np.ndarray | None = None) -> None:
        """Persist the keys of newly kept documents as one delta, then add them to the tables."""
        keys = np.asarray(keys, self.key_dtype).reshape(len(ids), self.tables)
        name = f"{self._next:08d}-{label}"
        self._next += 1
        folder = self._deltas_dir / name
        partial = self._deltas_dir / f"{name}.partial"
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir()
        np.save(partial / "keys.npy", keys)
        np.save(partial / "ids.npy", np.asarray(ids, dtype=str) if ids else np.zeros(0, "U1"))
        if signatures is not None:
            np.save(partial / "signatures.npy", np.ascontiguousarray(signatures))
        _fsync_dir(partial)
        os.replace(partial, folder)
        base = self.size
        self._append_delta(_Delta(name, folder, len(ids)))
        self._buffer_delta(name, keys, base)

    # -- the LSM tree --------------------------------------------------------------------------

    def _buffer_delta(self, name: str, keys: np.ndarray, base: int) -> None:
        """Hold one delta's keys in memory, sorted per table; write the buffer out when it is full."""
        sorted_keys, owners = _sort_with_owners(np.ascontiguousarray(keys.T), np.arange(len(keys), dtype=np.uint32))
        self._buffer.append(_Run(base, len(keys), [name], keys=sorted_keys, owners=owners))
        if sum(run.size for run in self._buffer) >= self.buffer_docs:
            self._flush()

    def _flush(self, merge: bool = True) -> None:
        """Write the buffer out as one segment, then merge trailing segments of one size class."""
        if self._buffer:
            self._segments.append(self._write_segment(self._buffer))
            self._buffer = []
        while merge and len(self._segments) >= FANOUT and len({self._level(s) for s in self._segments[-FANOUT:]}) == 1:
            merged = self._write_segment(self._segments[-FANOUT:])
            for old in self._segments[-FANOUT:]:
                shutil.rmtree(old.folder, ignore_errors=True)
            self._segments[-FANOUT:] = [merged]

    def _level(self, segment: _Run) -> int:
        """A segment's size class: 0 below ``FANOUT × buffer_docs`` documents, then one more per
        factor of ``FANOUT``."""
        level, bound = 0, self.buffer_docs * FANOUT
        while segment.size >= bound:
            level, bound = level + 1, bound * FANOUT
        return level

    def _write_segment(self, runs: list[_Run]) -> _Run:
        """Merge consecutive runs (in memory or on disk) into one segment on disk, table by table
        and ``merge_chunk`` keys of each run at a time (a k-way merge between pivot keys taken every
        ``merge_chunk`` keys), so a merge holds a few chunks in memory however large the segments."""
        base, size = runs[0].base, sum(run.size for run in runs)
        deltas = [name for run in runs for name in run.deltas]
        folder = self._segments_dir / f"{deltas[0].split('-', 1)[0]}-{deltas[-1].split('-', 1)[0]}"
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        keys_out = np.lib.format.open_memmap(partial / "keys.npy", "w+", self.key_dtype, (self.tables, size))
        owners_out = np.lib.format.open_memmap(partial / "owners.npy", "w+", np.uint32, (self.tables, size))
        maps = [self._open(run) for run in runs]
        shifts = [np.uint32(run.base - base) for run in runs]
        for table in range(self.tables):
            rows = [stored[table] for stored, _ in maps]
            pivots = np.unique(np.concatenate([row[self.merge_chunk :: self.merge_chunk] for row in rows]))
            starts = [0] * len(rows)
            written = 0
            for pivot in [*pivots.tolist(), None]:
                ends = [len(row) if pivot is None else int(np.searchsorted(row, pivot)) for row in rows]
                keys, owners = _sort_with_owners(
                    np.concatenate([row[s:e] for row, s, e in zip(rows, starts, ends)]),
                    np.concatenate([m[1][table][s:e] + shift for m, shift, s, e in zip(maps, shifts, starts, ends)]))
                keys_out[table, written : written + len(keys)] = keys
                owners_out[table, written : written + len(keys)] = owners
                written += len(keys)
                starts = ends
            _release(*[a for m in maps for a in m], keys_out, owners_out)
        keys_out.flush()
        owners_out.flush()
        del keys_out, owners_out, maps
        (partial / "deltas.json").write_text(json.dumps(deltas))
        _fsync_dir(partial)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
        return _Run(base, size, deltas, folder=folder)

    def _open(self, run: _Run) -> tuple[np.ndarray, np.ndarray]:
        if run.folder is None:
            return run.keys, run.owners
        return np.load(run.folder / "keys.npy", mmap_mode="r"), np.load(run.folder / "owners.npy", mmap_mode="r")

    # -- lookups -------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Documents held (owners)."""
        return self._starts[-1]

    def lookup(self, table: int, keys: np.ndarray) -> np.ndarray:
        """The earliest owner holding each key in ``table``, or -1."""
        return self.lookup_tables(np.asarray(keys).reshape(-1, 1), [table])[:, 0]

    def lookup_tables(self, keys: np.ndarray, tables: list[int] | None = None) -> np.ndarray:
        """The earliest owner holding ``keys[i, j]`` in table ``tables[j]`` (default: every table in
        order), or -1: ``(n, len(tables))`` int64."""
        tables = list(range(self.tables)) if tables is None else tables
        keys = np.asarray(keys, self.key_dtype)
        found = np.full(keys.shape, -1, np.int64)
        runs = self._segments + self._buffer
        maps = [self._open(run) for run in runs]
        for column, table in enumerate(tables):
            order = np.argsort(keys[:, column])  # sorted needles: each binary search starts where the last ended
            pending = np.arange(len(order))
            needles = keys[order, column]
            for run, (stored, owners) in zip(runs, maps):  # oldest first: its hit is the earliest owner
                if len(pending) == 0:
                    break
                row = stored[table]
                at = np.minimum(np.searchsorted(row, needles), max(len(row) - 1, 0))
                hit = row[at] == needles if len(row) else np.zeros(len(needles), bool)
                found[order[pending[hit]], column] = owners[table][at[hit]].astype(np.int64) + run.base
                pending, needles = pending[~hit], needles[~hit]
            _release(*[a for m in maps for a in m])
        return found

    def _locate(self, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        delta = np.searchsorted(self._offsets, owners, side="right") - 1
        return delta, owners - self._offsets[delta]

    def doc_ids(self, owners: np.ndarray) -> list[str]:
        """The doc ids of ``owners`` (read from the deltas: they are not kept in memory)."""
        return [str(value[()]) for value in self._rows("ids.npy", np.asarray(owners, np.int64))]

    def doc_id(self, owner: int) -> str:
        return self.doc_ids(np.array([owner]))[0]

    def signatures(self, owners: np.ndarray) -> np.ndarray:
        """The stored MinHash signatures of ``owners``, ``(len(owners), num_perm)`` uint32."""
        rows = self._rows("signatures.npy", np.asarray(owners, np.int64))
        return np.stack(rows) if rows else np.zeros((0, 0), np.uint32)

    def signature(self, owner: int) -> np.ndarray:
        return self.signatures(np.array([owner]))[0]

    def _rows(self, file: str, owners: np.ndarray) -> list[np.ndarray]:
        """Rows ``owners`` of one array file of the deltas, in order, read with ``pread`` (one open
        per delta; about 3 µs a row, and nothing of the file stays in the process's memory)."""
        deltas, rows = self._locate(owners)
        order = np.argsort(deltas, kind="stable")
        out: list[np.ndarray] = [None] * len(owners)  # type: ignore[list-item]
        for picked in np.split(order, np.flatnonzero(np.diff(deltas[order])) + 1) if len(order) else []:
            path = self._deltas[int(deltas[picked[0]])].folder / file
            if not path.exists():
                raise ValueError(f"this index keeps no {path.stem}")
            offset, dtype, shape = self._layout(path)
            row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
            with open(path, "rb") as handle:
                fd = handle.fileno()
                for i, row in zip(picked.tolist(), rows[picked].tolist()):
                    out[i] = np.frombuffer(os.pread(fd, row_bytes, offset + row * row_bytes), dtype).reshape(shape[1:])
        return out

    def _layout(self, path: Path) -> tuple[int, np.dtype, tuple[int, ...]]:
        """Header length, dtype and shape of a ``.npy`` file (cached: the files never change)."""
        if path not in self._layouts:
            with open(path, "rb") as handle:
                version = np.lib.format.read_magic(handle)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(handle)
                self._layouts[path] = (handle.tell(), dtype, shape)
        return self._layouts[path]


def _sort_with_owners(keys: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``keys`` sorted along the last axis, and ``owners`` (uint32, ascending among equal keys in the
    input) in the same order, equal keys keeping the earliest owner first. Keys of 32 bits or less
    are sorted together with their owner as one 64-bit number (numpy's SIMD sort, several times
    faster than a stable argsort); wider keys take the stable argsort."""
    if keys.dtype.itemsize <= 4:
        combined = np.sort((keys.astype(np.uint64) << np.uint64(32)) | owners.astype(np.uint64), axis=-1)
        return (combined >> np.uint64(32)).astype(keys.dtype), (combined & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    order = np.argsort(keys, axis=-1, kind="stable")
    return np.take_along_axis(keys, order, axis=-1), np.take_along_axis(np.broadcast_to(owners, keys.shape), order, axis=-1)


def _release(*arrays: np.ndarray) -> None:
    """Hand the pages of memory-mapped arrays back to the kernel (they stay in its page cache):
    the file-backed part of the process's memory does not grow with the index."""
    for array in arrays:
        mapped = getattr(array, "_mmap", None)
        if isinstance(mapped, mmap.mmap):
            mapped.madvise(mmap.MADV_DONTNEED)


def delta_run(name: str) -> str:
    """The run id in a delta's name (``<seq>-<run id>-s<shard>``)."""
    return name.split("-", 1)[1].rsplit("-s", 1)[0]


def _fsync_dir(folder: Path) -> None:
    """Flush a delta's files before the rename that commits it (a power cut must not commit half a delta)."""
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())

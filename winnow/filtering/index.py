"""The persisted dedup index: what exact and MinHash dedup remember across shards and across runs.

An index maps keys to the documents that were kept ("owners"): one table for exact dedup (the
64-bit text hash), one table per LSH band for MinHash dedup (a 32-bit band key). It lives under
``<out>/.winnow-state/index/<stage>/`` as append-only *deltas*, one per (run, shard): a folder
with the keys, doc ids and (MinHash) signatures of the documents that shard kept. A delta is
written to a temporary folder and renamed, so it is either whole or absent, and its presence is
the shard's completion marker for that stage: a killed run re-run with the same arguments skips
shards whose delta exists and redoes the rest, and a later run loads every delta and dedups
against all of them.

In memory each table is a sorted key array plus 32-bit owner numbers (8 bytes per document and band
for MinHash, 12 for the exact table); doc ids and signatures stay on disk, memory-mapped, and are
read only for candidates (the pages read show in the process's resident memory as file-backed
pages, which the kernel can drop).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from winnow.errors import ConfigError


@dataclass
class _Delta:
    name: str
    ids: np.ndarray
    signatures: np.ndarray | None


class DedupIndex:
    """Sorted key tables (``tables`` columns of ``key_dtype``) with owners, persisted as deltas
    under ``root``. ``params`` describe how keys were made; opening an index made with other
    params is a :class:`ConfigError` (the keys would not be comparable). ``runs``, when given,
    are the runs whose deltas count (completed runs and the current one): the deltas of a run that
    was abandoned unfinished are left out, so its documents remove nothing."""

    def __init__(self, root: Path, tables: int, key_dtype: type, params: dict[str, Any], runs: set[str] | None = None) -> None:
        self.root = Path(root)
        self.runs = runs
        self.tables = tables
        self.key_dtype = np.dtype(key_dtype)
        self.params = params
        self._keys = [np.zeros(0, self.key_dtype) for _ in range(tables)]
        self._owners = [np.zeros(0, np.uint32) for _ in range(tables)]
        self._deltas: list[_Delta] = []
        self._offsets = np.zeros(1, np.int64)  # owner number where each delta starts, plus the total
        self._check_params()
        self._load()

    # -- persistence -----------------------------------------------------------------------------

    @property
    def _deltas_dir(self) -> Path:
        return self.root / "deltas"

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
        keys: list[np.ndarray] = []
        for name in names:
            if self.runs is not None and delta_run(name) not in self.runs:
                continue
            folder = self._deltas_dir / name
            delta_keys = np.load(folder / "keys.npy")
            keys.append(delta_keys)
            self._append_delta(name, folder)
        if keys:
            self._merge(np.concatenate(keys), np.arange(self.size, dtype=np.uint32))

    def _append_delta(self, name: str, folder: Path) -> None:
        ids = np.load(folder / "ids.npy", mmap_mode="r")
        sig_path = folder / "signatures.npy"
        signatures = np.load(sig_path, mmap_mode="r") if sig_path.exists() else None
        self._deltas.append(_Delta(name, ids, signatures))
        self._offsets = np.append(self._offsets, self._offsets[-1] + len(ids))

    def has(self, label: str) -> bool:
        """Whether a delta named ``label`` (a run and shard) is committed."""
        return any(d.name.split("-", 1)[1] == label for d in self._deltas)

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
        start = self.size
        self._append_delta(name, folder)
        self._merge(keys, np.arange(start, self.size, dtype=np.uint32))

    # -- lookups -------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Documents held (owners)."""
        return int(self._offsets[-1])

    def _merge(self, keys: np.ndarray, owners: np.ndarray) -> None:
        for table in range(self.tables):
            column = keys[:, table]
            order = np.argsort(column, kind="stable")
            new_keys, new_owners = column[order], owners[order]
            at = np.searchsorted(self._keys[table], new_keys, side="right")
            self._keys[table] = np.insert(self._keys[table], at, new_keys)
            self._owners[table] = np.insert(self._owners[table], at, new_owners)

    def lookup(self, table: int, keys: np.ndarray) -> np.ndarray:
        """The earliest owner holding each key in ``table``, or -1."""
        stored = self._keys[table]
        if len(stored) == 0:
            return np.full(len(keys), -1, np.int64)
        at = np.searchsorted(stored, keys, side="left")
        inside = at < len(stored)
        found = np.zeros(len(keys), bool)
        found[inside] = stored[at[inside]] == keys[inside]
        return np.where(found, self._owners[table][np.minimum(at, len(stored) - 1)].astype(np.int64), -1)

    def _locate(self, owner: int) -> tuple[_Delta, int]:
        delta = int(np.searchsorted(self._offsets, owner, side="right")) - 1
        return self._deltas[delta], owner - int(self._offsets[delta])

    def doc_id(self, owner: int) -> str:
        delta, row = self._locate(owner)
        return str(delta.ids[row])

    def signature(self, owner: int) -> np.ndarray:
        delta, row = self._locate(owner)
        if delta.signatures is None:
            raise ValueError("this index keeps no signatures")
        return np.asarray(delta.signatures[row])


def delta_run(name: str) -> str:
    """The run id in a delta's name (``<seq>-<run id>-s<shard>``)."""
    return name.split("-", 1)[1].rsplit("-s", 1)[0]


def _fsync_dir(folder: Path) -> None:
    """Flush a delta's files before the rename that commits it (a power cut must not commit half a delta)."""
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())

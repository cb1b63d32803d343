"""Exact and MinHash dedup of one shard against the persisted index and against itself.

Both keep the first copy in corpus order (earlier runs, then earlier shards, then earlier lines)
and remove later ones, naming the kept document as ``related_doc_id``. A document is a near-copy
when an LSH band matches a kept document *and* the signatures' estimated Jaccard similarity is at
least the threshold, so band collisions between unrelated documents never remove anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from winnow.filtering.index import DedupIndex
from winnow.filtering.manifest import Removal

MAX_PARTNERS_PER_BUCKET = 8
"""In-shard candidates per band bucket: each document is compared with at most this many earlier
members of a bucket (a bucket of thousands means exact copies, which the exact stage removes first)."""


@dataclass(frozen=True)
class ShardDocs:
    """The documents of one shard that a stage sees: ``lines`` and ``doc_ids`` in shard order."""

    lines: np.ndarray
    doc_ids: list[str]


def exact_dedup(index: DedupIndex, docs: ShardDocs, keys: np.ndarray) -> tuple[list[Removal], np.ndarray]:
    """Documents whose exact key a kept document already has, and the positions of those kept
    (the caller records the removals, then commits the kept keys to the index)."""
    removals: list[Removal] = []
    owners = index.lookup(0, keys)
    first_seen: dict[int, int] = {}
    kept = []
    for i, (key, owner) in enumerate(zip(keys.tolist(), owners.tolist())):
        if owner >= 0:
            related = index.doc_id(owner)
        elif key in first_seen:
            related = docs.doc_ids[first_seen[key]]
        else:
            first_seen[key] = i
            kept.append(i)
            continue
        removals.append(Removal(int(docs.lines[i]), docs.doc_ids[i], "exact", f"exact copy of {related} (same normalised text)",
                                related, {"hash": f"{key:016x}"}))
    return removals, np.asarray(kept, np.int64)


def minhash_dedup(
    index: DedupIndex, docs: ShardDocs, signatures: np.ndarray, band_keys: np.ndarray, has_shingles: np.ndarray,
    *, threshold: float, shingle_size: int,
) -> tuple[list[Removal], np.ndarray]:
    """Near-copies of kept documents (earlier shards or runs, or earlier in this shard), and the
    positions of the documents kept (the caller commits their band keys and signatures)."""
    usable = np.flatnonzero(has_shingles)
    from_index = _index_candidates(index, band_keys, usable)
    in_shard = _shard_candidates(band_keys, usable)
    removed: dict[int, tuple[str, float]] = {}
    for i in usable.tolist():
        best = None
        for owner in from_index.get(i, ()):
            similarity = _jaccard(signatures[i], index.signature(owner))
            if similarity >= threshold and (best is None or similarity > best[1]):
                best = (index.doc_id(owner), similarity)
        if best is None:
            for j in in_shard.get(i, ()):
                if j in removed:
                    continue  # only kept documents are matched against, as across shards
                similarity = _jaccard(signatures[i], signatures[j])
                if similarity >= threshold and (best is None or similarity > best[1]):
                    best = (docs.doc_ids[j], similarity)
        if best is not None:
            removed[i] = best
    removals = [
        Removal(int(docs.lines[i]), docs.doc_ids[i], "minhash",
                f"near-duplicate of {related} (estimated Jaccard {similarity:.2f} >= {threshold:.2f} on {shingle_size}-word shingles)",
                related, {"jaccard": round(similarity, 4), "threshold": threshold})
        for i, (related, similarity) in sorted(removed.items())
    ]
    kept = np.array([i for i in usable.tolist() if i not in removed], dtype=np.int64)
    return removals, kept


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """datasketch's estimate: the fraction of equal signature values."""
    return float(np.count_nonzero(a == b)) / len(a)


def _index_candidates(index: DedupIndex, band_keys: np.ndarray, usable: np.ndarray) -> dict[int, list[int]]:
    """Owners in the index sharing at least one band key with each usable document."""
    candidates: dict[int, list[int]] = {}
    if index.size == 0 or len(usable) == 0:
        return candidates
    for band in range(band_keys.shape[1]):
        owners = index.lookup(band, band_keys[usable, band])
        for i, owner in zip(usable[owners >= 0].tolist(), owners[owners >= 0].tolist()):
            partners = candidates.setdefault(i, [])
            if owner not in partners:
                partners.append(owner)
    return candidates


def _shard_candidates(band_keys: np.ndarray, usable: np.ndarray) -> dict[int, list[int]]:
    """Earlier documents of the shard sharing at least one band key with each usable document."""
    candidates: dict[int, list[int]] = {}
    for band in range(band_keys.shape[1]):
        keys = band_keys[usable, band]
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
        sizes = np.diff(np.append(starts, len(sorted_keys)))
        for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            members = usable[order[start : start + size]].tolist()  # in shard order (stable sort)
            for position in range(1, size):
                partners = candidates.setdefault(members[position], [])
                for j in members[max(0, position - MAX_PARTNERS_PER_BUCKET) : position]:
                    if j not in partners:
                        partners.append(j)
    return candidates

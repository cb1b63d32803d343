"""Exact and MinHash dedup of one shard against the persisted index and against itself.

Both keep the first copy in corpus order (earlier runs, then earlier shards, then earlier lines)
and remove later ones, naming the kept document as ``related_doc_id``. A document is a near-copy
when an LSH band matches a kept document *and* the signatures' estimated Jaccard similarity is at
least the threshold, so band collisions between unrelated documents never remove anything.

The work is done for the whole shard at once with numpy (lookups, verification, the best match
per document); only documents with a candidate earlier in the same shard are walked one by one,
because whether such a candidate still counts depends on the decisions before it.
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
    owners = index.lookup(0, keys)
    unique, first = np.unique(keys, return_index=True)
    first_copy = first[np.searchsorted(unique, keys)]  # where each key first occurs in the shard
    in_index = owners >= 0
    removed = np.flatnonzero(in_index | (first_copy != np.arange(len(keys))))
    from_index = iter(index.doc_ids(owners[in_index]))
    removals = []
    for i in removed.tolist():
        related = next(from_index) if in_index[i] else docs.doc_ids[first_copy[i]]
        removals.append(Removal(int(docs.lines[i]), docs.doc_ids[i], "exact", f"exact copy of {related} (same normalised text)",
                                related, {"hash": f"{int(keys[i]):016x}"}))
    kept = np.flatnonzero(~in_index & (first_copy == np.arange(len(keys))))
    return removals, kept


def minhash_dedup(
    index: DedupIndex, docs: ShardDocs, signatures: np.ndarray, band_keys: np.ndarray, has_shingles: np.ndarray,
    *, threshold: float, shingle_size: int,
) -> tuple[list[Removal], np.ndarray]:
    """Near-copies of kept documents (earlier shards or runs, or earlier in this shard), and the
    positions of the documents kept (the caller commits their band keys and signatures).

    Among several matches the most similar wins; between equally similar ones, the one found first
    (by band, then by position)."""
    usable = np.flatnonzero(has_shingles)
    removed: dict[int, tuple[str, float]] = _index_matches(index, signatures, band_keys, usable, threshold)
    for i, partners in _shard_candidates(band_keys, usable).items():
        if i in removed:
            continue
        best = None
        for j in partners:
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


def _index_matches(index: DedupIndex, signatures: np.ndarray, band_keys: np.ndarray, usable: np.ndarray,
                   threshold: float) -> dict[int, tuple[str, float]]:
    """For each usable document with a verified match among the index's owners: the best one's doc
    id and the estimated Jaccard similarity."""
    if index.size == 0 or len(usable) == 0:
        return {}
    owners = index.lookup_tables(band_keys[usable])
    rows, bands = np.nonzero(owners >= 0)  # by document, then band: the order candidates are found in
    if len(rows) == 0:
        return {}
    candidates = owners[rows, bands]
    _, first = np.unique((rows.astype(np.int64) << 32) | candidates, return_index=True)
    first.sort()
    rows, candidates = rows[first], candidates[first]
    unique_owners, which = np.unique(candidates, return_inverse=True)
    stored = index.signatures(unique_owners)
    mine = signatures[usable[rows]]
    similarity = np.count_nonzero(mine == stored[which], axis=1) / mine.shape[1]
    good = np.flatnonzero(similarity >= threshold)
    if len(good) == 0:
        return {}
    best = good[np.lexsort((good, -similarity[good], rows[good]))]  # per document: most similar, then found first
    best = best[np.concatenate([[True], rows[best][1:] != rows[best][:-1]])]
    related = index.doc_ids(candidates[best])
    return {int(usable[r]): (doc_id, float(s)) for r, doc_id, s in zip(rows[best].tolist(), related, similarity[best].tolist())}


def _shard_candidates(band_keys: np.ndarray, usable: np.ndarray) -> dict[int, list[int]]:
    """Earlier documents of the shard sharing at least one band key with each usable document, by
    band, then position; documents in shard order."""
    candidates: dict[int, list[int]] = {}
    if len(usable) < 2:
        return candidates
    # per band, key and position as one 64-bit number: one SIMD sort orders each band by key, then shard order
    ordered = np.sort((band_keys[usable].T.astype(np.uint64) << np.uint64(32)) | np.arange(len(usable), dtype=np.uint64), axis=1)
    keys, positions = ordered >> np.uint64(32), (ordered & np.uint64(0xFFFFFFFF)).astype(np.int64)
    same = keys[:, 1:] == keys[:, :-1]
    for band in np.flatnonzero(same.any(axis=1)).tolist():
        starts = np.flatnonzero(np.concatenate([[True], ~same[band]]))
        sizes = np.diff(np.append(starts, len(usable)))
        for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            members = usable[positions[band, start : start + size]].tolist()
            for position in range(1, size):
                partners = candidates.setdefault(members[position], [])
                for j in members[max(0, position - MAX_PARTNERS_PER_BUCKET) : position]:
                    if j not in partners:
                        partners.append(j)
    return dict(sorted(candidates.items()))

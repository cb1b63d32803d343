"""The persisted dedup index as an LSM tree: small in-memory buffer, sorted segments on disk,
merges, a segment cache that is reused when it matches the deltas that count and rebuilt when not."""

from __future__ import annotations

import numpy as np

from winnow.filtering.index import FANOUT, DedupIndex

RUN_A, RUN_B, RUN_C = "20260101-000000-aaaaaa", "20260102-000000-bbbbbb", "20260103-000000-cccccc"


def earliest_owners(batches: list[np.ndarray]) -> dict[tuple[int, int], int]:
    """Brute force: the first owner of each (table, key) over batches committed in order."""
    owners: dict[tuple[int, int], int] = {}
    owner = 0
    for keys in batches:
        for row in keys.tolist():
            for table, key in enumerate(row):
                owners.setdefault((table, key), owner)
            owner += 1
    return owners


def commit_batches(index: DedupIndex, run: str, batches: list[np.ndarray], first_shard: int = 0) -> None:
    for number, keys in enumerate(batches, start=first_shard):
        index.commit(f"{run}-s{number:06d}", keys, [f"{run}:{number}:{i}" for i in range(len(keys))],
                     np.tile(np.arange(len(keys), dtype=np.uint32)[:, None], (1, 3)))


def check_lookups(index: DedupIndex, expected: dict[tuple[int, int], int], tables: int, key_range: int) -> None:
    probe = np.arange(key_range + 5).repeat(tables).reshape(-1, tables)
    found = index.lookup_tables(probe)
    for table in range(tables):
        want = [expected.get((table, key), -1) for key in probe[:, table].tolist()]
        assert found[:, table].tolist() == want, table


def test_segments_and_merges_return_the_earliest_owner_like_a_dictionary(tmp_path):
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 60, size=(int(rng.integers(0, 7)), 3)).astype(np.uint32) for _ in range(40)]
    index = DedupIndex(tmp_path, 3, np.uint32, {"rows": 1}, buffer_docs=4, merge_chunk=3)  # merges in chunks
    commit_batches(index, RUN_A, batches)
    segments = sorted(p.name for p in (tmp_path / "segments").iterdir())
    assert len(segments) < len(batches) / 2  # written out and merged, not one per delta
    assert any(p.stat().st_size > 0 for p in (tmp_path / "segments").glob("*/keys.npy"))
    expected = earliest_owners(batches)
    check_lookups(index, expected, 3, 60)

    reopened = DedupIndex(tmp_path, 3, np.uint32, {"rows": 1}, buffer_docs=4)
    assert sorted(p.name for p in (tmp_path / "segments").iterdir()) == segments  # the cache is reused as it is
    check_lookups(reopened, expected, 3, 60)
    owners = np.array([0, 7, reopened.size - 1])
    assert reopened.doc_ids(owners) == [index.doc_id(int(o)) for o in owners.tolist()]
    assert np.array_equal(reopened.signatures(owners), np.stack([index.signature(int(o)) for o in owners.tolist()]))


def test_exact_keys_of_64_bits_merge_in_owner_order(tmp_path):
    batches = [np.array([[2**63 + 5], [7], [2**63 + 5]], np.uint64), np.array([[7], [1]], np.uint64)] * FANOUT
    index = DedupIndex(tmp_path, 1, np.uint64, {}, buffer_docs=2, merge_chunk=2)
    commit_batches(index, RUN_A, batches)
    assert index.lookup(0, np.array([2**63 + 5, 7, 1, 3], np.uint64)).tolist() == [0, 1, 4, -1]


def test_an_abandoned_run_inside_a_cached_segment_is_left_out(tmp_path):
    rng = np.random.default_rng(1)
    first = [rng.integers(0, 1000, size=(3, 2)).astype(np.uint32) for _ in range(3)]
    abandoned = [np.array([[5000, 5001], [5002, 5003]], np.uint32)]
    later = [rng.integers(0, 1000, size=(3, 2)).astype(np.uint32) for _ in range(2)]
    index = DedupIndex(tmp_path, 2, np.uint32, {}, runs={RUN_A, RUN_B}, buffer_docs=4)
    commit_batches(index, RUN_A, first)
    commit_batches(index, RUN_B, abandoned, first_shard=10)  # the buffer is written out with RUN_B's delta in it
    assert index.lookup(0, np.array([5000])).tolist() == [9]

    counted = DedupIndex(tmp_path, 2, np.uint32, {}, runs={RUN_A, RUN_C}, buffer_docs=4)
    commit_batches(counted, RUN_C, later, first_shard=20)
    assert counted.lookup(0, np.array([5000])).tolist() == [-1] and counted.size == 15
    check_lookups(counted, earliest_owners(first + later), 2, 1000)
    covered = [json for json in (tmp_path / "segments").glob("*/deltas.json")]
    assert covered and all(RUN_B not in path.read_text() for path in covered)

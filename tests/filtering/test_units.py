"""The pieces under the filter stages: batched MinHash (equal to datasketch's), shingles,
normalisation, the persisted index, configuration errors."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from tests.filtering.conftest import documents, drop_words
from winnow.errors import ConfigError
from winnow.filtering import text as textops
from winnow.filtering.config import load_filter_config
from winnow.filtering.index import DedupIndex


def assert_signatures_equal_datasketch(shingles: np.ndarray, counts: np.ndarray, *, num_perm: int, seed: int) -> None:
    """Our batched signatures of each document (``counts`` shingles each) equal datasketch's MinHash of it."""
    sigs = textops.signatures(shingles, counts, num_perm, seed)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for i in range(len(counts)):
        expected = MinHash(num_perm=num_perm, seed=seed, scheme="affine32", hashfunc=int)
        expected.update_batch(shingles[offsets[i] : offsets[i + 1]])
        assert np.array_equal(sigs[i], expected.hashvalues), i


def test_batched_signatures_equal_datasketch_minhash(reviews):
    texts = [textops.dedup_form(t) for t in documents(reviews, 40)] + ["", "one"]
    shingles, counts = textops.shingle_hashes(texts, 3)
    assert_signatures_equal_datasketch(shingles, counts, num_perm=64, seed=5)
    assert counts[-2] == 0 and counts[-1] == 1  # no word: no shingle; fewer words than the size: one


def test_shingles_do_not_cross_documents_and_ignore_punctuation():
    alone, _ = textops.shingle_hashes(["b c"], 2)
    after, counts = textops.shingle_hashes(["a", "b c"], 2)
    assert list(counts) == [1, 1] and after[1] == alone[0]
    punctuated, _ = textops.shingle_hashes(["b, c!"], 2)
    assert punctuated[0] == alone[0]


def test_similarity_of_a_near_copy_is_high_and_of_another_document_low(reviews):
    base, other = documents(reviews, 2)
    texts = [textops.dedup_form(t) for t in (base, drop_words(base, 0.1, seed=1), other)]
    sigs = textops.signatures(*textops.shingle_hashes(texts, 2), 128, 1)
    assert np.mean(sigs[0] == sigs[1]) > 0.6
    assert np.mean(sigs[0] == sigs[2]) < 0.2


def test_normalize_document_keeps_case_and_lines():
    assert textops.normalize_document("  Cafe\u0301  au\tlait \n\n\n\nNext   line  ") == "Caf\u00e9 au lait\n\nNext line"


def test_index_persists_and_refuses_other_params(tmp_path):
    index = DedupIndex(tmp_path, 2, np.uint32, {"rows": 4})
    index.commit("run-s000001", np.array([[5, 7], [9, 11]]), ["a", "b"], np.ones((2, 3), np.uint32))
    reopened = DedupIndex(tmp_path, 2, np.uint32, {"rows": 4})
    assert reopened.has("run-s000001") and not reopened.has("run-s000002")
    assert reopened.lookup(1, np.array([11, 7, 3])).tolist() == [1, 0, -1]
    assert reopened.doc_id(1) == "b" and reopened.signature(0).tolist() == [1, 1, 1]
    with pytest.raises(ConfigError, match="built with"):
        DedupIndex(tmp_path, 2, np.uint32, {"rows": 5})


def test_index_leaves_out_the_deltas_of_runs_not_counted(tmp_path):
    index = DedupIndex(tmp_path, 1, np.uint64, {}, runs={"20260101-000000-aaaaaa"})
    index.commit("20260101-000000-aaaaaa-s000000", np.array([[3]]), ["kept"])
    abandoned = DedupIndex(tmp_path, 1, np.uint64, {}, runs={"20260101-000000-bbbbbb"})
    abandoned.commit("20260101-000000-bbbbbb-s000000", np.array([[4]]), ["other"])
    later = DedupIndex(tmp_path, 1, np.uint64, {}, runs={"20260101-000000-aaaaaa", "20260102-000000-cccccc"})
    assert later.lookup(0, np.array([3, 4])).tolist() == [0, -1] and later.size == 1


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("stages: [exact, fuzzy]", "unknown stage(s) ['fuzzy']"),
        ("stages: exact", "must be a list"),
        ("minhash: {permutations: 64}", "unknown option(s) ['permutations'] in 'minhash'"),
        ("minhash: {threshold: 1.5}", "minhash.threshold must be in (0, 1]"),
        ("minhash: {bands: 20, rows: 10}", "exceeds num_perm"),
        ("quality: {min_letters: 3}", "unknown quality option(s) ['min_letters']"),
        ("stages: [anomaly]", "needs anomaly.reference"),
        ("filters: []", "unknown key(s) ['filters']"),
        ("- exact", "must be a YAML mapping"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, yaml_text, message):
    path = tmp_path / "filter.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as error:
        load_filter_config(path, inputs="x/*.jsonl", out=str(tmp_path / "out"))
    assert message in str(error.value)


def test_config_orders_stages_and_resolves_paths(tmp_path):
    reference = tmp_path / "good.txt"
    reference.write_text("a good document\nanother one\n")
    path = tmp_path / "filter.yaml"
    path.write_text(f"stages: [quality, exact]\nanomaly: {{reference: {reference.name}}}\nquality: {{min_chars: 40}}\n")
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        config = load_filter_config(path, inputs="x/*.jsonl", out="out")
    finally:
        os.chdir(cwd)
    assert config.stages == ("quality", "exact") and config.quality.params == {"min_chars": 40}
    assert config.anomaly.reference == str(reference) and config.out == str(tmp_path / "out")


def test_workers_choose_the_dask_task_runner(tmp_path):
    DaskTaskRunner = pytest.importorskip("prefect_dask").DaskTaskRunner

    from flows.filter import filter_flow_for

    config = load_filter_config(None, inputs="x/*.jsonl", out=str(tmp_path), workers=2)
    assert isinstance(filter_flow_for(config).task_runner, DaskTaskRunner)


TRICKY = [
    "", "one", "  Ça  va?\u00a0très\u2003bien — “quoted” don’t", "Straße ﬁnance Ⅻ x² ＡＢＣ", "日本語のテキスト、です。 abc",
    "\x1c\x1d hi \x1f there\u2028next", "snake_case_word 12_3 __ a-b", "e\u0301 combining \u0301 alone", "tab\tand\nnew  line",
]


def test_dedup_form_is_normalize_text_and_words_are_the_regex_words(reviews):
    import re

    import pandas as pd

    from winnow.datasets.hashing import normalize_text

    texts = TRICKY + documents(reviews, 30)
    forms = textops.dedup_forms(texts)
    assert forms == [normalize_text(t) for t in texts]
    hashes, lengths = textops.word_hashes(textops.encode(forms))
    words = [re.findall(r"\w+", f) for f in forms]
    assert lengths.tolist() == [len(w) for w in words]
    assert np.array_equal(hashes, pd.util.hash_array(np.array([w for ws in words for w in ws], dtype=object), categorize=False))


def test_signatures_of_a_document_longer_than_a_block_equal_datasketch():
    shingles = np.random.default_rng(3).integers(0, 2**32, size=textops._CHUNK_SHINGLES * 2 + 5, dtype=np.uint64).astype(np.uint32)
    counts = np.array([3, len(shingles) - 4, 0, 1])
    assert_signatures_equal_datasketch(shingles, counts, num_perm=16, seed=2)


def test_a_damaged_gzip_shard_keeps_every_complete_line(tmp_path):
    import gzip

    from winnow.filtering.shards import Shard, read_documents

    lines = [f'{{"text": "document number {i} with some words"}}' for i in range(3000)]
    whole = gzip.compress("\n".join(lines).encode())
    members = tmp_path / "members.jsonl.gz"
    members.write_bytes(gzip.compress(b'{"text": "first member"}\n') + whole)
    documents_ = list(read_documents(Shard(str(members), members.name, 0), "text", None))
    assert [d.text for d in documents_[:2]] == ["first member", "document number 0 with some words"] and len(documents_) == 3001
    for name, damaged in (("truncated", whole[: len(whole) // 2]), ("garbage", whole[:200] + b"\x00garbage" * 50)):
        path = tmp_path / f"{name}.jsonl.gz"
        path.write_bytes(damaged)
        read = list(read_documents(Shard(str(path), path.name, 0), "text", None))
        assert read[-1].line == -1 and "could not be read to the end" in read[-1].error, name
        assert [d.text for d in read[:-1]] == [f"document number {i} with some words" for i in range(len(read) - 1)], name


def test_small_shards_are_grouped_in_order_and_spread_over_the_workers(tmp_path):
    from winnow.filtering.run import shard_groups
    from winnow.filtering.shards import Shard

    shards = []
    for i in range(20):
        path = tmp_path / f"s{i:02d}.jsonl"
        path.write_text("x" * 100)
        shards.append(Shard(str(path), path.name, i))
    groups = shard_groups(tuple(shards), workers=2)
    assert [s for group in groups for s in group] == shards  # consecutive, in corpus order
    assert [len(group) for group in groups] == [2] * 10  # at least 4 groups per worker: at most 20 // 8 shards each
    assert shard_groups(tuple(shards[:3]), workers=2) == [(s,) for s in shards[:3]]

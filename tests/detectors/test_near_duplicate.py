import numpy as np

from detectors.knn import build_knn_graph
from detectors.near_duplicate import detect_near_duplicate
from tests.detectors.conftest import make_items
from winnow.embed import l2_normalize


def test_groups_keep_the_first_item_and_flag_is_score_above_threshold():
    rng = np.random.default_rng(3)
    base = l2_normalize(rng.normal(size=(20, 16)))
    copies = l2_normalize(np.vstack([base[5] + 0.01 * rng.normal(size=16), base[5] + 0.02 * rng.normal(size=16), base[9] + 0.01 * rng.normal(size=16)]))
    vectors = np.vstack([base, copies])  # i20, i21 copy i5; i22 copies i9
    items = make_items(23)
    result = detect_near_duplicate(items, knn=build_knn_graph(vectors, k=5), threshold=0.98)
    f = result.findings.set_index("item_id")
    assert set(f.index[f.flagged]) == {"i20", "i21", "i22"}
    assert f.loc["i20", "related_item_id"] == "i5" and f.loc["i22", "related_item_id"] == "i9"
    assert f.loc["i5", "group_id"] == f.loc["i21", "group_id"] == "near:i5"
    assert not f.loc["i5", "flagged"] and "representative" in f.loc["i5", "reason"]
    assert ((f["score"] >= 0.98) == f["flagged"]).all()
    assert {frozenset(p) for p in zip(result.pairs.item_a, result.pairs.item_b)} >= {frozenset({"i5", "i20"}), frozenset({"i9", "i22"})}
    assert (result.pairs["method"] == "embedding_cosine").all()
    # the planted copies outrank every unrelated item
    ranking = f.sort_values("score", ascending=False).index[:3]
    assert set(ranking) == {"i20", "i21", "i22"}


def test_same_content_hash_is_left_to_exact_duplicates():
    vectors = l2_normalize(np.vstack([np.ones(4), np.ones(4), np.eye(4)[0]]))
    items = make_items(3, {1: "h0"})
    result = detect_near_duplicate(items, knn=build_knn_graph(vectors, k=2), threshold=0.9)
    assert not result.findings["flagged"].any() and result.pairs.empty


def test_chain_forms_one_group_with_one_keeper():
    angles = np.array([0.0, 0.1, 0.2, 1.5])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    items = make_items(4)
    f = detect_near_duplicate(items, knn=build_knn_graph(vectors, k=3), threshold=0.994).findings.set_index("item_id")
    # i0–i1 and i1–i2 are above the threshold (cos 0.1 = 0.995) but i0–i2 is not: one group still
    assert f.loc[["i0", "i1", "i2"], "group_id"].nunique() == 1
    assert f.loc["i2", "related_item_id"] == "i0"
    assert f["flagged"].tolist() == [False, True, True, False]


def test_matching_phash_rescues_a_copy_the_embedding_moved():
    angles = np.array([0.0, 0.5, 1.2, 2.0, 2.7])  # cos(0.5) = 0.88: below the cosine threshold
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    hashes = np.array(["ffff0000ffff0000", "ffff0000ffff0001", "0123456789abcdef", "fedcba9876543210", "0f0f0f0f0f0f0f0f"], dtype=object)
    knn = build_knn_graph(vectors, k=4)
    fused = detect_near_duplicate(make_items(5), knn=knn, hashes=hashes, threshold=0.95, phash_max_distance=4, min_cosine=0.75)
    f = fused.findings.set_index("item_id")
    assert f.loc["i1", "flagged"] and f.loc["i1", "related_item_id"] == "i0"
    assert np.isclose(f.loc["i1", "score"], 1 - 0.05 * 1 / 4)  # one differing bit
    assert fused.pairs["method"].tolist() == ["phash+embedding"]
    plain = detect_near_duplicate(make_items(5), knn=knn, threshold=0.95).findings
    assert not plain["flagged"].any()


def test_phash_needs_the_cosine_guard():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)  # unrelated content
    hashes = np.array(["0000000000000000", "0000000000000000"], dtype=object)  # e.g. two blank frames
    result = detect_near_duplicate(make_items(2), knn=build_knn_graph(vectors, k=1), hashes=hashes)
    assert not result.findings["flagged"].any()

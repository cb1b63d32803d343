import json

import numpy as np
import pytest

from detectors.knn import build_knn_graph
from detectors.near_duplicate import (
    PIXEL_METHOD,
    TEXT_METHOD,
    background,
    detect_near_duplicate,
    normalised_closeness,
    word_jaccard,
)
from tests.detectors.conftest import make_items
from tests.detectors.test_image_match import captioned, cropped, textured
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


# -- pixel-verified image pairs, text word overlap -------------------------------------------------



def image_set(seed: int = 0):
    """16 distinct pictures, then copies of 0 (crop), 1 (mirror), 2 (caption) and 3 (crop), and a
    look-alike of 4: its embedding is almost 4's (cosine 0.99) while its pixels are another picture.
    The copies' embeddings moved (cosine about 0.85), as a JPEG or a crop moves a CNN's."""
    rng = np.random.default_rng(seed)
    pictures = [textured(s) for s in range(16)]
    copies = [cropped(pictures[0], 4, 2, 1), pictures[1][:, ::-1], captioned(pictures[2]), cropped(pictures[3], 3, 0, 3), textured(99)]
    vectors = rng.normal(size=(16, 32))
    moved = [vectors[i] + 0.65 * rng.normal(size=32) * np.linalg.norm(vectors[i]) / np.sqrt(32) for i in range(4)]
    alike = vectors[4] + 0.12 * rng.normal(size=32) * np.linalg.norm(vectors[4]) / np.sqrt(32)
    return np.stack(pictures + copies), l2_normalize(np.vstack([vectors, *moved, alike]))


def test_pixel_evidence_flags_moved_copies_and_not_an_embedding_look_alike():
    thumbnails, vectors = image_set()
    knn = build_knn_graph(vectors, k=6)
    assert knn.similarities[20, 0] > 0.98 and knn.indices[20, 0] == 4  # the look-alike is the closest pair by embedding
    plain = detect_near_duplicate(make_items(21), knn=knn).findings.set_index("item_id")
    assert plain.loc["i20", "flagged"] and plain["score"].idxmax() == "i20"
    result = detect_near_duplicate(make_items(21), knn=knn, thumbnails=thumbnails, vectors=vectors)
    f = result.findings.set_index("item_id")
    assert set(f.index[f.flagged]) == {"i16", "i17", "i18", "i19"}
    assert [f.loc[f"i{16 + n}", "related_item_id"] for n in range(4)] == ["i0", "i1", "i2", "i3"]
    assert set(f["score"].nlargest(4).index) == {"i16", "i17", "i18", "i19"}
    assert f.loc["i20", "score"] < 0.85  # the look-alike, first by cosine, is not a copy by its pixels
    assert ((f["score"] >= 0.85) == f["flagged"]).all() and (result.pairs["method"] == PIXEL_METHOD).all()
    detail = json.loads(f.loc["i18", "detail"])
    assert detail["pixels"] > 0.97 and detail["threshold"] == 0.85 and {"gradients", "cosine"} <= set(detail)


def test_a_group_of_copies_stays_visible_against_its_background():
    """Three copies of one picture: each item's nearest candidates are the others of the group, so a
    background taken from the nearest candidate would hide them; the fourth candidate does not."""
    pictures = [textured(s) for s in range(14)]
    group = [pictures[0], np.clip(pictures[0] * 0.9 + 5, 0, 255), pictures[0][:, ::-1], cropped(pictures[0], 2, 1, 1)]
    thumbnails = np.stack(pictures + group[1:])
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(14, 24))
    vectors = l2_normalize(np.vstack([vectors, vectors[0] + 0.3 * rng.normal(size=(3, 24)) * np.linalg.norm(vectors[0]) / np.sqrt(24)]))
    f = detect_near_duplicate(make_items(17), knn=build_knn_graph(vectors, k=6), thumbnails=thumbnails, vectors=vectors).findings.set_index("item_id")
    assert set(f.index[f.flagged]) == {"i14", "i15", "i16"}
    assert set(f.loc[["i14", "i15", "i16"], "related_item_id"]) == {"i0"}


def test_background_is_the_ranked_other_candidate_of_each_side():
    a, b = np.array([0, 0, 0, 1, 2]), np.array([1, 2, 3, 2, 3])
    values = np.array([0.9, 0.5, 0.7, 0.2, 0.4])
    # item 0's candidates rank 0.9 (i1), 0.7 (i3), 0.5 (i2); item 1's 0.9, 0.2; item 2's 0.5, 0.4, 0.2; item 3's 0.7, 0.4
    side_a, side_b = background(a, b, values, 4, rank=2)
    np.testing.assert_allclose(side_a, [0.5, 0.7, 0.5, 0.9, 0.2])  # second best of the others (or the lowest)
    np.testing.assert_allclose(side_b, [0.2, 0.2, 0.4, 0.4, 0.7])
    alone_a, alone_b = background(np.array([0]), np.array([1]), np.array([0.99]), 2)
    assert alone_a[0] == alone_b[0] == 0.0  # no other candidate: background distance 1


def test_word_overlap_joins_the_cosine_for_texts():
    texts = ["a quiet film about grief and hope", "grief and hope: a quiet film about", "a loud film about cars", "", "film"]
    jaccard = word_jaccard(texts, np.array([0, 0, 0, 3]), np.array([1, 2, 4, 4]))
    np.testing.assert_allclose(jaccard[:3], [1.0, 3 / 9, 1 / 7])
    assert np.isnan(jaccard[3])  # no words: the cosine alone decides
    # a reworded copy whose embedding moved (cosine 0.80) is a near-duplicate once its words are
    # counted; another review on the same film (cosine 0.90, a third of the words shared) is not
    angles = np.array([0.0, np.arccos(0.80), -np.arccos(0.90), 2.0, 2.6])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    items = make_items(5).assign(text=texts)
    result = detect_near_duplicate(items, knn=build_knn_graph(vectors, k=4), threshold=0.85)
    f = result.findings.set_index("item_id")
    assert set(f.index[f.flagged]) == {"i1"} and np.isclose(f.loc["i1", "score"], 1.0)
    assert np.isclose(f.loc["i2", "score"], 1 - np.sqrt(0.10 * (1 - 3 / 9)), atol=1e-4)
    assert result.pairs["method"].tolist() == [TEXT_METHOD]
    cosine_only = detect_near_duplicate(items.drop(columns="text"), knn=build_knn_graph(vectors, k=4), threshold=0.85).findings
    assert cosine_only.set_index("item_id").flagged.to_dict() == {"i0": False, "i1": False, "i2": True, "i3": False, "i4": False}


def test_a_background_is_never_farther_than_the_runs_typical_nearest_candidate():
    """Four pairs of look-alikes (0.99) and one pair of copies (0.9999), every other pair at 0.2: each
    item's third other candidate is at 0.2, which alone would make every look-alike pair 80 times
    closer than its background. Capped at the nearest candidate of the run's most isolated items
    (0.99), look-alike pairs are as close as that and only the copies stand out."""
    n = 10
    a, b = np.triu_indices(n, 1)
    similarity = np.full(len(a), 0.2)
    partners = (a // 2 == b // 2) & (a % 2 == 0)
    similarity[partners] = 0.99
    similarity[(a == 8) & (b == 9)] = 0.9999
    closeness = normalised_closeness(a, b, similarity, n)
    np.testing.assert_allclose(closeness[partners & (a < 8)], 0.0, atol=1e-9)
    assert closeness[(a == 8) & (b == 9)][0] == pytest.approx(np.log(0.01 / 0.0001))
    assert (closeness[~partners] < 0).all()

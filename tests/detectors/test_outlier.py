import json

import numpy as np

from detectors import run_detectors
from detectors.image_evidence import TRANSFORMS
from detectors.knn import build_knn_graph
from detectors.outlier import MEMBERS, detect_outlier, member_scores
from tests.detectors.conftest import make_items, upright_shapes
from winnow.embed import l2_normalize
from winnow.robust import robust_threshold


def test_far_item_ranks_first_and_is_flagged(clusters):
    result = detect_outlier(make_items(31), knn=build_knn_graph(clusters, k=5), vectors=clusters, k=5)
    f = result.findings.set_index("item_id")
    assert f["score"].idxmax() == "i30"
    assert f.loc["i30", "flagged"] and "its embedding is far from the other items'" in f.loc["i30", "reason"]
    assert f["flagged"].sum() <= 2
    assert {"knn_distance", "embedding_z", "threshold"} <= set(json.loads(f.loc["i30", "detail"]))


def test_tables_add_the_robust_gaussian_and_members_can_be_named_in_a_string(clusters):
    """A table's default adds ``mahalanobis``: an item against the correlation of two columns."""
    rng = np.random.default_rng(5)
    t = rng.normal(size=200)
    rows = np.column_stack([t, t + rng.normal(scale=0.05, size=200), rng.normal(size=(200, 3))])
    rows[199, :2] = [1.5, -1.5]  # each value ordinary, the pair impossible
    vectors = l2_normalize(rows - rows.mean(axis=0))
    run = run_detectors(make_items(200), "tabular", {"knn": build_knn_graph(vectors, k=5), "vectors": vectors}, names=["outlier"])
    f = run.results["outlier"].findings.set_index("item_id")
    assert f["score"].idxmax() == "i199" and "mahalanobis" in json.loads(f.loc["i199", "detail"])
    named = detect_outlier(make_items(31), knn=build_knn_graph(clusters, k=5), vectors=clusters, k=5, members="knn_distance, mahalanobis")
    assert "mahalanobis_z" not in json.loads(named.findings["detail"].iloc[0]) and "mahalanobis" in json.loads(named.findings["detail"].iloc[0])


def test_copies_do_not_hide_an_outlier(clusters):
    vectors = np.vstack([clusters, clusters[30:31]])
    items = make_items(32, {31: "h30"})
    f = detect_outlier(items, knn=build_knn_graph(vectors, k=5), k=5, members=("knn_distance",)).findings.set_index("item_id")
    assert set(f["score"].nlargest(2).index) == {"i30", "i31"}


def test_garbled_text_ranks_first_by_its_letters():
    rng = np.random.default_rng(2)
    words = "a warm and funny film about family with a great cast and a clever script".split()
    texts = [" ".join(rng.choice(words, size=12)) for _ in range(40)]
    texts.append("a wxrm qnd fuzny fklm abjut fymily wivh a grxat cazt")
    vectors = l2_normalize(rng.normal(size=(41, 8)))  # the embedding says nothing here
    items = make_items(41).assign(text=texts)
    f = detect_outlier(items, knn=build_knn_graph(vectors, k=5), vectors=vectors, k=5).findings.set_index("item_id")
    assert f["score"].idxmax() == "i40" and f.loc["i40", "flagged"]
    assert "letter sequences are rare" in f.loc["i40", "reason"]


def test_upside_down_image_ranks_first_and_says_how_it_fits_better():
    thumbnails = upright_shapes(40, seed=3)
    thumbnails[39] = thumbnails[39][::-1]  # stored upside down
    vectors = l2_normalize(np.random.default_rng(0).normal(size=(40, 8)))
    f = detect_outlier(make_items(40), knn=build_knn_graph(vectors, k=5), thumbnails=thumbnails, k=5).findings.set_index("item_id")
    assert f["score"].idxmax() == "i39"
    assert json.loads(f.loc["i39", "detail"])["fits_better"] in ("flipped upside down", "rotated by 180°")
    assert f.loc["i39", "reason"].startswith("atypical: it looks more like the other images")


def test_members_without_their_inputs_are_skipped(clusters):
    knn = build_knn_graph(clusters, k=5)
    assert set(member_scores(make_items(31), knn=knn, k=5)) == {"knn_distance"}
    scores = member_scores(make_items(31), knn=knn, vectors=clusters, thumbnails=upright_shapes(31, seed=1), k=5, members=MEMBERS)
    assert set(scores) == {"knn_distance", "mahalanobis", "orientation", "orientation_transform"}
    assert set(scores["orientation_transform"]) <= set(range(len(TRANSFORMS)))


def test_robust_threshold():
    threshold, median, mad = robust_threshold(np.array([1.0, 1.0, 2.0, 3.0, 100.0]), z=2)
    assert median == 2.0 and np.isclose(mad, 1.4826) and np.isclose(threshold, 2 + 2 * 1.4826)

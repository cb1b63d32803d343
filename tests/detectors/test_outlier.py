import numpy as np

from detectors.knn import build_knn_graph
from detectors.outlier import detect_outlier
from tests.detectors.conftest import make_items
from winnow.robust import robust_threshold


def test_far_item_ranks_first_and_is_flagged(clusters):
    result = detect_outlier(make_items(31), knn=build_knn_graph(clusters, k=5), k=5)
    f = result.findings.set_index("item_id")
    assert f["score"].idxmax() == "i30"
    assert f.loc["i30", "flagged"] and "far from its neighbours" in f.loc["i30", "reason"]
    assert f["flagged"].sum() <= 2


def test_copies_do_not_hide_an_outlier(clusters):
    vectors = np.vstack([clusters, clusters[30:31]])
    items = make_items(32, {31: "h30"})
    f = detect_outlier(items, knn=build_knn_graph(vectors, k=5), k=5).findings.set_index("item_id")
    assert set(f["score"].nlargest(2).index) == {"i30", "i31"}


def test_robust_threshold():
    threshold, median, mad = robust_threshold(np.array([1.0, 1.0, 2.0, 3.0, 100.0]), z=2)
    assert median == 2.0 and np.isclose(mad, 1.4826) and np.isclose(threshold, 2 + 2 * 1.4826)

import numpy as np

from detectors.knn import build_knn_graph
from winnow.embed import l2_normalize


def brute_force(vectors, k):
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def test_flat_graph_matches_brute_force_and_excludes_self():
    vectors = l2_normalize(np.random.default_rng(1).normal(size=(200, 16)))
    graph = build_knn_graph(vectors, k=5)
    order, sims = brute_force(vectors, 5)
    assert graph.method == "faiss-flat"
    assert (graph.indices != np.arange(200)[:, None]).all()
    np.testing.assert_array_equal(graph.indices, order)
    np.testing.assert_allclose(graph.similarities, sims, atol=1e-5)


def test_ivf_graph_recalls_planted_copies():
    rng = np.random.default_rng(2)
    base = l2_normalize(rng.normal(size=(3000, 32)))
    copies = l2_normalize(base[:100] + rng.normal(scale=0.01, size=(100, 32)))
    graph = build_knn_graph(np.vstack([base, copies]), k=5, ivf_min_items=1000)
    assert graph.method.startswith("faiss-ivf")
    found = sum(graph.indices[3000 + i, 0] == i for i in range(100))
    assert found >= 99


def test_exact_copies_never_list_themselves():
    vectors = l2_normalize(np.vstack([np.ones((3, 4)), np.eye(4)]))
    graph = build_knn_graph(vectors, k=2)
    assert all(i not in row for i, row in enumerate(graph.indices))


def test_fewer_items_than_k():
    vectors = l2_normalize(np.eye(3))
    graph = build_knn_graph(vectors, k=10)
    assert graph.k == 2
    assert build_knn_graph(vectors[:1], k=10).k == 0


def test_non_finite_and_zero_rows_are_left_out_of_the_graph():
    vectors = l2_normalize(np.random.default_rng(3).normal(size=(30, 8)))
    spoiled = vectors.copy()
    spoiled[4, 2] = np.nan
    spoiled[9, 0] = np.inf  # an infinite inner product would rank first and poison its neighbours' scores
    spoiled[20] = 0.0
    graph = build_knn_graph(spoiled, k=5)
    bad = np.array([4, 9, 20])
    good = np.setdiff1d(np.arange(30), bad)
    assert (graph.indices[bad] == -1).all() and np.isneginf(graph.similarities[bad]).all()
    assert not np.isin(bad, graph.indices).any()
    alone = build_knn_graph(vectors[good], k=5)
    np.testing.assert_array_equal(graph.indices[good], good[alone.indices])
    np.testing.assert_allclose(graph.similarities[good], alone.similarities)
    assert build_knn_graph(np.full((3, 4), np.nan, np.float32), k=2).indices.tolist() == [[], [], []]

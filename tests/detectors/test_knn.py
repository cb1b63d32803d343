import numpy as np

from detectors.knn import TARGET_RECALL, build_knn_graph, calibrate_nprobe, index_kind, near_copies, torch_knn
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


def test_index_kind_follows_the_size_thresholds():
    assert index_kind(19_999) == "flat"
    assert index_kind(20_000) == "ivf"
    assert index_kind(200_000) == "ivf-pca"
    assert index_kind(500, ivf_min_items=100, project_min_items=400) == "ivf-pca"


def test_ivf_probing_every_cell_is_exact_whatever_the_worker_split():
    vectors = l2_normalize(np.random.default_rng(4).normal(size=(1500, 24)))
    graph = build_knn_graph(vectors, k=6, ivf_min_items=100, nprobe=10_000)
    order, sims = brute_force(vectors, 6)
    assert graph.method.startswith("faiss-ivf") and graph.info["nprobe"] == graph.info["nlist"]
    np.testing.assert_array_equal(graph.indices, order)
    np.testing.assert_allclose(graph.similarities, sims, atol=1e-5)


def planted_copies(seed, n=4000, dim=160, copies=100, noise=0.015):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    base = l2_normalize(centres[rng.integers(20, size=n)] + rng.normal(scale=0.6, size=(n, dim)))
    near = l2_normalize(base[:copies] + rng.normal(scale=noise, size=(copies, dim)))
    return np.vstack([base, near]).astype(np.float32), n


def test_calibrated_ivf_and_pca_rerank_find_planted_near_duplicates_with_exact_similarities():
    vectors, n = planted_copies(5)
    for project_min_items in (10**9, 1000):  # ivf, then ivf-pca (160-d projected to 128, candidates re-ranked)
        graph = build_knn_graph(vectors, k=5, ivf_min_items=1000, project_min_items=project_min_items)
        assert graph.info["kind"] == ("ivf" if project_min_items > n else "ivf-pca")
        assert graph.info["calibrated_recall"] >= TARGET_RECALL and 1 <= graph.info["nprobe"] <= graph.info["nlist"]
        found = sum(graph.indices[n + i, 0] == i for i in range(100))
        assert found >= 99
        rows = np.repeat(np.arange(len(vectors)), 5)
        np.testing.assert_allclose(graph.similarities.ravel(), np.sum(vectors[rows] * vectors[graph.indices.ravel()], axis=1), atol=1e-5)


def test_nprobe_is_the_smallest_reaching_the_recall():
    vectors, n = planted_copies(6)
    rng = np.random.default_rng(0)
    import faiss

    kmeans = faiss.Kmeans(vectors.shape[1], 40, niter=5, spherical=True, seed=0)
    kmeans.train(vectors)
    originals = vectors[:500]
    copies = near_copies(originals, vectors[rng.choice(n, 500)], 0.95)
    nprobe, reached = calibrate_nprobe(kmeans.index, originals, copies, 0.99, 40)
    strict, strict_reached = calibrate_nprobe(kmeans.index, originals, copies, 1.0, 40)
    assert reached >= 0.99 and nprobe <= strict and strict_reached == 1.0  # probing all 40 cells finds every original
    if nprobe > 1:
        fewer, below = calibrate_nprobe(kmeans.index, originals, copies, 1.01, nprobe - 1)  # unreachable: reports nprobe - 1
        assert fewer == nprobe - 1 and below < 0.99
    fixed = build_knn_graph(vectors, k=3, ivf_min_items=1000, nprobe=3)
    assert fixed.info["nprobe"] == 3 and "calibrated_recall" not in fixed.info


def test_near_copies_sit_at_the_cosine_asked():
    items = l2_normalize(np.random.default_rng(7).normal(size=(50, 32))).astype(np.float32)
    copies = near_copies(items, items[::-1], 0.95)
    np.testing.assert_allclose(np.linalg.norm(copies, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.sum(copies * items, axis=1), 0.95, atol=1e-5)
    assert np.isnan(near_copies(items[:1], items[:1], 0.95)).all()  # no direction to move in


def test_torch_path_matches_faiss_flat():
    """``torch_knn`` is what CUDA runs; on CPU it must give the exact graph faiss gives."""
    vectors = l2_normalize(np.random.default_rng(8).normal(size=(300, 16))).astype(np.float32)
    indices, sims = torch_knn(vectors, 6, "cpu")
    order, exact = brute_force(vectors, 5)
    np.testing.assert_array_equal(indices[:, 0], np.arange(300))  # itself first, dropped by build_knn_graph
    np.testing.assert_array_equal(indices[:, 1:], order)
    np.testing.assert_allclose(sims[:, 1:], exact, atol=1e-5)

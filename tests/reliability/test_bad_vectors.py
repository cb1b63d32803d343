"""Bad vectors: NaN, infinite and all-zero embeddings, and fewer items than ``k`` neighbours.

Two layers are checked for each case, directly (no flow):

* the embed runner turns an unusable vector into a per-item reason, which the corrupt check flags,
  while the other items keep their vectors;
* the shared kNN graph and every detector on it (called through ``detectors.run_detectors`` as the
  detect stage does) take the bad rows without crashing, score every item with a finite score, and
  give the good rows exactly the neighbours and scores they have without the bad rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from checks import check_corrupt
from detectors import build_knn_graph, run_detectors
from detectors.knn import usable_rows
from tests.conftest import fashion_images
from winnow.embed import embed_payloads, l2_normalize

KNN_DETECTORS = ["near_duplicate", "outlier", "off_topic"]


def real_vectors() -> tuple[np.ndarray, np.ndarray]:
    """24 vectors with real structure: Fashion-MNIST pixels of three classes (downsampled 7x7)."""
    images = fashion_images(8)
    pixels = np.stack([p.reshape(7, 4, 7, 4).mean(axis=(1, 3)).ravel() for p, _ in images]).astype(np.float32)
    return l2_normalize(pixels - pixels.mean(axis=0)), np.array([label for _, label in images], dtype=object)


def items_for(n: int) -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"i{i}" for i in range(n)], "ordinal": range(n), "content_hash": [f"h{i}" for i in range(n)]})


class PassThrough:
    """Stands in for a model that returns a bad vector: the payload *is* the vector."""

    model_id, modality, device = "pass-through", "image", "cpu"

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def prepare(self, payload: np.ndarray) -> np.ndarray:
        return payload

    def embed(self, prepared: list[np.ndarray]) -> np.ndarray:
        return np.stack(prepared)


def _nan(v):
    v[3, 5] = np.nan
    return {3}


def _inf(v):
    v[3, 0] = np.inf
    v[11, 2] = -np.inf
    return {3, 11}


def _zero(v):
    v[7] = 0.0
    return {7}


def _mixed(v):
    v[0, :] = np.nan
    v[9] = 0.0
    v[17, 4] = np.inf
    return {0, 9, 17}


def _all_nan(v):
    v[:] = np.nan
    return set(range(len(v)))


BAD = {
    "NaN embedding": _nan,
    "inf embedding": _inf,
    "all-zero embedding": _zero,
    "NaN, inf and zero together": _mixed,
    "every embedding NaN": _all_nan,
}


@pytest.mark.parametrize("spoil", list(BAD.values()), ids=list(BAD))
def test_bad_vectors(spoil):
    good, labels = real_vectors()
    vectors = good.copy()
    bad = spoil(vectors)
    n = len(vectors)
    ok = np.array([i not in bad for i in range(n)])

    # embed runner: the bad vectors become reasons, the others are kept in order
    result = embed_payloads(PassThrough(vectors.shape[1]), list(vectors), batch_size=5)
    assert set(result.errors) == bad and result.ok == [i for i in range(n) if ok[i]]
    assert all("cannot be compared" in r and ("NaN" in r or "infinite" in r or "all zeros" in r) for r in result.errors.values())
    np.testing.assert_array_equal(result.vectors, vectors[ok])
    items = items_for(n).assign(error=[result.errors.get(i) for i in range(n)])
    corrupt = check_corrupt(items)
    assert corrupt["flagged"].tolist() == (~ok).tolist()

    # kNN graph: bad rows are nobody's neighbour and have none; good rows as if the bad were absent
    graph = build_knn_graph(vectors, k=5)
    assert (usable_rows(vectors) == ok).all()
    assert (graph.indices[~ok] == -1).all() and not np.isin(np.flatnonzero(~ok), graph.indices).any()
    assert np.isfinite(graph.similarities[ok]).all()
    if ok.sum() > 1:
        alone = build_knn_graph(vectors[ok], k=5)
        np.testing.assert_array_equal(graph.indices[ok], np.flatnonzero(ok)[alone.indices])
        np.testing.assert_allclose(graph.similarities[ok], alone.similarities)

    # detectors: no crash, no failure, every item a finite score; good rows scored as without the bad
    outcome = run_detectors(items_for(n), "image", {"knn": graph, "vectors": vectors}, names=KNN_DETECTORS)
    assert outcome.failed == {} and outcome.skipped == {}
    for name in KNN_DETECTORS:
        findings = outcome.results[name].findings
        assert len(findings) == n and np.isfinite(findings["score"]).all(), name
    if ok.sum() > 1:
        clean = run_detectors(items_for(n)[ok].reset_index(drop=True), "image", {"knn": alone, "vectors": vectors[ok]}, names=["near_duplicate", "outlier"])
        for name in ("near_duplicate", "outlier"):
            got = outcome.results[name].findings[ok].reset_index(drop=True)
            np.testing.assert_allclose(got["score"], clean.results[name].findings["score"], err_msg=name)


@pytest.mark.parametrize("n", [0, 1, 2, 3], ids=["no items", "one item", "two items", "three items (k=10)"])
def test_fewer_items_than_k(n):
    vectors, labels = real_vectors()
    vectors, labels = vectors[:n], labels[:n]
    graph = build_knn_graph(vectors, k=10)
    assert graph.indices.shape == (n, max(0, n - 1))
    outcome = run_detectors(items_for(n), "image", {"knn": graph, "vectors": vectors, "labels": labels})
    assert outcome.failed == {}, outcome.failed
    for name in KNN_DETECTORS:
        findings = outcome.results[name].findings
        assert len(findings) == n and np.isfinite(findings["score"]).all() and not findings["flagged"].any(), name


def test_identical_vectors_more_than_k():
    """Twelve copies of one vector (k = 10): ties everywhere, each item still never its own neighbour."""
    vectors = np.tile(real_vectors()[0][:1], (12, 1))
    graph = build_knn_graph(vectors, k=10)
    assert all(i not in row for i, row in enumerate(graph.indices)) and (graph.indices >= 0).all()
    items = items_for(12).assign(content_hash="same")
    outcome = run_detectors(items, "image", {"knn": graph, "vectors": vectors}, names=KNN_DETECTORS)
    assert outcome.failed == {}
    for name in KNN_DETECTORS:
        assert np.isfinite(outcome.results[name].findings["score"]).all()

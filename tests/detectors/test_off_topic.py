import json

import numpy as np
import pandas as pd
import pytest

from detectors.knn import build_knn_graph
from detectors.off_topic import (
    DEFAULT_MEMBERS,
    EMBEDDING_MEMBERS,
    MEMBERS,
    centroid_score,
    detect_off_topic,
    isolation_forest_score,
    knn_density_score,
    linkage_score,
    member_scores,
)
from tests.detectors.conftest import make_items
from winnow.embed import l2_normalize

STRAYS, BATCH = {"i60", "i61"}, {f"i{i}" for i in range(62, 68)}


@pytest.fixture
def data():
    """60 in-domain points on three clusters, 2 scattered strays and a tight batch of 6 elsewhere."""
    rng = np.random.default_rng(4)
    centres = np.eye(16)[:3] * 4
    domain = [c + rng.normal(scale=0.8, size=(20, 16)) for c in centres]
    strays = rng.normal(size=(2, 16)) * 0.3 + np.eye(16)[[8, 12]] * 4
    batch = np.eye(16)[5] * 4 + rng.normal(scale=0.05, size=(6, 16))
    vectors = l2_normalize(np.vstack(domain + [strays, batch]))
    return vectors, build_knn_graph(vectors, k=5)


def top(ids, scores, n):
    return set(np.asarray(ids)[np.argsort(-np.asarray(scores))[:n]])


def test_scattered_and_clustered_off_topic_outrank_the_domain(data):
    vectors, knn = data
    f = detect_off_topic(make_items(68), vectors=vectors, knn=knn, k=5).findings.set_index("item_id")
    assert set(f["score"].nlargest(8).index) == STRAYS | BATCH
    assert set(f.index[f.flagged]) <= STRAYS | BATCH and f["flagged"].sum() >= 6
    assert f.loc["i65", "reason"].startswith("off-topic: its embedding is unlike the rest")
    assert {"linkage", "mahalanobis", "centroid", "embedding_z", "threshold"} <= set(json.loads(f.loc["i65", "detail"]))


def test_plain_knn_distance_alone_misses_the_batch(data):
    """Why the ensemble exists: the batch members are each other's neighbours."""
    vectors, knn = data
    f = detect_off_topic(make_items(68), vectors=vectors, knn=knn, k=5, members=("knn_distance",)).findings
    assert len(top(f["item_id"], f["score"], 8) & BATCH) < 6


def test_each_member_ranks_what_it_is_built_to_see(data):
    vectors, knn = data
    ids = make_items(68)["item_id"]
    assert top(ids, linkage_score(knn), 8) == STRAYS | BATCH  # the batch joins the bulk late
    assert STRAYS <= top(ids, centroid_score(vectors), 8)  # the strays point away from the mean
    assert STRAYS <= top(ids, isolation_forest_score(vectors, seed=0), 8)  # isolated quickly; the batch is not
    scores = member_scores(make_items(68), vectors=vectors, knn=knn, k=5)
    assert set(scores) == set(EMBEDDING_MEMBERS)  # no texts: no text_format
    assert top(ids, scores["mahalanobis"], 6) == BATCH  # the robust re-fit is not masked by the batch


def test_knn_density_normalises_by_the_neighbours_own_distances():
    """A point at the edge of a sparse cluster is as far from its neighbours as a point off a dense
    one, but only the latter is far *relative to its neighbours*."""
    rng = np.random.default_rng(1)
    dense = rng.normal(scale=0.01, size=(30, 2)) + [1.0, 0.0]
    sparse = rng.normal(scale=0.2, size=(30, 2)) + [-1.0, 0.0]
    vectors = np.vstack([dense, sparse, [[1.0, 0.25]]])
    vectors = np.hstack([vectors, np.ones((61, 1))])  # cosine geometry close to Euclidean here
    knn = build_knn_graph(l2_normalize(vectors), k=5)
    assert np.argmax(knn_density_score(knn, 5)) == 60


def test_text_format_finds_a_batch_of_long_texts_and_headlines():
    rng = np.random.default_rng(0)
    words = "the film is a bold and tender story told with wit and heart but it drags".split()
    reviews = [" ".join(rng.choice(words, size=int(rng.integers(8, 20)))).capitalize() + "." for _ in range(80)]
    long_texts = [" ".join(rng.choice(words, size=120)).capitalize() + "." for _ in range(3)]
    headlines = ["Markets rally as central bank holds rates", "Storm warning for the north coast"]
    texts = reviews + long_texts + headlines
    items = make_items(len(texts)).assign(text=texts)
    vectors = l2_normalize(rng.normal(size=(len(texts), 8)))  # the embedding says nothing here
    knn = build_knn_graph(vectors, k=5)
    f = detect_off_topic(items, vectors=vectors, knn=knn, k=5, members=("text_format",)).findings
    assert top(f["item_id"], f["score"], 5) == {f"i{i}" for i in range(80, 85)}
    detail = json.loads(f.set_index("item_id").loc["i80", "detail"])
    assert detail["length_z"] > 3 and detail["ending_z"] == 0
    assert json.loads(f.set_index("item_id").loc["i83", "detail"])["ending_z"] > 1
    assert "text_format" in member_scores(items, vectors=vectors, knn=knn, k=5)


def test_text_format_is_skipped_without_texts_and_members_are_checked(data):
    vectors, knn = data
    items = make_items(68)
    with_format = detect_off_topic(items, vectors=vectors, knn=knn, k=5).findings
    without = detect_off_topic(items, vectors=vectors, knn=knn, k=5, members=tuple(m for m in DEFAULT_MEMBERS if m != "text_format")).findings
    pd.testing.assert_series_equal(with_format["score"], without["score"])
    with pytest.raises(ValueError, match="members must come from"):
        detect_off_topic(items, vectors=vectors, knn=knn, members=("vibes",))
    with pytest.raises(ValueError, match="needs an embedding member"):
        detect_off_topic(items, vectors=vectors, knn=knn, members=("text_format",))
    assert set(MEMBERS) == set(EMBEDDING_MEMBERS) | {"text_format"}


def test_tiny_runs_score_zero():
    vectors = l2_normalize(np.random.default_rng(0).normal(size=(3, 4)))
    f = detect_off_topic(make_items(3), vectors=vectors, knn=build_knn_graph(vectors, k=2)).findings
    assert (f["score"] == 0).all() and not f["flagged"].any()

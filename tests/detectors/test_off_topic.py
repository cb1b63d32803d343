import json

import numpy as np
import pytest

from detectors.knn import build_knn_graph
from detectors.off_topic import MEMBERS, detect_off_topic
from tests.detectors.conftest import make_items
from winnow.embed import l2_normalize


@pytest.fixture
def data():
    """60 in-domain points on three clusters, 2 scattered strays and a tight batch of 6 elsewhere."""
    rng = np.random.default_rng(4)
    centres = np.eye(16)[:3] * 4
    domain = [c + rng.normal(scale=0.8, size=(20, 16)) for c in centres]
    strays = rng.normal(size=(2, 16)) * 0.3 + np.eye(16)[[8, 12]] * 4
    batch = np.eye(16)[5] * 4 + rng.normal(scale=0.05, size=(6, 16))
    vectors = l2_normalize(np.vstack(domain + [strays, batch]))
    return vectors, {f"i{i}" for i in range(60, 68)}


def test_scattered_and_clustered_off_topic_outrank_the_domain(data):
    vectors, planted = data
    f = detect_off_topic(make_items(68), vectors=vectors, knn=build_knn_graph(vectors, k=5), k=5).findings.set_index("item_id")
    assert set(f["score"].nlargest(8).index) == planted
    assert set(f.index[f.flagged]) <= planted and f["flagged"].sum() >= 6
    reason = f.loc["i65", "reason"]
    assert reason.startswith("unlike the rest of the dataset")


def test_plain_knn_distance_alone_misses_the_batch(data):
    """Why the ensemble exists: the batch members are each other's neighbours."""
    vectors, planted = data
    f = detect_off_topic(make_items(68), vectors=vectors, knn=build_knn_graph(vectors, k=5), k=5, members=("knn_distance",)).findings
    top = set(f.nlargest(8, "score")["item_id"])
    assert len(top & {f"i{i}" for i in range(62, 68)}) < 6


def test_every_member_reports_its_score(data):
    vectors, _ = data
    f = detect_off_topic(make_items(68), vectors=vectors, knn=build_knn_graph(vectors, k=5), members=MEMBERS, combine="mean").findings
    assert set(MEMBERS) <= set(json.loads(f["detail"].iloc[0]))
    with pytest.raises(ValueError, match="members must come from"):
        detect_off_topic(make_items(68), vectors=vectors, knn=build_knn_graph(vectors, k=5), members=("vibes",))

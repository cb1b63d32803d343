import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from detectors.knn import build_knn_graph
from detectors.label_error import (
    detect_label_error,
    noise_adjusted_margin,
    out_of_fold_probabilities,
    refit_mask,
)
from tests.detectors.conftest import make_items
from winnow.embed import l2_normalize


def three_classes(seed=0, per_class=30):
    rng = np.random.default_rng(seed)
    centres = np.eye(16)[:3] * 4
    vectors = l2_normalize(np.vstack([c + rng.normal(scale=0.7, size=(per_class, 16)) for c in centres]))
    labels = np.array(["cat"] * per_class + ["dog"] * per_class + ["owl"] * per_class, dtype=object)
    return vectors, labels


def test_flipped_labels_rank_first_with_the_right_suggestion():
    vectors, labels = three_classes()
    labels[[3, 40]] = ["owl", "cat"]  # a cat called owl, a dog called cat
    items = make_items(len(labels))
    result = detect_label_error(items, vectors=vectors, labels=labels, knn=build_knn_graph(vectors, k=10))
    f = result.findings.set_index("item_id")
    assert set(f["score"].nlargest(2).index) == {"i3", "i40"}
    assert f.loc["i3", "flagged"] and f.loc["i40", "flagged"]
    assert f.loc["i3", "suggested_label"] == "cat" and f.loc["i40", "suggested_label"] == "dog"
    assert labels[int(f.loc["i3", "related_item_id"][1:])] == "cat"  # nearest item carrying the suggestion
    assert "labelled 'owl' but the data supports 'cat'" in f.loc["i3", "reason"]
    assert 0 <= json.loads(f.loc["i3", "detail"])["p_given"] < 0.5
    assert f["flagged"].sum() <= 4


def test_unlabelled_items_are_not_scored_and_one_class_gives_nothing():
    vectors, labels = three_classes()
    labels[:5] = None
    items = make_items(len(labels))
    f = detect_label_error(items, vectors=vectors, labels=labels, knn=build_knn_graph(vectors, k=5)).findings
    assert len(f) == len(labels) - 5 and "i0" not in set(f.item_id)
    single = np.array(["cat"] * len(labels), dtype=object)
    assert detect_label_error(items, vectors=vectors, labels=single, knn=build_knn_graph(vectors, k=5)).findings.empty


def test_probe_fit_on_a_capped_sample_still_ranks_flips_first():
    """Past ``max_fit_items`` the PCA and each fold's probe see a random draw; every item is still
    predicted by a model that never saw it, and the flips still come out on top."""
    vectors, labels = three_classes(seed=3, per_class=80)
    labels[[5, 90, 170]] = ["dog", "owl", "cat"]
    capped, classes = out_of_fold_probabilities(vectors, labels, folds=5, max_fit_items=60)
    full, _ = out_of_fold_probabilities(vectors, labels, folds=5)
    y = np.searchsorted(classes, labels)
    for probs in (capped, full):
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
        given = probs[np.arange(len(y)), y]
        assert set(np.argsort(given)[:3]) == {5, 90, 170}
    assert not np.allclose(capped, full)  # the cap did change what the probe was fit on


def test_the_pixels_of_images_give_a_second_probe():
    """Embeddings that barely separate the classes hide a flip; the thumbnails' pixels show it."""
    rng = np.random.default_rng(4)
    per_class = 60
    pictures = rng.random((3, 12, 12)) * 255
    thumbnails = np.vstack([np.clip(p + rng.normal(scale=25, size=(per_class, 12, 12)), 0, 255) for p in pictures])
    vectors = l2_normalize(np.vstack([np.eye(16)[c] * 0.5 + rng.normal(size=(per_class, 16)) for c in range(3)]))
    labels = np.repeat(np.array(["a", "b", "c"], dtype=object), per_class)
    flipped = [7, per_class + 15, 2 * per_class + 21]
    labels[flipped] = ["b", "c", "a"]
    items, knn = make_items(len(labels)), build_knn_graph(vectors, k=10)
    alone = detect_label_error(items, vectors=vectors, labels=labels, knn=knn).findings.set_index("item_id")["score"]
    both = detect_label_error(items, vectors=vectors, labels=labels, knn=knn, thumbnails=thumbnails).findings.set_index("item_id")
    names = [f"i{i}" for i in flipped]
    assert set(both["score"].nlargest(3).index) == set(names)
    assert set(alone.nlargest(3).index) != set(names)
    assert both.loc[names, "suggested_label"].tolist() == ["a", "b", "c"]


def test_the_words_of_texts_give_a_second_probe():
    rng = np.random.default_rng(2)
    good, bad = ["superb", "moving", "brilliant", "tender", "witty"], ["dull", "clumsy", "tedious", "flat", "shallow"]
    texts = [" ".join(rng.choice(good if n < 30 else bad, size=4)) + " film" for n in range(60)]
    labels = np.array(["fresh"] * 30 + ["rotten"] * 30, dtype=object)
    labels[[4, 44]] = ["rotten", "fresh"]
    vectors = l2_normalize(rng.normal(size=(60, 8)))  # embeddings that know nothing about the labels
    items = make_items(60).assign(text=texts)
    f = detect_label_error(items, vectors=vectors, labels=labels, knn=build_knn_graph(vectors, k=5)).findings.set_index("item_id")
    assert set(f["score"].nlargest(2).index) == {"i4", "i44"}
    assert f.loc["i4", "suggested_label"] == "fresh" and f.loc["i44", "suggested_label"] == "rotten"


def test_a_swap_the_labels_keep_making_is_suspected_more_than_a_rare_one():
    """Confident learning's joint shows many items labelled ``a`` that look like ``b`` (a
    systematic b-to-a swap) and none that look like ``c``: of two items labelled ``a`` that the
    probes find equally doubtful, the one torn between ``a`` and ``b`` is the likelier error."""
    sure, fair = np.eye(3) * 0.85 + 0.05, np.eye(3) * 0.55 + 0.15
    clean = np.vstack([np.repeat([sure[c], fair[c]], 10, axis=0) for c in range(3)])  # 20 per class, 10 sure, 10 fair
    swapped = np.tile([0.05, 0.9, 0.05], (10, 1))  # labelled a, look like b
    doubtful = np.array([[0.40, 0.45, 0.15], [0.40, 0.15, 0.45]])  # labelled a: a-or-b, a-or-c
    probs = np.vstack([clean, swapped, doubtful])
    y = np.r_[np.repeat([0, 1, 2], 20), np.zeros(10, int), 0, 0]
    thresholds = np.array([probs[y == c, c].mean() for c in range(3)])
    plain = probs[[-2, -1]].max(axis=1) - probs[[-2, -1], 0]
    assert plain[0] == plain[1]  # the probes alone cannot tell them apart
    adjusted = noise_adjusted_margin(probs, y, thresholds)
    assert adjusted[-2] > adjusted[-1] + 0.1
    assert (adjusted[:60] < -0.5).all() and (adjusted[60:70] > 0.5).all()  # clean items stay clean, swaps stay suspect


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_refitting_without_the_flagged_items_ranks_systematic_flips_better(seed):
    """30 % of class ``a`` is called ``b``: the first probe learns a boundary pulled into ``a`` and
    finds many flips consistent with it; fit again without the items it flagged, it ranks them better."""
    rng = np.random.default_rng(seed)
    n = 150
    vectors = rng.normal(size=(2 * n, 8)).astype(np.float32)
    vectors[:n, 0] -= 1.0
    vectors[n:, 0] += 1.0
    labels = np.array(["a"] * n + ["b"] * n, dtype=object)
    flips = rng.choice(n, size=45, replace=False)
    labels[flips] = "b"
    flipped = np.isin(np.arange(2 * n), flips)
    items, knn = make_items(2 * n), build_knn_graph(l2_normalize(vectors), k=10)
    once = detect_label_error(items, vectors=vectors, labels=labels, knn=knn, refit=False).findings
    refit = detect_label_error(items, vectors=vectors, labels=labels, knn=knn).findings
    assert average_precision_score(flipped, refit["score"]) > average_precision_score(flipped, once["score"]) + 0.03
    first_fit_only = out_of_fold_probabilities(vectors, labels, folds=5)[0]  # refit=False is the first fit's verdict
    given = detect_label_error(items, vectors=vectors, labels=labels, knn=knn, pred_probs=first_fit_only).findings
    np.testing.assert_allclose(given["score"], once["score"])


def test_the_refit_keeps_every_item_of_a_class_the_flags_would_nearly_empty():
    y = np.r_[np.zeros(50, int), np.ones(12, int)]
    flagged = np.zeros(62, bool)
    flagged[[0, 1, 50, 51, 52]] = True
    keep = refit_mask(flagged, y, folds=5)
    assert not keep[[0, 1]].any() and keep[2:50].all()  # class 0 keeps 48 ≥ 2 per fold
    assert keep[50:].all()  # class 1 would keep 9 < 10: all of it stays
    assert refit_mask(np.zeros(62, bool), y, folds=5) is None

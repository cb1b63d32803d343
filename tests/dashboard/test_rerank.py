"""Active-learning re-ranking and the replayed review (detectors/rerank.py), on hand-built clusters."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.rerank import detector_rank, rerank, review_features, reviews_to_find, simulate_review


def _clusters(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectors in two clusters (the 20 % in cluster A are the real issues) and detector scores that
    only weakly know it."""
    rng = np.random.default_rng(seed)
    issue = rng.random(n) < 0.2
    centre = np.where(issue[:, None], np.eye(16)[0], np.eye(16)[1])
    vectors = centre + rng.normal(0, 0.3, (n, 16))
    scores = 0.15 * issue + rng.random(n)
    return vectors, scores, issue


def test_no_model_until_two_confirmed_and_two_dismissed():
    vectors, scores, _ = _clusters()
    outcomes = np.full(len(scores), -1.0)
    outcomes[[0, 1, 2]] = [1, 0, 0]
    result = rerank(review_features(vectors), scores, outcomes)
    assert not result.active and result.weight == 0.0
    assert np.array_equal(np.argsort(result.scores, kind="stable"), np.argsort(detector_rank(scores), kind="stable"))


def test_decisions_that_follow_the_embedding_move_the_model_in():
    vectors, scores, issue = _clusters()
    outcomes = np.full(len(scores), -1.0)
    seen = np.r_[np.flatnonzero(issue)[:6], np.flatnonzero(~issue)[:6]]
    outcomes[seen] = issue[seen]
    result = rerank(review_features(vectors), scores, outcomes)
    assert result.active and result.weight > 0.5 and result.trained_on == 12
    undecided = np.flatnonzero(outcomes < 0)
    top = undecided[np.argsort(-result.scores[undecided])][: int(issue[undecided].sum())]
    assert issue[top].mean() > 0.9  # the re-ranked front of the queue is the issue cluster


def test_decisions_the_embedding_cannot_predict_leave_the_detector_in_charge():
    vectors, scores, _ = _clusters()
    outcomes = np.full(len(scores), -1.0)
    outcomes[:40] = scores[:40] > np.median(scores[:40])  # the reviewer agrees with the score, whatever the cluster
    result = rerank(review_features(vectors), scores, outcomes)
    assert result.active and result.weight == 0.0
    assert np.array_equal(result.scores, detector_rank(scores))


def test_the_replayed_review_finds_the_clustered_issues_sooner():
    vectors, scores, issue = _clusters()
    vectors, scores, issue = vectors[:150], scores[:150], issue[:150]
    curve = simulate_review(review_features(vectors), scores, issue, batch=15)
    assert curve.issues == issue.sum() and curve.detector[-1] == curve.reranked[-1]
    assert curve.saved() > 20  # the detector alone needs most of the queue
    assert reviews_to_find(curve.reranked, curve.issues) == reviews_to_find(curve.detector, curve.issues) - curve.saved()


def test_reviews_to_find_and_bad_input():
    assert reviews_to_find(np.array([0, 1, 1, 2]), 2) == 4
    assert reviews_to_find(np.array([0, 1, 1, 2]), 0) == 0
    assert reviews_to_find(np.array([0, 1]), 5) == 2
    with pytest.raises(ValueError, match="row-aligned"):
        rerank(np.zeros((3, 2)), np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="batch"):
        simulate_review(np.zeros((3, 2)), np.zeros(3), np.zeros(3, bool), batch=0)

"""Re-rank a review queue with the reviewer's own decisions (active learning), and measure what it saves.

A detector ranks every item of one issue type by its score. Once a reviewer has judged some of
them — *confirmed* (the issue is real) or *dismissed* (it is not) — those decisions say something
about this dataset that the detector's generic score does not. In the spirit of Astronomaly
(Lochner & Bassett, 2021), which retrains a small model on a reviewer's labels and folds its
prediction back into the anomaly score, :func:`rerank`:

1. reduces the unit-normalised embeddings to at most :data:`FEATURE_DIM` principal components
   (:func:`review_features`, once per queue);
2. fits a logistic regression on the decided items (confirmed = 1, dismissed = 0; classes
   balanced, L2-regularised) once both classes have at least :data:`MIN_PER_CLASS` examples;
3. blends its probability ``p`` with the detector's rank ``q`` (the score's percentile in the
   queue, in (0, 1]) as ``w · p + (1 − w) · q``. The weight is *earned*: ``w`` is the value of
   :data:`WEIGHTS` whose blend of out-of-fold probabilities ranks the decided items best (average
   precision, stratified folds), ties going to the smaller ``w``. Where the decisions are not
   predictable from the embeddings (a label error is rarely a region of embedding space) the
   model gets ``w = 0`` and the detector's order stands; where they are (off-topic items cluster)
   it takes over.

:func:`simulate_review` replays a review to measure the gain honestly: items are read ``batch`` at
a time; after each batch the model is retrained on exactly the items read so far and re-ranks the
unread ones. Given the true outcome of each item (the reviewer's decisions, or a benchmark's
planted truth) it returns how many issues were found after each review in the detector's order and
in the re-ranked order; :meth:`ReviewCurve.saved` turns that into "reviews saved to find the same
number of issues".

Pure functions: arrays in, arrays out, no I/O; everything random is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

MIN_PER_CLASS = 2
"""Confirmed and dismissed decisions each needed before the model is trained."""

FEATURE_DIM = 64
"""Principal components of the embeddings the model sees (a few dozen decisions cannot fit 1,280)."""

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The model weights ``w`` tried on held-out decisions."""

MAX_FOLDS = 3
DEFAULT_BATCH = 10
"""Items a simulated reviewer reads between two retrainings."""


@dataclass(frozen=True)
class Rerank:
    """The blended ranking score of every row (higher = review sooner) and how it was made."""

    scores: np.ndarray
    probability: np.ndarray | None
    """The model's P(confirmed) per row, ``None`` while it cannot be trained yet."""
    weight: float
    """``w``: the model's share in the blend, chosen on held-out decisions (0 until it is trained)."""
    trained_on: int

    @property
    def active(self) -> bool:
        """Whether the model could be trained on the decisions."""
        return self.probability is not None


def detector_rank(scores: np.ndarray) -> np.ndarray:
    """Each score's percentile among ``scores`` in (0, 1] (ties share their average rank)."""
    scores = np.asarray(scores, np.float64)
    if len(scores) == 0:
        return scores
    return rankdata(scores, method="average") / len(scores)


def review_features(vectors: np.ndarray, *, dim: int = FEATURE_DIM, seed: int = 0) -> np.ndarray:
    """The unit-normalised ``vectors`` projected on their first ``dim`` principal components."""
    vectors = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    dim = min(dim, unit.shape[1], max(len(unit) - 1, 1))
    if dim >= unit.shape[1] or len(unit) < 3:
        return unit
    return PCA(dim, random_state=seed).fit_transform(unit)


def _model() -> LogisticRegression:
    return LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)


def _earned_weight(features: np.ndarray, outcomes: np.ndarray, rank: np.ndarray, seed: int) -> float:
    """The :data:`WEIGHTS` value whose blend ranks held-out decisions best (see the module docstring)."""
    folds = min(MAX_FOLDS, int(np.bincount(outcomes).min()))
    if folds < 2:
        return 0.0
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    held_out = cross_val_predict(_model(), features, outcomes, cv=split, method="predict_proba")[:, 1]
    quality = [average_precision_score(outcomes, w * held_out + (1 - w) * rank) for w in WEIGHTS]
    return WEIGHTS[int(np.argmax(np.round(quality, 6)))]


def rerank(features: np.ndarray, detector_scores: np.ndarray, outcomes: np.ndarray, *, seed: int = 0) -> Rerank:
    """Blend a model trained on the decided rows with the detector's rank (see the module docstring).

    ``features`` (n, d) — from :func:`review_features` —, ``detector_scores`` (n,) and ``outcomes``
    (n,) are row-aligned; ``outcomes`` is 1 for confirmed, 0 for dismissed and -1 (or NaN) for
    undecided. Every row gets a score, so the caller can order the undecided ones. Raises
    ``ValueError`` on misaligned inputs.
    """
    features = np.asarray(features, np.float64)
    rank = detector_rank(detector_scores)
    outcomes = np.nan_to_num(np.asarray(outcomes, np.float64), nan=-1.0)
    if not (len(features) == len(rank) == len(outcomes)):
        raise ValueError(f"rerank needs row-aligned inputs; got {len(features)} rows of features, {len(rank)} scores, {len(outcomes)} outcomes.")
    decided = outcomes >= 0
    known = outcomes[decided].astype(int)
    if int((known == 1).sum()) < MIN_PER_CLASS or int((known == 0).sum()) < MIN_PER_CLASS:
        return Rerank(rank, None, 0.0, 0)
    weight = _earned_weight(features[decided], known, rank[decided], seed)
    probability = _model().fit(features[decided], known).predict_proba(features)[:, 1]
    return Rerank(weight * probability + (1 - weight) * rank, probability, weight, int(decided.sum()))


@dataclass(frozen=True)
class ReviewCurve:
    """Issues found after each review, reading in the detector's order and in the re-ranked order."""

    detector: np.ndarray
    reranked: np.ndarray
    batch: int

    @property
    def issues(self) -> int:
        """How many real issues the replayed items hold."""
        return int(self.detector[-1]) if len(self.detector) else 0

    def saved(self, target: int | None = None) -> int:
        """Reviews the re-ranked order saves to find ``target`` issues (default: all of them);
        negative when re-ranking costs reviews."""
        target = self.issues if target is None else target
        return reviews_to_find(self.detector, target) - reviews_to_find(self.reranked, target)


def reviews_to_find(found: np.ndarray, target: int) -> int:
    """Reviews needed until ``found`` (cumulative issues after each review) reaches ``target``
    (0 for a target of 0; all of them when it is never reached)."""
    if target <= 0:
        return 0
    reached = np.flatnonzero(np.asarray(found) >= target)
    return int(reached[0]) + 1 if len(reached) else len(found)


def simulate_review(features: np.ndarray, detector_scores: np.ndarray, truth: np.ndarray, *, batch: int = DEFAULT_BATCH) -> ReviewCurve:
    """Replay a review of these rows with :func:`rerank` retrained after every ``batch`` reads.

    ``features`` come from :func:`review_features`; ``truth`` holds each row's outcome (True = a
    real issue). The detector's order is by score
    (ties broken by row order); the re-ranked review reads its first batch in the same order, then
    always the unread rows the model trained on everything read so far ranks highest.
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}.")
    truth = np.asarray(truth, bool)
    scores = np.asarray(detector_scores, np.float64)
    n = len(truth)
    detector_order = np.lexsort((np.arange(n), -scores))
    outcomes = np.full(n, -1.0)
    read: list[int] = []
    unread = np.ones(n, bool)
    while len(read) < n:
        ranking = rerank(features, scores, outcomes).scores if len(read) else detector_rank(scores)
        candidates = np.flatnonzero(unread)
        order = candidates[np.lexsort((candidates, -ranking[candidates]))]
        for row in order[:batch]:
            read.append(int(row))
            unread[row] = False
            outcomes[row] = float(truth[row])
    return ReviewCurve(np.cumsum(truth[detector_order]), np.cumsum(truth[np.array(read, int)]), batch)

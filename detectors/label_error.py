"""Label errors: items whose given label the data does not support.

Two independent views of each item are combined, the probes and the neighbours, and the probes
are fit twice:

* **probes** — out-of-fold predicted probabilities of a cross-validated logistic regression on the
  embeddings (PCA-reduced), so no item is judged by a model that saw it; confident learning's
  per-class thresholds (the mean self-confidence of each class) decide which other class the data
  supports. On large sets the PCA and each fold's probe are fit on at most :data:`MAX_FIT_ITEMS`
  items drawn at random from the other folds (every item is still predicted by a model that never
  saw it), which keeps the probe's cost flat beyond that size; BLAS runs single-threaded for it,
  since its matrices are too small for threads to pay and a busy machine makes them stall.
  When the item's own content offers a second, independent view, a second probe reads it and the
  two probes' probabilities are averaged, so that their mistakes, which differ, partly cancel:
  for images, the same logistic regression on the pixels of the measured thumbnails; for texts, a
  multinomial naive Bayes on the words and word pairs (naive Bayes is the strong classic on short
  texts such as review snippets, and the sentence embedding it complements was not trained for
  what the labels mean). On the quality benchmark the second probe raised label-error AP from
  0.867 to 0.897 on images and from 0.274 to 0.363 on texts.
* **the probes' second fit, without the suspects** — the probes learn from the given labels, errors included,
  and systematic flips (coat called pullover again and again) pull their boundary toward the wrong
  class, so that many flips look consistent with it. Once the first fit has flagged items, the
  probes are fit again on the others (:func:`refit_mask`; every item is still predicted out of
  fold), as cleanlab's ``CleanLearning`` retrains on the data confident learning keeps. Averaged over
  three fold seeds on the quality benchmark it raised label-error AP from 0.910 to 0.913 on images,
  from 0.370 to 0.383 on texts and from 0.857 to 0.904 on the table, for twice the probes' time.
* **its neighbours** — the similarity-weighted share of its kNN neighbours that carry another
  label (NoiseRank-style), which catches errors the linear probe fits.

Score = ``((margin + noise-adjusted margin) / 2 + 1 + disagreement / 2) / 2.5`` in [0, 1], where
``margin`` is the probes' probability of the most likely *other* class minus that of the given
class (cleanlab's normalised margin, negated so that higher = worse), the noise-adjusted margin the
same after Bayes' rule with the label-noise process that confident learning's joint estimates
(:func:`noise_adjusted_margin`: a swap the labels keep making is a priori likelier than a rare
one), and ``disagreement`` the neighbours' share. On the quality benchmark the margin ranked flips
better than ``1 - p(given)``, half a weight of neighbour disagreement improved both the image and
the text sets, and averaging in the noise-adjusted margin raised label-error AP from 0.897 to 0.910
on images (class-conditional flips such as coat/pullover: AP 0.73 before), from 0.363 to 0.365 on
texts and from 0.856 to 0.865 on the table (gains of +0.012, +0.003 and +0.007 with two other fold
seeds); it costs a ``classes × classes`` count, a few percent of the detector's time. An item is
flagged when confident learning finds another class above its threshold while the given class is
below its own, and the neighbours agree it is wrong (disagreement ≥ ``min_disagreement``); the
same rule, on the first fit, picks the items the second fit leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import MultinomialNB
from threadpoolctl import threadpool_limits

from detectors.image_match import pixel_vectors
from detectors.knn import KnnGraph
from detectors.result import Detection
from winnow.findings import make_findings

PCA_DIM = 128
MAX_FIT_ITEMS = 50_000
"""The PCA and each fold's probe are fit on at most this many items (a random draw)."""
WORD_NGRAMS = (1, 2)
"""The text probe counts words and pairs of adjacent words."""
NAIVE_BAYES_ALPHA = 0.5
NOISE_PRIOR_SHRINKAGE = 0.5
"""Weight of the know-nothing prior in the estimated label-noise process (see :func:`noise_adjusted_margin`)."""


def out_of_fold_probabilities(
    vectors: np.ndarray, labels: np.ndarray, *, folds: int, seed: int = 0, max_fit_items: int = MAX_FIT_ITEMS,
    train_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """``(n, classes)`` probabilities from a model that never saw the item, and the class names.

    ``train_mask`` (optional): only these items are fit on; every item is still predicted."""
    classes, y = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(seed)
    with threadpool_limits(1, user_api="blas"):
        dim = min(PCA_DIM, vectors.shape[1], vectors.shape[0] - 1)
        if dim < vectors.shape[1]:
            pca = PCA(dim, random_state=seed).fit(_at_most(vectors, max_fit_items, rng))
            reduced = pca.transform(vectors)
        else:
            reduced = vectors
        folds = max(2, min(folds, int(np.bincount(y).min())))
        probs = np.zeros((len(y), len(classes)))
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(reduced, y):
            fit = _fit_rows(train, train_mask, max_fit_items, rng)
            probe = LogisticRegression(max_iter=1000, C=1.0).fit(reduced[fit], y[fit])
            probs[np.ix_(test, probe.classes_)] = probe.predict_proba(reduced[test])
    return probs, [str(c) for c in classes]


def word_probabilities(
    texts: list[str], labels: np.ndarray, *, folds: int, seed: int = 0, max_fit_items: int = MAX_FIT_ITEMS, train_mask: np.ndarray | None = None,
) -> np.ndarray | None:
    """Out-of-fold class probabilities (columns in sorted label order) of a multinomial naive Bayes
    on the texts' word and word-pair presence; the vocabulary is read from all texts (no labels).
    ``train_mask`` as in :func:`out_of_fold_probabilities`. ``None`` when no text has a word."""
    classes, y = np.unique(labels, return_inverse=True)
    try:
        counts = CountVectorizer(ngram_range=WORD_NGRAMS, binary=True).fit_transform(texts)
    except ValueError:  # scikit-learn's "empty vocabulary": no text has a word of two letters or more
        return None
    rng = np.random.default_rng(seed)
    folds = max(2, min(folds, int(np.bincount(y).min())))
    probs = np.zeros((len(y), len(classes)))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        fit = _fit_rows(train, train_mask, max_fit_items, rng)
        model = MultinomialNB(alpha=NAIVE_BAYES_ALPHA).fit(counts[fit], y[fit])
        probs[np.ix_(test, model.classes_)] = model.predict_proba(counts[test])
    return probs


def _fit_rows(train: np.ndarray, train_mask: np.ndarray | None, limit: int, rng: np.random.Generator) -> np.ndarray:
    """The fold's training rows a probe is fit on: those in ``train_mask``, at most ``limit`` of them."""
    return _at_most(train if train_mask is None else train[train_mask[train]], limit, rng)


def _at_most(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return rows if len(rows) <= limit else rows[np.sort(rng.choice(len(rows), size=limit, replace=False))]


def neighbour_disagreement(y: np.ndarray, knn: KnnGraph, k: int) -> np.ndarray:
    """Similarity-weighted share of each item's ``k`` neighbours whose label differs from its own."""
    cols = knn.indices[:, :k]
    valid = cols >= 0
    weights = np.where(valid, np.clip(knn.similarities[:, :k], 0, None), 0.0)
    differs = (y[np.where(valid, cols, 0)] != y[:, None]) & valid
    total = weights.sum(axis=1)
    return np.divide((weights * differs).sum(axis=1), total, out=np.zeros(len(y)), where=total > 0)


def detect_label_error(
    items: pd.DataFrame, *, vectors: np.ndarray, labels: np.ndarray, knn: KnnGraph, pred_probs: np.ndarray | None = None,
    thumbnails: np.ndarray | None = None, folds: int = 5, k: int = 10, min_disagreement: float = 0.5, refit: bool = True,
) -> Detection:
    """Score every labelled item; ``items``, ``vectors``, ``labels``, ``knn``, ``pred_probs`` and
    ``thumbnails`` are row-aligned.

    ``pred_probs`` (optional): the caller's out-of-fold class probabilities, one column per class
    in sorted order of the label values (cleanlab's convention); they replace the built-in probes.
    ``thumbnails`` (optional, images) and a ``text`` column in ``items`` (texts) feed the second
    probe (see the module docstring). ``refit`` fits the probes a second time without the items
    the first fit flagged (twice the probes' time; see the module docstring). Items without a label
    are not scored. Needs at least two classes with two items each.
    """
    labels = np.asarray(labels, dtype=object)
    has_label = pd.notna(labels)
    ids = items["item_id"].astype(str).to_numpy()
    if has_label.sum() < 4 or len(set(labels[has_label])) < 2:
        return Detection(make_findings([], "label_error", [], [], [], []))
    given_labels = labels[has_label].astype(str)
    sorted_classes, y = np.unique(given_labels, return_inverse=True)
    classes = sorted_classes.tolist()
    y_all = np.full(len(labels), -1)
    y_all[has_label] = y
    disagreement = neighbour_disagreement(y_all, knn, k)[has_label]
    if pred_probs is None:
        labelled_vectors = vectors if has_label.all() else vectors[has_label]  # no copy of a million vectors when every item is labelled

        def probe(train_mask: np.ndarray | None = None) -> np.ndarray:
            probs = out_of_fold_probabilities(labelled_vectors, given_labels, folds=folds, train_mask=train_mask)[0]
            second = second_view_probabilities(items, thumbnails, has_label, given_labels, folds, train_mask)
            return probs if second is None else (probs + second) / 2.0

        probs_all = probe()
        keep = refit_mask(_Verdict.of(probs_all, y, disagreement, min_disagreement).flagged, y, folds) if refit else None
        if keep is not None:
            probs_all = probe(keep)
    else:
        probs_all = _checked_probabilities(pred_probs, len(labels), len(classes))[has_label]
    verdict = _Verdict.of(probs_all, y, disagreement, min_disagreement)
    given, suggested, flagged, thresholds = verdict.given, verdict.suggested, verdict.flagged, verdict.thresholds
    n = len(y)
    margin = probs_all[np.arange(n), suggested] - given
    scores = ((margin + noise_adjusted_margin(probs_all, y, thresholds)) / 2.0 + 1.0 + 0.5 * disagreement) / 2.5

    sub = np.flatnonzero(has_label)
    related = _nearest_with_label(suggested, y_all, knn, sub, ids)
    reasons = np.full(n, None, dtype=object)
    reasons[flagged] = [
        f"labelled {classes[y[i]]!r} but the data supports {classes[suggested[i]]!r}: p({classes[y[i]]}) = {given[i]:.2f} "
        f"(class threshold {thresholds[y[i]]:.2f}), {disagreement[i]:.0%} of its neighbours disagree"
        for i in np.flatnonzero(flagged)
    ]
    details = pd.DataFrame({"p_given": given, "p_suggested": probs_all[np.arange(n), suggested], "max_probability": probs_all.max(axis=1),
                            "neighbour_disagreement": disagreement, "class_threshold": thresholds[y]})
    names = np.array(classes, dtype=object)
    return Detection(
        make_findings(
            ids[sub], "label_error", scores, flagged, reasons, details, related_item_ids=related,
            suggested_labels=np.where(flagged | (probs_all.argmax(axis=1) != y), names[suggested], None),
        )
    )


@dataclass(frozen=True)
class _Verdict:
    """Confident learning's reading of the probes' probabilities for each item."""

    given: np.ndarray
    """The probability of the given class."""
    suggested: np.ndarray
    """The likeliest other class."""
    thresholds: np.ndarray
    """Per class: the mean probability its items give it (their self-confidence)."""
    flagged: np.ndarray
    """Another class is above its threshold, the given one below its own, and the neighbours agree."""

    @classmethod
    def of(cls, probs: np.ndarray, y: np.ndarray, disagreement: np.ndarray, min_disagreement: float) -> _Verdict:
        n, n_classes = probs.shape
        given = probs[np.arange(n), y]
        thresholds = np.array([probs[y == c, c].mean() if (y == c).any() else 1.0 for c in range(n_classes)])
        others = np.where(np.arange(n_classes)[None, :] == y[:, None], -np.inf, probs)
        confident_other = (others >= thresholds[None, :]).any(axis=1)
        flagged = confident_other & (given < thresholds[y]) & (disagreement >= min_disagreement)
        return cls(given, others.argmax(axis=1), thresholds, flagged)


def refit_mask(flagged: np.ndarray, y: np.ndarray, folds: int) -> np.ndarray | None:
    """The items the probes are fit on again once the first fit has flagged some: all but the
    flagged, except in a class the flags would leave with fewer than two items per fold (it keeps
    all its items). ``None`` when nothing is flagged, so there is nothing to refit."""
    if not flagged.any():
        return None
    keep = ~flagged
    too_few = np.bincount(y[keep], minlength=int(y.max()) + 1) < 2 * folds
    return keep | too_few[y]


def noise_adjusted_margin(probs: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The normalised margin (higher = worse) of each item's class probabilities after Bayes' rule
    with the estimated label-noise process: ``p(true = j | item, given = g) ∝ p_j · T[g, j]``.

    ``T[g, j] = P(given = g | true = j)`` is read off confident learning's confident joint: every
    item with some class at or above that class's threshold counts once under (its given class,
    the likeliest such class), and each column is normalised over the given classes. Label noise
    that keeps swapping the same two classes (coat and pullover) thus makes that swap likely a
    priori, and its flips rise above items the probes merely find ambiguous. ``T`` is shrunk by
    :data:`NOISE_PRIOR_SHRINKAGE` toward ``1 / classes`` (a prior that knows nothing, under which
    this margin is the plain one), so that a handful of counts on a small set cannot decide.
    """
    n, n_classes = probs.shape
    above = probs >= thresholds[None, :]
    confident = above.any(axis=1)
    likeliest = np.where(above, probs, -np.inf).argmax(axis=1)
    joint = np.bincount(y[confident] * n_classes + likeliest[confident], minlength=n_classes * n_classes).reshape(n_classes, n_classes).astype(float)
    per_true = joint.sum(axis=0, keepdims=True)
    estimated = np.divide(joint, per_true, out=np.full_like(joint, 1.0 / n_classes), where=per_true > 0)
    given_if_true = (1.0 - NOISE_PRIOR_SHRINKAGE) * estimated + NOISE_PRIOR_SHRINKAGE / n_classes
    posterior = probs * given_if_true[y]
    posterior /= np.maximum(posterior.sum(axis=1, keepdims=True), np.finfo(float).tiny)
    own = posterior[np.arange(n), y]
    return np.where(np.arange(n_classes)[None, :] == y[:, None], -np.inf, posterior).max(axis=1) - own


def second_view_probabilities(
    items: pd.DataFrame, thumbnails: np.ndarray | None, has_label: np.ndarray, labels: np.ndarray, folds: int, train_mask: np.ndarray | None = None,
) -> np.ndarray | None:
    """Out-of-fold probabilities from the items' own pixels or words, when every labelled item has
    them (reference items measured before thumbnails existed have none)."""
    if thumbnails is not None:
        return out_of_fold_probabilities(pixel_vectors(np.asarray(thumbnails)[has_label]), labels, folds=folds, train_mask=train_mask)[0]
    texts = items["text"].to_numpy(dtype=object)[has_label] if "text" in items else None
    if texts is not None and pd.notna(texts).all():
        return word_probabilities(texts.tolist(), labels, folds=folds, train_mask=train_mask)
    return None


def _checked_probabilities(pred_probs: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    probs = np.asarray(pred_probs, dtype=float)
    if probs.shape != (n, n_classes):
        raise ValueError(f"pred_probs must have shape ({n}, {n_classes}): one row per item, one column per class in sorted order; got {probs.shape}")
    return probs


def _nearest_with_label(suggested: np.ndarray, y_all: np.ndarray, knn: KnnGraph, rows: np.ndarray, ids: np.ndarray) -> list[str | None]:
    """For each scored item, its most similar neighbour that carries the suggested label."""
    neighbours = knn.indices[rows]
    match = (neighbours >= 0) & (y_all[np.maximum(neighbours, 0)] == suggested[:, None])
    first = neighbours[np.arange(len(rows)), match.argmax(axis=1)] if knn.k else np.zeros(len(rows), np.int64)
    return [str(ids[j]) if found else None for j, found in zip(first, match.any(axis=1))]

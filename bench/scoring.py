"""Ranking metrics per issue type, following the CleanPatrick protocol.

A method hands in a score per item (higher = more likely an issue) or, for duplicates, a score per
reported pair, plus the set it *flags* (asserts). We report AP, AUROC, P@k and R@k for
k = 10, 100, 1000, and the precision / recall of the flagged set.

* Items: every item of the dataset is ranked; an item the method did not score ranks last. AP and
  AUROC are scikit-learn's over that full ranking.
* Pairs: the universe is every unordered pair of items. A planted (copy, original) pair is a
  positive; every other pair a method reports is a negative; pairs it does not report rank last,
  tied. AP is taken over the reported list with recall normalised by the number of planted pairs,
  so a positive the method never reports counts as missed (scikit-learn's AP over the reported
  pairs, times the share of planted pairs reported). AUROC counts the unreported pairs as one tied
  group at the bottom.
* P@k / R@k: hits among the top ``k`` (``k`` capped at the number of ranked items), where a tie
  across the cut-off counts its expected hits under random order, so the input order never matters.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

K_VALUES: tuple[int, ...] = (10, 100, 1000)
Pair = tuple[str, str]


@dataclass
class ItemRanking:
    """A method's item-level answer: a score per item and, when it has a decision rule, the flagged items."""

    scores: Mapping[str, float]
    flagged: Collection[str] | None = None


@dataclass
class PairRanking:
    """A method's duplicate answer: a score per reported pair and, when it has a decision rule, the flagged pairs."""

    scores: Mapping[Pair, float]
    flagged: Collection[Pair] | None = None


@dataclass
class Metrics:
    """The scores of one method on one issue type; ``nan`` where a metric is undefined."""

    positives: int
    ranked: int
    ap: float
    auroc: float
    precision_at: dict[int, float]
    recall_at: dict[int, float]
    flagged: int | None = None
    flagged_precision: float | None = None
    flagged_recall: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def canonical_pair(a: str, b: str) -> Pair:
    """The unordered pair ``{a, b}`` as a sorted tuple."""
    return (a, b) if a <= b else (b, a)


def hits_at(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Expected positives among the top ``k`` when ties are broken at random."""
    order = np.argsort(-scores, kind="stable")
    ranked, truth = scores[order], labels[order].astype(float)
    if k <= 0 or len(ranked) == 0:
        return 0.0
    k = min(k, len(ranked))
    cut = ranked[k - 1]
    above = ranked > cut
    tied = ranked == cut
    return float(truth[above].sum() + (k - above.sum()) * truth[tied].mean())


def _flag_metrics(chosen: set | None, positives: set) -> tuple[int | None, float | None, float | None]:
    """Size, precision and recall of a flagged set (``None`` when the method flags nothing by rule)."""
    if chosen is None:
        return None, None, None
    found = len(chosen & positives)
    precision = found / len(chosen) if chosen else float("nan")
    recall = found / len(positives) if positives else float("nan")
    return len(chosen), precision, recall


def score_items(ranking: ItemRanking, positives: Collection[str], universe: Collection[str], ignore: Collection[str] = ()) -> Metrics:
    """Metrics of an item ranking over ``universe`` minus ``ignore``."""
    ids = sorted(set(universe) - set(ignore))
    wanted = set(positives) & set(ids)
    known = [float(ranking.scores[i]) for i in ids if i in ranking.scores and np.isfinite(ranking.scores[i])]
    floor = (min(known) if known else 0.0) - 1.0
    scores = np.array([float(ranking.scores[i]) if i in ranking.scores and np.isfinite(ranking.scores[i]) else floor for i in ids])
    labels = np.array([i in wanted for i in ids])
    both = 0 < labels.sum() < len(labels)
    ap = float(average_precision_score(labels, scores)) if both else float("nan")
    auroc = float(roc_auc_score(labels, scores)) if both else float("nan")
    hits = {k: hits_at(scores, labels, min(k, len(ids))) for k in K_VALUES}
    count, precision, recall = _flag_metrics(None if ranking.flagged is None else set(ranking.flagged) & set(ids), wanted)
    return Metrics(
        positives=len(wanted), ranked=len(ids), ap=ap, auroc=auroc,
        precision_at={k: hits[k] / min(k, len(ids)) if ids else float("nan") for k in K_VALUES},
        recall_at={k: hits[k] / len(wanted) if wanted else float("nan") for k in K_VALUES},
        flagged=count, flagged_precision=precision, flagged_recall=recall,
    )


def score_pairs(
    ranking: PairRanking, positives: Collection[Pair], n_items: int, ignore: Collection[Pair] = (), ignore_items: Collection[str] = (),
) -> Metrics:
    """Metrics of a pair ranking; the universe is all pairs of the ``n_items`` items but
    ``ignore_items``, minus the ``ignore`` pairs."""
    left_out = set(ignore_items)
    touches = lambda pair: pair[0] in left_out or pair[1] in left_out  # noqa: E731
    skip = {key for key in (canonical_pair(*p) for p in ignore) if not touches(key)}
    wanted = {key for key in (canonical_pair(*p) for p in positives) if not touches(key)} - skip
    reported: dict[Pair, float] = {}
    for pair, score in ranking.scores.items():
        key = canonical_pair(*pair)
        if key not in skip and not touches(key):
            reported[key] = max(float(score), reported.get(key, -np.inf))
    kept_items = n_items - len(left_out)
    universe = kept_items * (kept_items - 1) // 2 - len(skip)
    keys = list(reported)
    scores = np.array([reported[p] for p in keys], dtype=float)
    labels = np.array([p in wanted for p in keys], dtype=bool)
    found, missed = int(labels.sum()), len(wanted) - int(labels.sum())
    unreported_negatives = universe - len(keys) - missed

    if not wanted:
        ap = auroc = float("nan")
    else:
        ap = 0.0 if found == 0 else (1.0 if found == len(keys) else float(average_precision_score(labels, scores))) * found / len(wanted)
        floor = (scores.min() if len(scores) else 0.0) - 1.0
        y = np.r_[labels, True, False]
        s = np.r_[scores, floor, floor]
        weights = np.r_[np.ones(len(keys)), missed, unreported_negatives]
        keep = weights > 0
        has_negatives = len(keys) - found + unreported_negatives > 0
        auroc = float(roc_auc_score(y[keep], s[keep], sample_weight=weights[keep])) if has_negatives else float("nan")

    def hits(k: int) -> float:
        """Expected hits in the top ``k``: reported pairs first, then the unreported pairs in random order."""
        if k <= len(keys):
            return hits_at(scores, labels, k)
        rest = universe - len(keys)
        return found + (min(k, universe) - len(keys)) * (missed / rest if rest else 0.0)

    flagged = None if ranking.flagged is None else {key for key in map(lambda p: canonical_pair(*p), ranking.flagged) if not touches(key)} - skip
    count, precision, recall = _flag_metrics(flagged, wanted)
    return Metrics(
        positives=len(wanted), ranked=len(keys), ap=ap, auroc=auroc,
        precision_at={k: hits(k) / min(k, universe) for k in K_VALUES},
        recall_at={k: hits(k) / len(wanted) if wanted else float("nan") for k in K_VALUES},
        flagged=count, flagged_precision=precision, flagged_recall=recall,
    )

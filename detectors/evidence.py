"""Turning raw detector scores into comparable evidence, and combining independent evidence.

Every view of an item (a distance, a merge height, a text statistic) has its own scale. The
off-topic and outlier detectors put each on the scale of a standard normal z-score before they
combine them:

* :func:`robust_z` — ``(x - median) / spread`` for continuous scores;
* :func:`rarity_z` — for a discrete property (``ends like a sentence: yes / no``): how rare the
  item's value is in this run, as the z-score with that upper-tail probability;
* :func:`tail_z` — a log upper-tail probability as the z-score with that tail, exact far out.

:func:`positive_sum` then adds the positive parts of independent z-scores: evidence that an item
is unusual in one respect adds up across respects, while being typical in one respect never offsets
being foreign in another. :func:`stouffer` divides that sum by the square root of the number of
terms (Stouffer's method, one-sided), which keeps it on the scale of one z-score: an item ordinary
in every respect passes a threshold about as rarely as with a single view (the plain sum of two
views flags ~30 times as many ordinary items at z = 3.5).

Items that cannot be compared at all (an unusable vector) take no part in a run's statistics:
:func:`comparable_rows`, :func:`restrict_graph` and :func:`scatter` let a detector score the rest
exactly as if those items were absent.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri_exp

from detectors.knn import KnnGraph, usable_rows
from winnow.robust import robust_threshold


def robust_z(values: np.ndarray) -> np.ndarray:
    """``(x - median) / spread`` with spread = 1.4826 · MAD, but at least half the standard deviation:
    scores are often tied (merge heights, binary statistics), and a near-zero MAD would turn every
    small difference into a huge z."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return values
    _, median, mad = robust_threshold(values, 0.0)
    spread = max(mad, 0.5 * float(np.std(values)), 1e-9)
    return (values - median) / spread


def rarity_z(values: np.ndarray) -> np.ndarray:
    """For a discrete property: the z-score whose upper tail is the share of items with the same
    value, floored at 0 (a value most items share is no evidence at all)."""
    _, inverse, counts = np.unique(np.asarray(values), return_inverse=True, return_counts=True)
    share = counts[inverse.ravel()] / len(inverse)
    return np.clip(tail_z(np.log(share)), 0.0, None)


def tail_z(log_tail: np.ndarray) -> np.ndarray:
    """The z-score with upper-tail probability ``exp(log_tail)`` (stable for tails far below 1e-300),
    kept within [-10, 10⁴]: a tail of probability 1, or one that underflowed to 0, would be infinite."""
    return np.clip(-ndtri_exp(np.minimum(np.asarray(log_tail, dtype=np.float64), 0.0)), -10.0, 1e4)


def positive_sum(zs: list[np.ndarray]) -> np.ndarray:
    """Sum of the positive parts of independent z-scores."""
    return np.sum([np.clip(z, 0.0, None) for z in zs], axis=0)


def stouffer(zs: list[np.ndarray]) -> np.ndarray:
    """:func:`positive_sum` over the square root of the number of terms (one-sided Stouffer, unweighted)."""
    return positive_sum(zs) / np.sqrt(max(len(zs), 1))


MISFIT_SHARE = 0.02
"""A view that alone puts more than this share of a run's items past the threshold must be
seconded by the other views to stay in the average (see :func:`consensus_z`)."""
SECONDED_Z = 1.0
"""The other views second an item when their mean z-score reaches this."""


def consensus_z(views: dict[str, np.ndarray], z: float) -> tuple[np.ndarray, list[str]]:
    """The views' robust z-scores averaged and standardised again, and the names of the views left
    out of the average because they do not fit this dataset.

    Views of one embedding see the same evidence, so their z-scores are averaged: independent noise
    cancels. But a view whose model does not fit the data — a Gaussian per class when each class is
    a mixture of distant clusters — sends whole modes of ordinary items past the threshold, and
    averaging would carry that into the flags. So a view that on its own puts more than
    :data:`MISFIT_SHARE` of the items at or above ``z`` stays only if the other views second at
    least half of those items (their mean z-score at least :data:`SECONDED_Z`). On the scale
    benchmark's mixture of 100 clusters the Mahalanobis view put 9.9 % of the items there, none of
    them planted nor seconded, and is left out (2,244 flags for 200 planted become 204); on the image
    benchmark, where it is the best view, it put 4.8 % there (136 of its 163 are planted) and the
    other views second them."""
    zs = {name: robust_z(values) for name, values in views.items()}
    left_out = []
    for name, values in zs.items():
        past = values >= z
        others = [zs[other] for other in zs if other != name]
        if past.mean() > MISFIT_SHARE and others and (np.mean(others, axis=0)[past] >= SECONDED_Z).mean() < 0.5:
            left_out.append(name)
    fitting = [name for name in zs if name not in left_out] or list(zs)
    return robust_z(np.mean([zs[name] for name in fitting], axis=0)), [name for name in zs if name not in fitting]


def row_means(values: np.ndarray, valid: np.ndarray, *, empty: float) -> np.ndarray:
    """Mean of each row's ``valid`` entries; ``empty`` for a row without any."""
    counts = valid.sum(axis=1)
    return np.divide(np.where(valid, values, 0.0).sum(axis=1), counts, out=np.full(len(values), empty), where=counts > 0)


def comparable_rows(knn: KnnGraph, vectors: np.ndarray | None) -> np.ndarray:
    """Positions of the items that can be compared with the others: a usable vector (finite, not
    all zeros; see :func:`detectors.knn.usable_rows`) when vectors are given, else at least one
    neighbour in the graph. The rest take no part in a run's statistics and score 0."""
    usable = usable_rows(vectors) if vectors is not None else (knn.indices >= 0).any(axis=1)
    return np.flatnonzero(usable)


def restrict_graph(knn: KnnGraph, rows: np.ndarray) -> KnnGraph:
    """The graph among ``rows`` only, renumbered; neighbours outside them become ``-1`` (the graph
    itself when ``rows`` are all of its rows)."""
    if len(rows) == len(knn.indices):
        return knn
    position = np.full(len(knn.indices), -1)
    position[rows] = np.arange(len(rows))
    indices = knn.indices[rows]
    mapped = np.where(indices >= 0, position[np.maximum(indices, 0)], -1)
    return KnnGraph(mapped, knn.similarities[rows], knn.method, knn.info)


def take_rows(values: np.ndarray | None, rows: np.ndarray, n: int) -> np.ndarray | None:
    """``values[rows]``, or ``values`` itself when ``rows`` are all ``n`` rows: no copy of a
    million vectors when every item is comparable."""
    if values is None:
        return None
    values = np.asarray(values)
    return values if len(rows) == n else values[rows]


def scatter(values: np.ndarray, rows: np.ndarray, n: int, fill: object) -> np.ndarray:
    """A length-``n`` array holding ``values`` at ``rows`` and ``fill`` elsewhere."""
    values = np.asarray(values)
    out = np.full(n, fill, dtype=values.dtype if values.dtype != object else object)
    out[rows] = values
    return out


def selected_members(members: tuple[str, ...] | str, valid: tuple[str, ...], detector: str) -> tuple[str, ...]:
    """The member names chosen for an ensemble detector: a tuple, or a comma-separated string (as
    ``--param off_topic.members=knn_distance,linkage`` gives); unknown names are an error."""
    names = tuple(m.strip() for m in members.split(",") if m.strip()) if isinstance(members, str) else tuple(members)
    unknown = sorted(set(names) - set(valid))
    if unknown or not names:
        raise ValueError(f"{detector} members must come from {', '.join(valid)}; got {', '.join(names) or 'none'}")
    return names

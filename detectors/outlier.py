"""Outliers: items of the dataset's domain that are atypical — unlike the other items as stored.

An ensemble of views (*members*), each reported alone by the benchmark (``bench/quality.py``):

Views of the embeddings:

* ``knn_distance`` — mean cosine distance to the ``k`` nearest items with other content (exact
  copies would otherwise hide an outlier that was duplicated);
* ``mahalanobis`` — robust Mahalanobis distance to the nearest class Gaussian
  (``detectors.mahalanobis``): the nearest class, so an item filed under the wrong class is left
  to the label-error detector. In the default for tables only (``modality_defaults`` in the
  registry): encoded table rows are the textbook case for a robust Gaussian, while embeddings are
  multi-modal — on ``bench/run_scale.py``'s mixture of small clusters it flagged 8 % of the items.

Evidence from the content itself, where the run has it:

* ``character_surprisal`` (texts) — how unusual the text's letter trigrams are for this corpus
  (``detectors.text_evidence``): garbled, mis-encoded or foreign-script text;
* ``orientation`` (images with thumbnails) — how much closer to the other images the image gets
  when rotated, flipped upside down or inverted (``detectors.image_evidence``): a misoriented scan
  or a negative.

**Combination rule** (the same as off-topic's): every view becomes a robust z-score over the run;
the embedding views are averaged and standardised again (without a view that does not fit the
run's data: ``detectors.evidence.consensus_z``), and the independent content evidence is
added to the embedding's positive part, over the square root of the number of terms (one-sided
Stouffer, ``detectors.evidence.stouffer``), so that an ordinary item passes as rarely as with one
view: on the benchmark this took flag precision from 0.29 to 0.76 on images (recall 0.80 to 0.46)
and from 0.30 to 0.62 on texts (recall 1.00 both). An
item is flagged when the combined score reaches ``z``. Members whose inputs the run lacks are
skipped (no text, no thumbnails, no vectors).

On the benchmark the content evidence carries the planted outliers (garbled reviews, rotated,
upside-down and inverted garments) and the embedding views the table's; for images the kNN distance
also ranks ordinary-but-unusual garments high, so the default costs image outlier AP against
``orientation`` alone (the benchmark reports both) and keeps outliers of other kinds rankable.
Items far from the whole domain score here too; ``off_topic`` tells those apart. ``members`` takes a
tuple or a comma-separated string.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.evidence import (
    comparable_rows,
    consensus_z,
    restrict_graph,
    robust_z,
    row_means,
    scatter,
    selected_members,
    stouffer,
    take_rows,
)
from detectors.image_evidence import TRANSFORMS, orientation_gain
from detectors.knn import KnnGraph
from detectors.mahalanobis import mahalanobis_z
from detectors.result import Detection
from detectors.text_evidence import character_surprisal
from winnow.findings import make_findings

DEFAULT_Z = 3.5
EMBEDDING_MEMBERS = ("knn_distance", "mahalanobis")
CONTENT_MEMBERS = ("character_surprisal", "orientation")
MEMBERS = EMBEDDING_MEMBERS + CONTENT_MEMBERS
DEFAULT_MEMBERS = ("knn_distance", "character_surprisal", "orientation")
_TRANSFORM_NAMES = list(TRANSFORMS)


def copy_aware_knn_distance(items: pd.DataFrame, knn: KnnGraph, k: int) -> np.ndarray:
    """Mean cosine distance to the ``k`` nearest neighbours whose content differs (0 without any)."""
    hashes = items["content_hash"].to_numpy()
    cols = knn.indices[:, :k]
    safe = np.where(cols >= 0, cols, 0)
    usable = (cols >= 0) & (hashes[safe] != hashes[:, None])
    return row_means(1.0 - knn.similarities[:, :k], usable, empty=0.0)


def detect_outlier(
    items: pd.DataFrame, *, knn: KnnGraph, vectors: np.ndarray | None = None, labels: np.ndarray | None = None,
    thumbnails: np.ndarray | None = None, k: int = 10, z: float = DEFAULT_Z, members: tuple[str, ...] | str = DEFAULT_MEMBERS,
    seed: int = 0,
) -> Detection:
    """Score every item by the selected members that the inputs allow, combined as the module
    docstring says; flag robust outliers. ``items`` is row-aligned with ``knn`` and the inputs.
    Items that cannot be compared (an unusable vector, no neighbour) score 0 and take no part in
    the run's statistics; fewer than five comparable items score 0."""
    members = selected_members(members, MEMBERS, "outlier")
    ids = items["item_id"].astype(str).to_numpy()
    n = len(ids)
    rows = comparable_rows(knn, vectors)
    if len(rows) < 5:
        return Detection(make_findings(ids, "outlier", np.zeros(n), np.zeros(n, bool), [None] * n, [{}] * n))
    raw = member_scores(
        items.iloc[rows].reset_index(drop=True), knn=restrict_graph(knn, rows), vectors=take_rows(vectors, rows, n),
        labels=take_rows(None if labels is None else np.asarray(labels, dtype=object), rows, n),
        thumbnails=take_rows(thumbnails, rows, n), k=k, members=members, seed=seed,
    )
    evidence: dict[str, np.ndarray] = {}
    views = [m for m in EMBEDDING_MEMBERS if m in raw]
    left_out: list[str] = []
    if views:
        evidence["embedding"], left_out = consensus_z({m: raw[m] for m in views}, z)
    evidence.update({name: robust_z(raw[name]) for name in CONTENT_MEMBERS if name in raw})
    scores = stouffer(list(evidence.values())) if evidence else np.zeros(len(rows))
    flagged = scores >= z
    reasons = np.full(len(rows), None, dtype=object)
    reasons[flagged] = [_reason(evidence, raw, i, scores[i], z) for i in np.flatnonzero(flagged)]
    details = pd.DataFrame({**{m: v for m, v in raw.items() if m != "orientation_transform"},
                            **{f"{name}_z": values for name, values in evidence.items()}, "threshold": z,
                            "members_left_out": ",".join(left_out) or None}, index=rows)
    if "orientation_transform" in raw:
        details["fits_better"] = np.array(_TRANSFORM_NAMES, dtype=object)[raw["orientation_transform"].astype(int)]
    return Detection(make_findings(
        ids, "outlier", scatter(scores, rows, n, 0.0), scatter(flagged, rows, n, False), scatter(reasons, rows, n, None),
        details.reindex(range(n)),
    ))


def member_scores(
    items: pd.DataFrame, *, knn: KnnGraph, vectors: np.ndarray | None = None, labels: np.ndarray | None = None,
    thumbnails: np.ndarray | None = None, k: int = 10, members: tuple[str, ...] = MEMBERS, seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each selected member's own score (higher = more atypical) that the inputs allow, row-aligned
    with ``items``; ``orientation`` also gives ``orientation_transform`` (index in ``TRANSFORMS``)."""
    out: dict[str, np.ndarray] = {}
    if "knn_distance" in members:
        out["knn_distance"] = copy_aware_knn_distance(items, knn, k)
    if "mahalanobis" in members and vectors is not None and len(items) >= 5:
        out["mahalanobis"] = mahalanobis_z(vectors, labels, seed=seed)
    if "character_surprisal" in members and "text" in items and items["text"].notna().all() and len(items):
        out["character_surprisal"] = character_surprisal(items["text"].astype(str).tolist())
    if "orientation" in members and thumbnails is not None and len(thumbnails) >= 3:
        out["orientation"], out["orientation_transform"] = orientation_gain(thumbnails, k=k, seed=seed)
    return out


def _reason(evidence: dict[str, np.ndarray], raw: dict[str, np.ndarray], i: int, score: float, z: float) -> str:
    explain = {
        "embedding": "its embedding is far from the other items'",
        "character_surprisal": "its letter sequences are rare in this corpus (garbled or mis-encoded text?)",
        "orientation": (f"it looks more like the other images {_TRANSFORM_NAMES[int(raw['orientation_transform'][i])]}"
                        if "orientation_transform" in raw else ""),
    }
    parts = sorted((name for name in evidence if evidence[name][i] > 0.5), key=lambda name: -evidence[name][i])
    because = "; ".join(f"{explain[name]} (z = {evidence[name][i]:.1f})" for name in parts)
    combined = f"(sum of the {len(evidence)} z-scores over √{len(evidence)}) " if len(evidence) > 1 else ""
    return f"atypical: {because} — combined {score:.1f} {combined}>= {z}"

"""The tools people use today, run on exactly the inputs winnow saw: cleanlab Datalab and CleanVision.

Datalab gets winnow's cached embeddings as ``features`` (so both rank on identical vectors) and, for
label issues, out-of-fold predicted probabilities of a cross-validated logistic regression on those
same embeddings. CleanVision reads the benchmark's image files. Both tools use "lower score = worse";
every ranking here is flipped to ``1 - score`` so that higher means more likely an issue, as in
winnow's findings.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from bench.scoring import ItemRanking, Pair, PairRanking, canonical_pair

CLEANVISION_QUALITY = ("dark", "blurry", "low_information")


def oof_pred_probs(features: np.ndarray, labels: list[str], seed: int, folds: int = 5) -> tuple[np.ndarray, list[str]]:
    """Out-of-fold class probabilities and the class order of their columns.

    A logistic regression (``C=10``) on the L2-normalised embeddings, stratified ``folds``-fold: of
    the probes tried on the benchmark embeddings (standardised with ``C=0.05``, PCA-128 with ``C=1``,
    raw with ``C=10``) it was the most accurate against the true labels, so Datalab gets its best input.
    """
    classes = sorted(set(labels))
    target = np.array([classes.index(label) for label in labels])
    model = LogisticRegression(C=10, max_iter=1000)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, features, target, cv=cv, method="predict_proba"), classes


def _datalab(labels: list[str]):
    from cleanlab import Datalab

    return Datalab(data={"label": labels}, label_name="label", verbosity=0)


def datalab_near_duplicate(ids: list[str], features: np.ndarray, labels: list[str]) -> PairRanking:
    """Datalab's near_duplicate issue type: every item paired with its nearest neighbour, ranked by
    that distance; flagged pairs are its ``near_duplicate_sets``."""
    lab = _datalab(labels)
    lab.find_issues(features=features, issue_types={"near_duplicate": {}})
    info = lab.get_info("near_duplicate")
    scores: dict[Pair, float] = {}
    for i, (j, distance) in enumerate(zip(info["nearest_neighbor"], info["distance_to_nearest_neighbor"])):
        pair = canonical_pair(ids[i], ids[int(j)])
        scores[pair] = max(scores.get(pair, -np.inf), -float(distance))
    flagged = {canonical_pair(ids[i], ids[int(j)]) for i, members in enumerate(info["near_duplicate_sets"]) for j in members}
    return PairRanking(scores, flagged)


def datalab_outlier(ids: list[str], features: np.ndarray, labels: list[str]) -> ItemRanking:
    """Datalab's outlier issue type (kNN-distance based) on the features."""
    lab = _datalab(labels)
    lab.find_issues(features=features, issue_types={"outlier": {}})
    issues = lab.get_issues("outlier")
    return ItemRanking(dict(zip(ids, 1.0 - issues["outlier_score"].to_numpy())), {i for i, f in zip(ids, issues["is_outlier_issue"]) if f})


def datalab_label(ids: list[str], labels: list[str], pred_probs: np.ndarray) -> ItemRanking:
    """Datalab's label issue type (confident learning) on out-of-fold predicted probabilities."""
    lab = _datalab(labels)
    lab.find_issues(pred_probs=pred_probs, issue_types={"label": {}})
    issues = lab.get_issues("label")
    return ItemRanking(dict(zip(ids, 1.0 - issues["label_score"].to_numpy())), {i for i, f in zip(ids, issues["is_label_issue"]) if f})


def _imagelab(root: Path, ids: list[str], issue_types: dict):
    from cleanvision import Imagelab

    lab = Imagelab(filepaths=[str(root / i) for i in ids], verbose=False)
    lab.find_issues(issue_types, verbose=False)
    return lab


def cleanvision_duplicates(root: Path, ids: list[str]) -> dict[str, PairRanking]:
    """CleanVision's exact_duplicates (pixel MD5) and near_duplicates (equal 8×8 pHash) as pairs.

    CleanVision reports sets, not scores: every pair inside a set is reported and flagged with score 1.
    """
    lab = _imagelab(root, ids, {"exact_duplicates": {}, "near_duplicates": {}})
    id_of = {str(root / i): i for i in ids}
    result = {}
    for ours, theirs in (("exact_duplicate", "exact_duplicates"), ("near_duplicate", "near_duplicates")):
        pairs = {canonical_pair(id_of[a], id_of[b]) for group in lab.info[theirs]["sets"] for a, b in combinations(group, 2)}
        result[ours] = PairRanking(dict.fromkeys(pairs, 1.0), pairs)
    return result


def cleanvision_quality(root: Path, ids: list[str]) -> ItemRanking:
    """CleanVision's image-quality checks (dark, blurry, low information): an item's score is its
    worst check, flagged when any check fires."""
    lab = _imagelab(root, ids, {name: {} for name in CLEANVISION_QUALITY})
    issues = lab.issues.loc[[str(root / i) for i in ids]]
    worst = issues[[f"{name}_score" for name in CLEANVISION_QUALITY]].min(axis=1).to_numpy()
    flagged = issues[[f"is_{name}_issue" for name in CLEANVISION_QUALITY]].any(axis=1).to_numpy()
    return ItemRanking(dict(zip(ids, 1.0 - worst)), {i for i, f in zip(ids, flagged) if f})

"""Drift tests on synthetic embeddings: calibrated under the null, firing on real shifts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detectors.drift import detect_drift, drift_finding, label_test
from winnow.findings import FINDINGS_COLUMNS, RUN_ITEM_ID

SEEDS = range(20)
DIM = 32
CLASSES = np.array(["cat", "dog", "fox"], dtype=object)


def clustered(n: int, rng: np.random.Generator, *, shift: float = 0.0, centres: np.ndarray | None = None) -> np.ndarray:
    """``n`` points around three fixed centres (the same for every call), unit-normalised like embeddings."""
    centres = np.eye(3, DIM) * 3.0 if centres is None else centres
    points = centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, DIM)) + shift
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def labels(n: int, rng: np.random.Generator, prior=(1 / 3, 1 / 3, 1 / 3)) -> np.ndarray:
    return rng.choice(CLASSES, size=n, p=prior)


def false_alarm_rate() -> float:
    alarms = 0
    for seed in SEEDS:
        rng = np.random.default_rng(1000 + seed)
        result = detect_drift(
            clustered(200, rng), clustered(150, rng), reference_labels=labels(200, rng), batch_labels=labels(150, rng), seed=seed
        )
        alarms += result.drifted
    return alarms / len(SEEDS)


def test_same_distribution_rarely_fires():
    rate = false_alarm_rate()
    print(f"drift false-alarm rate at alpha=0.05 over {len(SEEDS)} seeds: {rate:.2f}")
    assert rate <= 0.15


def test_mean_shift_fires():
    rng = np.random.default_rng(1)
    result = detect_drift(clustered(200, rng), clustered(150, rng, shift=0.3))
    assert result.drifted
    assert result.p_values["mmd"] < 0.01 and result.effects["mmd2"] > 0
    assert result.reason.startswith("drift:")


def test_a_new_cluster_fires():
    rng = np.random.default_rng(2)
    new_centre = np.zeros((1, DIM))
    new_centre[0, 5] = 3.0
    batch = np.vstack([clustered(120, rng), clustered(30, rng, centres=new_centre)])
    result = detect_drift(clustered(200, rng), batch)
    assert result.drifted and result.score > 0.95


def test_a_label_prior_change_fires_on_labels_alone():
    rng = np.random.default_rng(3)
    result = detect_drift(
        clustered(300, rng), clustered(300, rng), reference_labels=labels(300, rng), batch_labels=labels(300, rng, prior=(0.7, 0.2, 0.1))
    )
    assert result.drifted
    assert result.p_values["labels"] < result.alpha / 3 and result.effects["cramers_v"] > 0.2
    assert "label chi-squared" in result.reason.split(";")[0]


def test_deterministic_given_a_seed():
    rng = np.random.default_rng(4)
    reference, batch = clustered(1500, rng), clustered(1200, rng, shift=0.02)
    first = detect_drift(reference, batch, seed=7, max_samples=400)
    assert first == detect_drift(reference, batch, seed=7, max_samples=400)
    assert first.samples == {"reference": 1500, "batch": 1200, "reference_tested": 400, "batch_tested": 400}


def test_labels_are_skipped_when_one_side_has_none():
    rng = np.random.default_rng(5)
    result = detect_drift(clustered(50, rng), clustered(50, rng), reference_labels=labels(50, rng), batch_labels=[None] * 50)
    assert set(result.p_values) == {"mmd", "ks"} and "cramers_v" not in result.effects
    assert label_test(["a"] * 5, ["a"] * 5) is None  # one class overall: nothing to compare


def test_identical_label_counts_give_p_one_and_no_effect():
    p_value, cramers_v = label_test(["a", "b"] * 10, ["b", "a"] * 10)
    assert p_value == pytest.approx(1.0) and cramers_v == pytest.approx(0.0)


def test_too_few_rows_or_mismatched_dimensions_raise():
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match="at least 5 rows"):
        detect_drift(clustered(4, rng), clustered(50, rng))
    with pytest.raises(ValueError, match="one model"):
        detect_drift(clustered(50, rng), clustered(50, rng)[:, :10])


def test_drift_finding_is_one_run_level_row():
    rng = np.random.default_rng(7)
    result = detect_drift(clustered(100, rng), clustered(100, rng, shift=0.3))
    finding = drift_finding(result)
    assert tuple(finding.columns) == FINDINGS_COLUMNS and len(finding) == 1
    row = finding.iloc[0]
    assert row.item_id == RUN_ITEM_ID and row.issue_type == "drift" and row.flagged
    assert row.score == pytest.approx(1 - result.p_value)
    assert set(json.loads(row.detail)["p_values"]) == {"mmd", "ks"}

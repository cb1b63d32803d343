"""The unsure band: which items a small change of the threshold would flip (dashboard/unsure.py)."""

from __future__ import annotations

import numpy as np

from dashboard.unsure import threshold_of, unsure_band


def test_the_detectors_recorded_threshold_is_used_when_it_agrees_with_the_flags():
    scores = np.arange(40) / 40
    band = unsure_band(scores, scores >= 0.75, 0.75)
    assert band.threshold_from == "detector" and band.threshold == 0.75
    # width 0.15 · |0.75 − median 0.4875| = 0.039: 0.725, 0.75 and 0.775
    assert (band.low, band.high, band.size) == (0.725, 0.775, 3)


def test_a_threshold_that_contradicts_the_flags_gives_way_to_the_cut_the_flags_imply():
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.9])
    flagged = np.array([False, False, True, True, True])  # flagged from 0.3 up, yet 0.5 was recorded
    assert threshold_of(scores, flagged, 0.5) == (0.25, "flags")
    assert threshold_of(scores, np.zeros(5, bool), None) is None  # nothing flagged and no threshold: no band
    assert threshold_of(scores, np.zeros(5, bool), 0.95) == (0.95, "detector")


def test_zero_one_scores_are_certain_and_get_no_band():
    scores = np.array([0.0] * 20 + [1.0] * 3)
    assert unsure_band(scores, scores == 1.0) is None


def test_a_rule_flag_gets_the_band_around_the_score_of_as_many_items_as_were_flagged():
    scores = np.linspace(0, 1, 101)
    flagged = np.zeros(101, bool)
    flagged[[100, 99, 60, 95, 90, 85, 80, 75, 70, 65]] = True  # ten flags, not a score cut
    band = unsure_band(scores, flagged)
    assert band.threshold_from == "flags" and band.threshold == 0.905  # between the 10th (0.91) and 11th (0.90) highest
    assert band.low >= 0.905 - 0.15 * 0.405 - 1e-9 and band.high <= 0.905 + 0.15 * 0.405 + 1e-9


def test_the_band_is_capped_at_the_items_closest_to_the_threshold():
    scores = np.linspace(0, 1, 10_001)
    band = unsure_band(scores, scores >= 0.9, 0.9, max_items=101)
    assert band.size == 101 and abs(band.low - 0.895) < 1e-9 and abs(band.high - 0.905) < 1e-9

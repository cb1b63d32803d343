import numpy as np
import pytest
from scipy.stats import norm

from detectors.evidence import consensus_z, rarity_z, robust_z, stouffer, tail_z


def test_robust_z_ignores_the_outlier_it_scores():
    values = np.r_[np.random.default_rng(0).normal(size=200), 20.0]
    z = robust_z(values)
    assert np.argmax(z) == 200 and z[200] > 15 and abs(np.median(z)) < 1e-9


def test_robust_z_of_tied_values_keeps_a_spread():
    z = robust_z(np.array([0.0] * 20 + [1.0]))
    assert np.isfinite(z).all() and z[-1] > 1


def test_rarity_z_scores_the_rare_value_only():
    values = np.array([True] * 95 + [False] * 5)
    z = rarity_z(values)
    assert np.allclose(z[:95], 0) and np.allclose(z[95:], norm.isf(0.05))


def test_tail_z_is_exact_far_in_the_tail():
    assert tail_z(np.log([norm.sf(3.0)]))[0] == pytest.approx(3.0)
    assert tail_z(np.array([-2000.0]))[0] == pytest.approx(np.sqrt(2 * 2000), rel=0.01)
    assert tail_z(np.array([-np.inf, 0.0])).tolist() == [1e4, -10.0]  # finite at both ends


def test_stouffer_adds_positive_evidence_only_on_the_scale_of_one_z_score():
    assert np.allclose(stouffer([np.array([2.0, -3.0]), np.array([1.5, 1.0])]), np.array([3.5, 1.0]) / np.sqrt(2))
    assert stouffer([np.array([4.0, -1.0])]).tolist() == [4.0, 0.0]
    noise = np.random.default_rng(0).standard_normal((3, 200_000))
    assert (stouffer(list(noise)) >= 3.5).mean() < 3 * (noise[0] >= 3.5).mean()



def test_consensus_leaves_out_a_view_that_sends_a_whole_mode_past_the_threshold():
    rng = np.random.default_rng(1)
    n = 2_000
    strays = np.arange(20)  # 1 % of the items, far out in both fitting views
    fitting = rng.standard_normal((2, n))
    fitting[:, strays] += 8.0
    misfit = rng.standard_normal(n)
    misfit[n // 2 : n // 2 + 300] += 8.0  # a 15 % mode of ordinary items
    combined, left_out = consensus_z({"a": fitting[0], "b": fitting[1], "gaussian": misfit}, 3.5)
    assert left_out == ["gaussian"]
    flagged = set(np.flatnonzero(combined >= 3.5))
    assert set(strays) <= flagged and len(flagged) <= len(strays) + 3
    averaged = robust_z(np.mean([robust_z(v) for v in (fitting[0], fitting[1], misfit)], axis=0))
    assert (averaged >= 3.5).sum() > 2 * len(strays)  # what the guard prevents: ordinary items flagged
    everything, none_left = consensus_z({"gaussian": misfit}, 3.5)
    assert none_left == [] and (everything >= 3.5).sum() > 250  # alone, nothing to second it or not
    seconded = fitting[1].copy()
    seconded[n // 2 : n // 2 + 300] += 3.0  # another view finds the same mode unusual: a real finding
    _, kept = consensus_z({"a": fitting[0], "b": seconded, "gaussian": misfit}, 3.5)
    assert kept == []

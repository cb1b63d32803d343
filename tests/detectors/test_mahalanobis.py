import numpy as np

from detectors.mahalanobis import mahalanobis_z, rank_ladder


def test_rank_ladder_caps_by_items_and_dimensions():
    assert rank_ladder(3400, 1280) == [16, 32, 64, 128, 256]
    assert rank_ladder(614, 31) == [16, 31]
    assert rank_ladder(68, 16) == [6]
    assert rank_ladder(5, 8) == [1]


def test_an_item_against_the_correlation_stands_out_though_it_is_close():
    """Two strongly correlated coordinates: (1, -1) is near the centre in plain distance but far in
    Mahalanobis distance; (3, 3) lies along the data and is ordinary."""
    rng = np.random.default_rng(0)
    t = rng.normal(size=300)
    points = np.column_stack([t, t + rng.normal(scale=0.1, size=300), rng.normal(size=(300, 4))])
    points = np.vstack([points, [1.0, -1.0, 0, 0, 0, 0], [3.0, 3.0, 0, 0, 0, 0]])
    z = mahalanobis_z(points)
    assert np.argmax(z) == 300 and z[300] > 5 and z[301] < 3


def test_robust_refit_exposes_a_batch_that_masks_a_plain_fit():
    """A tight batch of 8 % of the data far along one axis: fitted with everything, it inflates
    that axis's variance and looks ordinary; the robust re-fit sets it aside."""
    rng = np.random.default_rng(1)
    bulk = rng.normal(size=(460, 6))
    batch = rng.normal(scale=0.05, size=(40, 6)) + [6.0, 0, 0, 0, 0, 0]
    points = np.vstack([bulk, batch])
    z = mahalanobis_z(points)
    assert set(np.argsort(-z)[:40]) == set(range(460, 500))
    plain = ((points - points.mean(0)) @ np.linalg.inv(np.cov(points, rowvar=False)) * (points - points.mean(0))).sum(1)
    assert len(set(np.argsort(-plain)[:40]) & set(range(460, 500))) < 40  # what the re-fit is for


def test_nearest_class_leaves_a_mislabelled_item_alone_and_calibrates_inliers():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(200, 5)), rng.normal(size=(200, 5)) + 8
    points = np.vstack([a, b, [[4.0, -4, 4, -4, 4]]])
    labels = np.array(["a"] * 200 + ["b"] * 200 + ["a"], dtype=object)
    labels[0] = "b"  # an "a" filed under "b": a label error, not an outlier
    z = mahalanobis_z(points, labels)
    assert np.argmax(z) == 400 and z[0] < 3
    assert np.mean(z[1:400] > 3) < 0.02  # inliers get z-scores of a standard normal's size
    assert np.allclose(mahalanobis_z(points, np.array([None] * 401, dtype=object)), mahalanobis_z(points))

"""The benchmark scorer on tiny cases computed by hand (run: ``python -m pytest bench/test_scoring.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.scoring import ItemRanking, PairRanking, hits_at, score_items, score_pairs

ITEMS = ["a", "b", "c", "d", "e"]


def test_items_ranked_perfectly_apart_from_one_negative() -> None:
    # ranking a b c d e with positives a, c: precision at the hits is 1/1 and 2/3
    m = score_items(ItemRanking({"a": 5, "b": 4, "c": 3, "d": 2, "e": 1}), {"a", "c"}, ITEMS)
    assert m.ap == pytest.approx((1 + 2 / 3) / 2)
    assert m.auroc == pytest.approx(5 / 6)  # a beats 3 negatives, c beats 2 of 3
    assert m.precision_at[10] == pytest.approx(2 / 5)  # k capped at the 5 ranked items
    assert m.recall_at[10] == 1.0
    assert (m.positives, m.ranked, m.flagged) == (2, 5, None)


@pytest.mark.parametrize(
    ("scores", "labels", "k", "expected"),
    [
        ([5, 4, 3, 2, 1], [1, 0, 1, 0, 0], 1, 1.0),
        ([5, 4, 3, 2, 1], [1, 0, 1, 0, 0], 2, 1.0),
        ([5, 4, 3, 2, 1], [1, 0, 1, 0, 0], 3, 2.0),
        ([1, 1, 1, 1], [1, 0, 0, 0], 2, 0.5),  # one positive among four tied: expected 2 * 1/4
        ([3, 2, 2, 1], [0, 1, 0, 1], 2, 0.5),  # cut falls inside the tie at 2
        ([1, 2], [1, 0], 5, 1.0),  # k beyond the list
    ],
    ids=["top1", "top2", "top3", "all-tied", "tie-at-cut", "k-too-big"],
)
def test_hits_at(scores: list[float], labels: list[int], k: int, expected: float) -> None:
    assert hits_at(np.array(scores, float), np.array(labels, bool), k) == pytest.approx(expected)


def test_unscored_items_rank_last_and_tie() -> None:
    m = score_items(ItemRanking({"a": 1.0}), {"b"}, ["a", "b", "c"])
    assert m.ap == pytest.approx(1 / 3)  # b found only at the bottom threshold, with a and c
    assert m.auroc == pytest.approx(0.25)  # b loses to a, ties with c


def test_ignored_items_leave_the_ranking() -> None:
    m = score_items(ItemRanking({"a": 5, "b": 4, "c": 3, "d": 2, "e": 1}), {"a", "c"}, ITEMS, ignore={"b"})
    assert m.ap == 1.0 and m.auroc == 1.0 and m.ranked == 4


def test_flagged_precision_and_recall() -> None:
    m = score_items(ItemRanking({i: 0 for i in ITEMS}, flagged={"a", "b"}), {"a", "c"}, ITEMS)
    assert (m.flagged, m.flagged_precision, m.flagged_recall) == (2, 0.5, 0.5)


def test_no_positive_gives_undefined_ranking_metrics() -> None:
    m = score_items(ItemRanking({"a": 1}), set(), ITEMS)
    assert math.isnan(m.ap) and math.isnan(m.auroc) and math.isnan(m.recall_at[10])


PLANTED = {("a", "b"), ("c", "d")}


def test_pairs_count_unreported_positives_as_missed() -> None:
    # 5 items -> 10 pairs; reported (a,b)+ 0.9, (a,c)- 0.8, (d,e)- 0.7; (c,d) never reported
    ranking = PairRanking({("b", "a"): 0.9, ("a", "c"): 0.8, ("e", "d"): 0.7}, flagged={("a", "b"), ("c", "a")})
    m = score_pairs(ranking, PLANTED, n_items=5)
    assert m.ap == pytest.approx(0.5)  # precision 1 at the only hit, recall normalised by 2 planted pairs
    # (a,b) beats all 8 negatives; (c,d) sits in the bottom tie with the 6 unreported negatives
    assert m.auroc == pytest.approx((8 + 0.5 * 6) / 16)
    assert m.precision_at[10] == pytest.approx(2 / 10) and m.recall_at[10] == 1.0  # top 10 = every pair
    assert (m.flagged, m.flagged_precision, m.flagged_recall) == (2, 0.5, 0.5)
    assert m.ranked == 3


def test_pairs_tied_scores_share_one_step() -> None:
    m = score_pairs(PairRanking({("a", "b"): 1.0, ("a", "e"): 1.0}), PLANTED, n_items=5)
    assert m.ap == pytest.approx(0.5 * 0.5)  # one threshold: precision 1/2, recall 1/2


def test_pairs_all_reported_positive() -> None:
    m = score_pairs(PairRanking({("a", "b"): 0.9, ("d", "c"): 0.8}), PLANTED, n_items=5)
    assert m.ap == 1.0 and m.auroc == 1.0 and m.recall_at[10] == 1.0


def test_pairs_keep_the_best_score_of_either_order_and_honour_ignore() -> None:
    ranking = PairRanking({("a", "c"): 0.95, ("c", "a"): 0.1, ("b", "a"): 0.9, ("d", "c"): 0.5})
    assert score_pairs(ranking, PLANTED, n_items=5).ap == pytest.approx((1 / 2 + 2 / 3) / 2)
    ignored = score_pairs(ranking, PLANTED, n_items=5, ignore={("c", "a")})
    assert ignored.ap == 1.0 and ignored.ranked == 2


def test_pairs_with_nothing_reported() -> None:
    m = score_pairs(PairRanking({}), PLANTED, n_items=5)
    assert m.ap == 0.0 and m.auroc == pytest.approx(0.5) and m.precision_at[10] == pytest.approx(0.2)


def test_pairs_touching_ignored_items_leave_the_ranking_and_the_universe() -> None:
    ranking = PairRanking({("b", "a"): 0.9, ("c", "d"): 0.8, ("d", "e"): 0.99}, flagged={("d", "e"), ("a", "b")})
    everything = score_pairs(ranking, PLANTED, n_items=5)
    without = score_pairs(ranking, PLANTED, n_items=5, ignore_items={"e"})
    assert everything.ap < 1.0 and without.ap == 1.0 and without.ranked == 2
    assert without.flagged == 1 and without.flagged_precision == 1.0
    assert without.precision_at[10] == pytest.approx(2 / 6)  # 4 items left: 6 pairs, both positives found

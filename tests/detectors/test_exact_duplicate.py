import json

from detectors.exact_duplicate import detect_exact_duplicate
from tests.detectors.conftest import make_items


def test_later_copies_are_flagged_and_point_at_the_first():
    items = make_items(5, {2: "h0", 4: "h0", 3: "h1"})
    result = detect_exact_duplicate(items)
    f = result.findings.set_index("item_id")
    assert f["flagged"].to_dict() == {"i0": False, "i1": False, "i2": True, "i3": True, "i4": True}
    assert f.loc["i4", "related_item_id"] == "i0" and f.loc["i3", "related_item_id"] == "i1"
    assert f.loc["i0", "group_id"] == f.loc["i2", "group_id"] == "exact:i0"
    assert f.loc["i0", "score"] == 0.0 and f.loc["i2", "score"] == 1.0
    assert json.loads(f.loc["i4", "detail"])["group_size"] == 3
    assert sorted(zip(result.pairs.item_a, result.pairs.item_b)) == [("i0", "i2"), ("i0", "i4"), ("i1", "i3")]


def test_keeper_is_first_in_ingest_order_not_row_order():
    items = make_items(2, {1: "h0"}).iloc[::-1]
    f = detect_exact_duplicate(items).findings.set_index("item_id")
    assert f.loc["i1", "flagged"] and not f.loc["i0", "flagged"]


def test_no_duplicates_scores_everyone_zero():
    result = detect_exact_duplicate(make_items(4))
    assert (result.findings["score"] == 0).all() and result.pairs.empty

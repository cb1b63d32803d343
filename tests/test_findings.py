import pandas as pd
import pytest

from winnow.findings import FINDINGS_COLUMNS, ISSUE_TYPES, empty_findings, make_findings, validate_findings


def one(**overrides):
    frame = make_findings(["a", "b"], "outlier", [0.9, 0.1], [True, False], ["far away", None], [{"d": 1}, {}])
    for column, value in overrides.items():
        frame[column] = value
    return frame


def test_make_findings_has_contract_columns_and_json_detail():
    frame = one()
    assert tuple(frame.columns) == FINDINGS_COLUMNS
    assert frame["detail"].iloc[0] == '{"d": 1}'
    assert frame["flagged"].dtype == bool


def test_empty_findings_validate():
    assert validate_findings(empty_findings()).empty


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda f: f.drop(columns=["reason"]), "missing \\['reason'\\]"),
        (lambda f: f.assign(extra=1), "extra \\['extra'\\]"),
        (lambda f: f.assign(issue_type="smelly"), "unknown issue types"),
        (lambda f: f.assign(score=[float("nan"), 0.0]), "NaN scores"),
        (lambda f: f.assign(item_id=["a", "a"]), "two outlier findings"),
        (lambda f: f.assign(reason=[None, None]), "has no reason"),
    ],
    ids=["missing column", "extra column", "unknown type", "nan score", "duplicate row", "flagged without reason"],
)
def test_validate_rejects(breakage, message):
    with pytest.raises(ValueError, match=message):
        validate_findings(breakage(one()))


def test_vocabulary_is_the_contract():
    assert set(ISSUE_TYPES) >= {"exact_duplicate", "near_duplicate", "off_topic", "label_error", "outlier", "low_quality", "corrupt", "check_failed", "drift"}


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="3 values for 2 items"):
        make_findings(["a", "b"], "outlier", [1, 2, 3], [True, False], ["x", None], [{}, {}])
    assert isinstance(empty_findings(), pd.DataFrame)

"""Great Expectations suites for tables, on scikit-learn's wine table and small hand-built frames.

GX is slow to import and to start, so the wine suite and its runs are module-scoped fixtures shared
by the tests below.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from checks.tabular import CHECK_RESULTS_COLUMNS, infer_suite, load_suite, run_suite, schema_finding
from winnow.errors import ConfigError
from winnow.findings import FINDINGS_COLUMNS, RUN_ITEM_ID, validate_findings

ROOT = Path(__file__).resolve().parents[2]
PLANTED = {
    "w10": "magnesium = -3.0 is below the minimum",
    "w20": "alcohol is missing (expect_column_values_to_not_be_null)",
    "w30": "cultivar = 'class_9' is not one of the allowed values ['class_0', 'class_1', 'class_2']",
    "w40": "id = 'w40' is not unique (expect_column_values_to_be_unique)",
}


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    """All 178 wines with an id column and the cultivar as text."""
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = [str(data.target_names[t]) for t in frame["cultivar"]]
    frame.insert(0, "id", [f"w{i}" for i in range(len(frame))])
    return frame


@pytest.fixture(scope="module")
def suite(wine) -> dict:
    return infer_suite(wine, id_col="id", name="wine")


@pytest.fixture(scope="module")
def clean_run(wine, suite):
    return run_suite(wine, suite, id_col="id")


@pytest.fixture(scope="module")
def planted(wine) -> pd.DataFrame:
    """A negative magnesium, a null alcohol, an unseen cultivar, and row 41 given row 40's id."""
    frame = wine.copy()
    frame.loc[10, "magnesium"] = -3.0
    frame.loc[20, "alcohol"] = np.nan
    frame.loc[30, "cultivar"] = "class_9"
    frame.loc[41, "id"] = "w40"
    return frame


@pytest.fixture(scope="module")
def planted_run(planted, suite):
    return run_suite(planted, suite, id_col="id")


@pytest.fixture(scope="module")
def schema_run(wine, suite):
    """Column `ash` dropped, a new column `vintage`, and `alcohol` stored as text."""
    frame = wine.drop(columns=["ash"]).assign(vintage=1990, alcohol=wine["alcohol"].astype(str))
    return run_suite(frame, suite, id_col="id")


def expectation_types(suite: dict, column: str) -> set[str]:
    return {e["type"] for e in suite["expectations"] if e["kwargs"].get("column") == column}


def test_inferred_suite_is_gx_json_with_a_rule_per_property(suite, wine):
    import great_expectations as gx

    saved = json.loads(json.dumps(suite))
    assert len(gx.ExpectationSuite(**saved).expectations) == len(suite["expectations"])
    table = suite["expectations"][0]
    assert table["type"] == "expect_table_columns_to_match_set" and table["kwargs"]["column_set"] == list(wine.columns)
    assert expectation_types(suite, "id") == {
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_unique",
    }
    assert expectation_types(suite, "magnesium") == {
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
    }
    in_set = [e for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_in_set"]
    assert [e["kwargs"] for e in in_set] == [{"column": "cultivar", "value_set": ["class_0", "class_1", "class_2"]}]


def test_range_covers_the_reference_and_stays_non_negative(suite, wine):
    ranges = {e["kwargs"]["column"]: e["kwargs"] for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_between"}
    for column, kwargs in ranges.items():
        assert kwargs["min_value"] <= wine[column].min() and kwargs["max_value"] >= wine[column].max()
        assert kwargs["min_value"] >= 0 and "mostly" not in kwargs


def test_not_null_share_uses_mostly_only_when_the_reference_has_nulls():
    frame = pd.DataFrame({"x": [1.0] * 90 + [None] * 10, "y": np.arange(100.0)})
    rules = {e["kwargs"]["column"]: e["kwargs"] for e in infer_suite(frame)["expectations"] if e["type"] == "expect_column_values_to_not_be_null"}
    assert rules == {"x": {"column": "x", "mostly": 0.88}, "y": {"column": "y"}}


def test_inferred_suite_passes_on_every_common_dtype():
    n = 40
    frame = pd.DataFrame(
        {
            "when": pd.date_range("2024-01-01", periods=n, freq="D"),
            "ok": [i % 3 == 0 for i in range(n)],
            "count": pd.array([i if i % 7 else None for i in range(n)], dtype="Int64"),
            "size": pd.Categorical(["S", "M", "L", "M"] * (n // 4)),
            "note": pd.Series([f"free text {i}" for i in range(n)], dtype=object),
            "ratio": np.linspace(-1.0, 1.0, n),
        }
    )
    suite = infer_suite(frame)
    families = {e["kwargs"]["column"]: e["meta"]["type_family"] for e in suite["expectations"] if "meta" in e}
    assert families == {"when": "datetime", "ok": "bool", "count": "number", "size": "string", "note": "string", "ratio": "number"}
    findings, checks = run_suite(frame, suite)
    assert checks["success"].all(), checks.loc[~checks["success"], ["check_name", "observed"]].to_dict("records")
    assert not findings["flagged"].any()


def test_inferred_suite_passes_on_its_reference(clean_run, wine):
    findings, checks = clean_run
    assert len(findings) == len(wine) and not findings["flagged"].any()
    assert (findings["score"] == 0).all()
    assert checks["success"].all()


def test_planted_defects_flag_exactly_those_rows(planted_run):
    findings, _ = planted_run
    flagged = findings[findings["flagged"]].set_index("item_id")
    assert set(flagged.index) == set(PLANTED)
    for item, text in PLANTED.items():
        assert text in flagged.loc[item, "reason"], flagged.loc[item, "reason"]
    assert "(expect_column_values_to_be_between)" in flagged.loc["w10", "reason"]
    assert (flagged["score"] == 1.0).all()


def test_duplicated_id_rows_merge_into_one_finding(planted_run):
    findings, _ = planted_run
    detail = json.loads(findings.set_index("item_id").loc["w40", "detail"])
    assert sorted(f["row"] for f in detail["failures"]) == [40, 41]
    assert detail["failed"] == ["expect_column_values_to_be_unique(id)"]


def test_check_results_have_one_row_per_expectation(planted_run, suite):
    _, checks = planted_run
    assert tuple(checks.columns) == CHECK_RESULTS_COLUMNS and len(checks) == len(suite["expectations"])
    assert checks["item_id"].isna().all()
    failed = checks[~checks["success"]].set_index("check_name")
    assert set(failed.index) == {
        "expect_column_values_to_be_between(magnesium)",
        "expect_column_values_to_not_be_null(alcohol)",
        "expect_column_values_to_be_in_set(cultivar)",
        "expect_column_values_to_be_unique(id)",
    }
    assert failed.loc["expect_column_values_to_be_unique(id)", "observed"] == "2 of 178 rows unexpected"
    assert json.loads(failed.loc["expect_column_values_to_be_in_set(cultivar)", "detail"])["item_ids"] == ["w30"]


def test_schema_changes_are_failed_check_results_not_item_findings(schema_run):
    findings, checks = schema_run
    observed = checks.set_index("check_name")["observed"]
    assert observed["expect_table_columns_to_match_set"] == "missing columns ['ash']; new columns ['vintage']"
    assert observed["expect_column_values_to_be_in_type_list(alcohol)"] == "alcohol has type str, expected number"
    assert observed["expect_column_values_to_be_between(ash)"] == "column 'ash' is missing"
    assert not checks.set_index("check_name").loc["expect_table_columns_to_match_set", "success"]
    assert json.loads(checks.set_index("check_name").loc["expect_table_columns_to_match_set", "detail"])["level"] == "table"
    assert not findings["flagged"].any()


def test_bad_number_in_csv_retypes_the_column(wine_csv):
    frame = pd.read_csv(wine_csv)
    reference = frame[frame["id"] != "bad"].astype({"alcohol": "float64"})
    findings, checks = run_suite(frame, infer_suite(reference, id_col="id"), id_col="id")
    failed = checks[~checks["success"]].set_index("check_name")["observed"]
    assert failed["expect_column_values_to_be_in_type_list(alcohol)"] == "alcohol has type str, expected number"
    assert set(findings["item_id"]) == set(frame["id"]) and not findings["flagged"].any()


def test_mostly_tolerates_a_few_rows_and_flags_all_once_it_fails():
    suite = {"name": "s", "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x", "mostly": 0.95}}]}
    few = pd.DataFrame({"x": [None] * 2 + [1.0] * 98})
    findings, checks = run_suite(few, suite)
    assert checks["success"].all() and not findings["flagged"].any()
    assert findings["score"].iloc[0] == 0.5 and findings["score"].iloc[2] == 0.0
    many = pd.DataFrame({"x": [None] * 10 + [1.0] * 90})
    findings, checks = run_suite(many, suite)
    assert not checks["success"].any() and findings["flagged"].sum() == 10


def test_item_ids_name_the_rows():
    suite = {"name": "s", "expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "min_value": 0}}]}
    findings, _ = run_suite(pd.DataFrame({"x": [1.0, -1.0]}, index=[7, 9]), suite, item_ids=["a.png", "b.png"])
    assert findings.set_index("item_id")["flagged"].to_dict() == {"a.png": False, "b.png": True}
    assert findings["reason"].iloc[1] == "x = -1.0 is below the minimum 0 (expect_column_values_to_be_between)."
    with pytest.raises(ValueError, match="item_ids has 1 values for a table of 2 rows"):
        run_suite(pd.DataFrame({"x": [1.0, 2.0]}), suite, item_ids=["a"])
    with pytest.raises(ConfigError, match="id_col 'sku' is not a column"):
        run_suite(pd.DataFrame({"x": [1.0]}), suite, id_col="sku")


def test_repeated_expectations_get_numbered_check_names():
    between = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "min_value": 0}}
    suite = {"name": "s", "expectations": [between, {**between, "kwargs": {"column": "x", "max_value": 5}}]}
    findings, checks = run_suite(pd.DataFrame({"x": [-1.0, 9.0, 3.0]}), suite)
    assert checks["check_name"].tolist() == ["expect_column_values_to_be_between(x)", "expect_column_values_to_be_between(x) #2"]
    assert findings["flagged"].tolist() == [True, True, False]
    assert findings["reason"].iloc[1] == "x = 9.0 is above the maximum 5 (expect_column_values_to_be_between)."


def test_findings_honour_the_contract(planted_run, wine):
    findings, _ = planted_run
    assert tuple(findings.columns) == FINDINGS_COLUMNS
    assert validate_findings(findings) is not None
    assert set(findings["issue_type"]) == {"check_failed"}
    assert not findings.duplicated(["item_id", "issue_type"]).any()
    assert len(findings) == wine["id"].nunique() - 1


def test_saved_suite_loads_back_unchanged(tmp_path, suite):
    path = tmp_path / "wine.json"
    path.write_text(json.dumps(suite))
    assert load_suite(path) == suite


def test_suite_saved_by_gx_gives_the_same_results(tmp_path, suite, planted, planted_run):
    import great_expectations as gx

    path = tmp_path / "wine.json"
    path.write_text(json.dumps(gx.ExpectationSuite(**suite).to_json_dict(), indent=2))
    loaded = load_suite(path)
    assert loaded["name"] == "wine" and len(loaded["expectations"]) == len(suite["expectations"])
    findings, checks = run_suite(planted, loaded, id_col="id")
    columns = ["check_name", "success", "observed"]
    pd.testing.assert_frame_equal(checks[columns], planted_run[1][columns])
    pd.testing.assert_frame_equal(findings, planted_run[0])


def test_yaml_short_form_maps_to_expectations(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("columns:\n  price: {min: 0, max: 1000, not_null: true}\n  colour: {in: [red, blue]}\nunique: [id]\n")
    suite = load_suite(path)
    assert suite["name"] == "prices"
    assert [(e["type"], e["kwargs"]) for e in suite["expectations"]] == [
        ("expect_column_values_to_not_be_null", {"column": "price"}),
        ("expect_column_values_to_be_between", {"column": "price", "min_value": 0, "max_value": 1000}),
        ("expect_column_values_to_be_in_set", {"column": "colour", "value_set": ["red", "blue"]}),
        ("expect_column_values_to_be_unique", {"column": "id"}),
    ]
    frame = pd.DataFrame({"id": ["a", "b", "c"], "price": [5.0, 2000.0, 7.0], "colour": ["red", "blue", "green"]})
    findings, _ = run_suite(frame, suite, id_col="id")
    reasons = findings.set_index("item_id")["reason"]
    assert reasons["b"] == "price = 2000.0 is above the maximum 1000 (expect_column_values_to_be_between)."
    assert reasons["c"].startswith("colour = 'green' is not one of the allowed values ['red', 'blue']")
    assert pd.isna(reasons["a"])


@pytest.mark.parametrize("name", ["suite.yaml", "suite.json"])
def test_documented_examples_load_and_run(name):
    suite = load_suite(ROOT / "docs" / "examples" / name)
    frame = pd.DataFrame({"id": ["p1", "p2", "x3"], "price": [9.5, -1.0, 3.0], "colour": ["red", "blue", "red"], "weight_kg": [1.0, 2.0, 0.5]})
    findings, checks = run_suite(frame, suite, id_col="id")
    assert "p2" in set(findings.loc[findings["flagged"], "item_id"]) and checks.iloc[0]["success"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("s.json", '{"expectations": [', "is not valid JSON"),
        ("s.yaml", "columns: [price", "is not valid YAML"),
        ("s.toml", "x = 1", "suite files end in .json, .yaml or .yml"),
        ("s.yaml", "- price", "a suite is a mapping"),
        ("s.yaml", "colums: {price: {min: 0}}", "unknown key 'colums'"),
        ("s.yaml", "columns: {price: {maxx: 3}}", "column 'price' has unknown rule 'maxx'; valid rules are"),
        ("s.yaml", "columns: {price: {min: zero}}", "min and max must be numbers"),
        ("s.yaml", "columns: {price: {type: money}}", "use one of number, bool, string, datetime"),
        ("s.json", '{"expectations": [{"expectation_type": "expect_column_values_to_be_unique"}]}', "GX 1.x calls it 'type'"),
        ("s.json", '{"expectations": [{"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "x"}}]}', "unknown type 'expect_column_values_to_be_betwen'"),
        ("s.json", '{"expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {"min_value": 0}}]}', "invalid kwargs — column: field required"),
    ],
)
def test_malformed_suites_raise_config_error(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_suite(path)


def test_missing_suite_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_suite(tmp_path / "nope.yaml")


def test_importing_the_module_does_not_import_gx():
    code = "import sys, checks.tabular; sys.exit('great_expectations' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_schema_changes_become_one_run_level_finding():
    reference = pd.DataFrame({"id": ["a", "b", "c"], "price": [1.0, 2.0, 3.0]})
    suite = infer_suite(reference, id_col="id")
    _, same = run_suite(reference, suite, id_col="id")
    clean = schema_finding(same)
    assert clean["item_id"].tolist() == [RUN_ITEM_ID] and not clean["flagged"].any() and clean["score"].iloc[0] == 0
    changed = reference.drop(columns="price").assign(colour=["red", "red", "blue"])
    _, results = run_suite(changed, suite, id_col="id")
    finding = schema_finding(results)
    assert finding["flagged"].all() and finding["score"].iloc[0] >= 1
    assert "missing columns ['price']" in finding["reason"].iloc[0] and "new columns ['colour']" in finding["reason"].iloc[0]

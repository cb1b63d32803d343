"""Bad tabular inputs: each case audits a CSV of real rows of scikit-learn's wine data plus the bad
input, and ends either in exit code 2 with a message saying what to fix or in a completed audit with
the bad rows as ``corrupt`` findings and every other row scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.reliability.conftest import Expect, expect_completed, expect_exit_2, run_audit

pytestmark = pytest.mark.usefixtures("prefect_harness")

ARGS = ("--id-col", "id", "--label-col", "cultivar")
COLUMNS = ["alcohol", "malic_acid", "ash", "magnesium", "proline"]


def wine(n: int = 12) -> pd.DataFrame:
    """``n`` real rows of the wine data, spread over the three cultivars: id, 5 features, cultivar."""
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True).frame
    frame = data.iloc[np.linspace(0, len(data) - 1, n).astype(int)][COLUMNS + ["target"]].reset_index(drop=True)
    frame = frame.rename(columns={"target": "cultivar"})
    frame.insert(0, "id", [f"w{i}" for i in range(n)])
    return frame


def ids(frame: pd.DataFrame) -> set[str]:
    return set(frame["id"])


def write(tmp: Path, frame: pd.DataFrame, name: str = "t.csv") -> Path:
    path = tmp / name
    frame.to_csv(path, index=False)
    return path


# --- cases ------------------------------------------------------------------------------------------


def mixed_type_numeric(tmp):
    frame = wine().astype({"magnesium": object})
    frame.loc[3, "magnesium"] = "about a hundred"  # one word in a numeric column
    return write(tmp, frame), Expect(ids(frame), bad={"w3": ("corrupt", "'magnesium' has a non-numeric")}, args=ARGS)


def mixed_type_categorical(tmp):
    frame = wine()
    frame["grade"] = [1, "A", 2.5, "B+", 3, "C", True, "D", 4, "E", None, "F"]  # no type dominates
    return write(tmp, frame), Expect(ids(frame), scored=ids(frame), args=ARGS)


def all_null_column(tmp):
    frame = wine()
    frame["notes"] = np.nan
    return write(tmp, frame), Expect(ids(frame), scored=ids(frame), args=ARGS)


def constant_column(tmp):
    frame = wine()
    frame["country"] = "FR"
    frame["vintage"] = 2024
    return write(tmp, frame), Expect(ids(frame), scored=ids(frame), args=ARGS)


def single_row(tmp):
    frame = wine(1)
    return write(tmp, frame), Expect(ids(frame), scored=ids(frame), args=ARGS)


def inf_values(tmp):
    frame = wine().astype({"proline": object, "ash": object})
    frame.loc[2, "proline"] = "inf"
    frame.loc[5, "ash"] = "-Infinity"
    bad = {"w2": ("corrupt", "'proline' has a non-numeric or infinite value"), "w5": ("corrupt", "'ash' has a non-numeric or infinite value")}
    return write(tmp, frame), Expect(ids(frame), bad=bad, args=ARGS)


def extreme_magnitudes(tmp):
    frame = wine()
    frame.loc[4, "proline"] = 1e308  # finite, but its square and the column's variance overflow
    frame.loc[7, "ash"] = -1e300
    return write(tmp, frame), Expect(ids(frame), scored=ids(frame), args=ARGS)


def duplicated_column_names(tmp):
    path = tmp / "t.csv"
    frame = wine()
    frame.to_csv(path, index=False, header=["id", "alcohol", "malic_acid", "alcohol", "magnesium", "proline", "cultivar"])
    return path, Expect(error=("duplicated column names", "alcohol", "rename them"), args=ARGS)


def non_utf8_csv(tmp):
    frame = wine()
    frame["region"] = ["Côte-d'Or", "Mâcon", "Bourgogne", "Rhône"] * 3
    path = tmp / "t.csv"
    path.write_bytes(frame.to_csv(index=False).encode("latin-1"))
    return path, Expect(error=("is not valid UTF-8", "line 2", "0xF4", "Re-save it as UTF-8"), args=ARGS)


def empty_row(tmp):
    frame = wine().astype(object)
    frame.loc[6, COLUMNS] = None
    return write(tmp, frame), Expect(ids(frame), bad={"w6": ("corrupt", "row has no values")}, args=ARGS)


def all_rows_identical(tmp):
    frame = wine()
    frame.loc[:, COLUMNS] = frame.loc[0, COLUMNS].to_numpy()
    return write(tmp, frame), Expect(ids(frame), scored=ids(frame), args=ARGS)


def no_feature_columns(tmp):
    frame = wine()[["id", "cultivar"]]
    return write(tmp, frame), Expect(error=("no feature columns besides the id and label columns",), args=ARGS)


def unique_strings_column(tmp):
    frame = wine(60)
    frame["uuid"] = [f"{i:08x}-{i * 7919 % 65536:04x}" for i in range(60)]  # more categories than the encoder keeps
    return write(tmp, frame), Expect(ids(frame), scored=ids(frame), args=ARGS)


CASES = {
    "mixed-type column (a word among numbers)": mixed_type_numeric,
    "mixed-type column (no type dominates)": mixed_type_categorical,
    "all-null column": all_null_column,
    "constant columns": constant_column,
    "single row": single_row,
    "inf values": inf_values,
    "extreme magnitudes (1e308)": extreme_magnitudes,
    "duplicated column names": duplicated_column_names,
    "non-UTF-8 CSV": non_utf8_csv,
    "row with no values": empty_row,
    "all rows identical": all_rows_identical,
    "no feature columns": no_feature_columns,
    "high-cardinality string column": unique_strings_column,
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_table_input(tmp_path, case):
    source, expect = case(tmp_path)
    result = run_audit(source, tmp_path / "audit.duckdb", *expect.args)
    if expect.error:
        expect_exit_2(result, *expect.error)
        return
    expect_completed(result, tmp_path / "audit.duckdb", expect)

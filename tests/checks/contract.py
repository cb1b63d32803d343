"""The findings contract every quality check must honour (shared by the check tests)."""

from typing import Callable

import pandas as pd

from winnow.findings import FINDINGS_COLUMNS


def assert_low_quality_contract(check: Callable[[pd.DataFrame], pd.DataFrame], properties: pd.DataFrame) -> None:
    """One ``low_quality`` row per item with the contract's columns, and an empty frame for no items."""
    result = check(properties)
    assert tuple(result.columns) == FINDINGS_COLUMNS
    assert len(result) == len(properties) and result["item_id"].is_unique
    assert set(result["issue_type"]) == {"low_quality"}
    empty = check(properties.iloc[0:0])
    assert tuple(empty.columns) == FINDINGS_COLUMNS and empty.empty

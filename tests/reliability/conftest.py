"""Helpers for the bad-input cases: run ``winnow audit`` through typer's runner and check that it
ended in one of the two allowed ways.

(a) exit code 2 with a message that names the problem and what to do, and no traceback; or
(b) exit code 0, the run completed, no item lost, every bad item a flagged ``corrupt`` /
    ``low_quality`` finding with a reason, every other item readable and scored by the
    ``near_duplicate`` and ``outlier`` detectors, and no detector failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from winnow.cli import app
from winnow.store import Store

runner = CliRunner()


@dataclass
class Expect:
    """What a case built and how its audit must end.

    ``items``: every item id the audit must keep (normal and bad). ``bad``: item id -> (issue type,
    fragment of the reason) for items that must be flagged. ``scored``: item ids that are unusual but
    valid and must be read and scored (not corrupt). ``error``: fragments of the exit-2 message
    (case a); when set, nothing else is checked. ``args``: extra ``winnow audit`` options. ``texts``:
    item id -> text that must be stored exactly as written.
    """

    items: set[str] = field(default_factory=set)
    bad: dict[str, tuple[str, str]] = field(default_factory=dict)
    scored: set[str] = field(default_factory=set)
    error: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    texts: dict[str, str] = field(default_factory=dict)


@dataclass
class Audited:
    store: Store
    run_id: str
    items: pd.DataFrame
    findings: pd.DataFrame
    summary: dict

    def finding(self, item_id: str, issue_type: str) -> pd.Series:
        rows = self.findings[(self.findings.item_id == item_id) & (self.findings.issue_type == issue_type)]
        assert len(rows) == 1, f"{item_id!r} has {len(rows)} {issue_type} findings"
        return rows.iloc[0]


def run_audit(source: Path, db: Path, *args: str):
    return runner.invoke(app, ["audit", str(source), "--db", str(db), *args])


def expect_exit_2(result, *fragments: str) -> str:
    """Case (a): exit 2, an ``error:`` line, every fragment in the message, no traceback."""
    output = result.output
    assert result.exit_code == 2, f"expected exit 2, got {result.exit_code}: {output}\n{result.exception!r}"
    assert "error:" in output and "Traceback" not in output, output
    message = " ".join(output.split())  # rich wraps long lines
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def expect_completed(result, db: Path, expect: Expect) -> Audited:
    """Case (b): the audit completed, nothing was lost, bad items are findings, the rest is scored."""
    assert result.exit_code == 0, f"audit failed ({result.exit_code}): {result.output}\n{result.exception!r}"
    store = Store(db)
    run_id = store.latest_run_id()
    run = store.get_run(run_id)
    assert run["status"] == "completed", run
    summary = run["counts"]
    assert summary.get("failed", {}) == {}, f"detectors failed: {summary['failed']}"
    items = store.load_items(run_id)
    findings = store.findings(run_id)
    audited = Audited(store, run_id, items, findings, summary)

    ids = list(items["item_id"])
    assert len(ids) == len(set(ids)), "an item id appears twice"
    assert set(ids) == expect.items, f"items lost {expect.items - set(ids)!r} or invented {set(ids) - expect.items!r}"
    assert summary["items"] == len(expect.items)

    errors = dict(zip(items["item_id"], items["error"]))
    for item_id, (issue_type, fragment) in expect.bad.items():
        row = audited.finding(item_id, issue_type)
        assert row["flagged"], f"{item_id!r} is not flagged {issue_type}: {row.to_dict()}"
        assert fragment.lower() in (row["reason"] or "").lower(), f"{fragment!r} not in reason {row['reason']!r}"
    corrupt_expected = {i for i, (t, _) in expect.bad.items() if t == "corrupt"}
    unreadable = {i for i, e in errors.items() if e is not None}
    assert unreadable == corrupt_expected, f"unreadable {sorted(unreadable)!r}, expected {sorted(corrupt_expected)!r}: {errors}"
    for item_id in ids:  # every item is in the corrupt check, flagged exactly when unreadable
        assert bool(audited.finding(item_id, "corrupt")["flagged"]) == (item_id in unreadable)
    for item_id in expect.scored:
        assert errors[item_id] is None, f"{item_id!r} should be readable: {errors[item_id]}"
    readable = [i for i in ids if i not in unreadable]
    for issue_type in ("near_duplicate", "outlier"):
        scored = set(findings.loc[findings.issue_type == issue_type, "item_id"])
        assert scored == set(readable), f"{issue_type}: unscored {set(readable) - scored!r}, extra {scored - set(readable)!r}"
    assert findings["score"].notna().all()
    return audited


@pytest.fixture
def audit_env(prefect_harness) -> dict[str, str]:
    """Environment for ``winnow audit`` subprocesses: they share the session's Prefect test server
    instead of each starting a temporary one (saves ~10 s a start, and several temporary servers
    starting at once on a small machine can miss Prefect's 20 s startup timeout)."""
    import os

    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_API_URL": str(PREFECT_API_URL.value())}

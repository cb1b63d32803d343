"""The CLI through typer's runner: real audits, real exports, and exit code 2 for bad input."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from winnow.cli import app
from winnow.store import Store
from winnow.findings import FINDINGS_COLUMNS, PAIRS_COLUMNS

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def audited(tmp_path_factory, text_jsonl, prefect_harness):
    db = tmp_path_factory.mktemp("cli") / "cli.duckdb"
    result = runner.invoke(app, ["audit", str(text_jsonl), "--db", str(db), "--id-col", "id", "--label-col", "label", "--json"])
    assert result.exit_code == 0, result.output
    return db, json.loads(result.output)


def test_audit_prints_a_summary(tmp_path, text_jsonl):
    result = runner.invoke(app, ["audit", str(text_jsonl), "--db", str(tmp_path / "x.duckdb"), "--id-col", "id"])
    assert result.exit_code == 0, result.output
    assert "findings per issue type" in result.output and "exact_duplicate" in result.output
    assert "winnow dashboard --db" in result.output


def test_runs_and_show(audited):
    db, summary = audited
    listing = runner.invoke(app, ["runs", "--db", str(db)])
    assert listing.exit_code == 0 and summary["run_id"] in listing.output
    shown = runner.invoke(app, ["show", summary["run_id"], "--db", str(db)])
    assert shown.exit_code == 0 and "status: completed" in shown.output and "near_duplicate" in shown.output


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_export_findings_has_every_contract_column(audited, tmp_path, fmt):
    db, summary = audited
    out = tmp_path / f"findings.{fmt}"
    result = runner.invoke(app, ["export", "--what", "findings", "--out", str(out), "--db", str(db)])
    assert result.exit_code == 0, result.output
    frame = {"csv": pd.read_csv, "parquet": pd.read_parquet, "jsonl": lambda p: pd.read_json(p, lines=True)}[fmt](out)
    assert tuple(frame.columns) == FINDINGS_COLUMNS
    per_type = frame.groupby("issue_type")["item_id"].nunique()
    assert per_type["corrupt"] == 12 and per_type["near_duplicate"] == 11  # every embedded item scored


def test_export_pairs_and_clean(audited, tmp_path):
    db, _ = audited
    assert runner.invoke(app, ["export", "--what", "pairs", "--out", str(tmp_path / "p.csv"), "--db", str(db)]).exit_code == 0
    pairs = pd.read_csv(tmp_path / "p.csv")
    assert tuple(pairs.columns) == PAIRS_COLUMNS
    assert {("a", "c", "content_hash")} <= set(zip(pairs.item_a, pairs.item_b, pairs.method))
    assert runner.invoke(app, ["export", "--what", "clean", "--out", str(tmp_path / "c.jsonl"), "--db", str(db)]).exit_code == 0
    clean = pd.read_json(tmp_path / "c.jsonl", lines=True, dtype={"item_id": str})
    assert "c" not in set(clean.item_id) and "i" not in set(clean.item_id) and "a" in set(clean.item_id)


def test_clean_table_export_keeps_original_columns(tmp_path, wine_csv):
    db = tmp_path / "t.duckdb"
    assert runner.invoke(app, ["audit", str(wine_csv), "--db", str(db), "--id-col", "id", "--label-col", "cultivar"]).exit_code == 0
    assert runner.invoke(app, ["export", "--what", "clean", "--out", str(tmp_path / "clean.csv"), "--db", str(db)]).exit_code == 0
    clean = pd.read_csv(tmp_path / "clean.csv")
    original = pd.read_csv(wine_csv)
    assert list(clean.columns) == list(original.columns)
    assert "dup" not in set(clean.id) and "bad" not in set(clean.id) and "w4" in set(clean.id)


@pytest.mark.parametrize(
    "args, message",
    [
        (["audit", "/no/such/folder"], "does not exist"),
        (["audit"], "give a SOURCE"),
        (["audit", "{text}", "--modality", "audio"], "unknown modality"),
        (["audit", "{text}", "--param", "near_duplicate=0.9"], "DETECTOR.PARAM=VALUE"),
        (["audit", "{text}", "--param", "near_duplicate.thresh=0.9"], "valid: threshold"),
        (["audit", "{text}", "--detector", "near_duplicates"], "unknown detector 'near_duplicates'"),
        (["audit", "{text}", "--model", "minilm", "--modality", "tabular"], "embeds text data"),
        (["audit", "{text}", "--k", "0"], "--k must be at least 1"),
        (["audit", "--resume", "nope"], "no run 'nope'"),
        (["show", "nope"], "no run 'nope'"),
        (["export", "--what", "everything", "--out", "x.csv"], "--what must be one of"),
        (["export", "--what", "findings", "--out", "x.xlsx"], "cannot tell the format"),
    ],
    ids=["missing source", "no source", "bad modality", "malformed param", "unknown param", "unknown detector", "wrong model", "bad k", "resume unknown", "show unknown", "bad what", "bad format"],
)
def test_bad_input_exits_2_with_a_message(audited, text_jsonl, args, message):
    db, _ = audited
    args = [a.replace("{text}", str(text_jsonl)) for a in args] + ["--db", str(db)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_detector_typo_fails_before_any_run_is_registered(audited, text_jsonl):
    db, _ = audited
    before = len(Store(db).list_runs())
    for option in (["--param", "label_error.refitt=false"], ["--detector", "labels"]):
        result = runner.invoke(app, ["audit", str(text_jsonl), "--db", str(db), *option])
        assert result.exit_code == 2 and "valid:" in result.output, result.output
    assert len(Store(db).list_runs()) == before


def all_verbs() -> list[str]:
    """Every command of the CLI, sub-commands as "group verb"."""
    import typer

    root = typer.main.get_command(app)
    verbs = []
    for name, command in root.commands.items():
        subcommands = getattr(command, "commands", None)
        verbs += [f"{name} {sub}" for sub in subcommands] if subcommands else [name]
    return verbs


def test_every_verb_has_help_with_an_example_and_is_in_the_readme():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert {"audit", "runs", "show", "export", "dashboard", "demo"} <= set(all_verbs())
    for verb in all_verbs():
        result = runner.invoke(app, [*verb.split(), "--help"])
        assert result.exit_code == 0 and "Example: winnow" in result.output, verb
        assert f"winnow {verb}" in readme, f"`winnow {verb}` is not documented in the README"


def test_inferred_suite_checks_a_later_table(tmp_path, wine_csv):
    reference = pd.read_csv(wine_csv)
    reference = reference[reference.id != "bad"]
    reference.to_csv(tmp_path / "reference.csv", index=False)
    suite = tmp_path / "suite.json"
    inferred = runner.invoke(app, ["suite", "infer", str(tmp_path / "reference.csv"), "--id-col", "id", "--out", str(suite)])
    assert inferred.exit_code == 0, inferred.output
    batch = reference.copy()
    batch.loc[batch.id == "w7", "magnesium"] = -3.0
    batch["vintage"] = 2024  # a new column: a schema change
    batch.to_csv(tmp_path / "batch.csv", index=False)
    db = tmp_path / "s.duckdb"
    result = runner.invoke(app, ["audit", str(tmp_path / "batch.csv"), "--db", str(db), "--id-col", "id", "--label-col", "cultivar", "--suite", str(suite)])
    assert result.exit_code == 0, result.output
    assert "check failed" in result.output and "vintage" in result.output
    store = Store(db)
    run_id = store.latest_run_id()
    failed = store.findings(run_id, issue_type="check_failed", flagged_only=True).set_index("item_id")
    assert sorted(failed.index) == ["__run__", "w7"]  # the bad row, and the schema change at run level
    assert "magnesium = -3.0" in failed.loc["w7", "reason"]
    assert "new columns ['vintage']" in failed.loc["__run__", "reason"]
    assert not store.check_results(run_id, failed_only=True).empty
    missing = runner.invoke(app, ["audit", str(tmp_path / "batch.csv"), "--db", str(db), "--suite", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "winnow suite infer" in missing.output
    from_run = runner.invoke(app, ["suite", "infer", "--run", run_id, "--db", str(db), "--out", str(tmp_path / "from-run.json")])
    assert from_run.exit_code == 0, from_run.output
    assert "vintage" in (tmp_path / "from-run.json").read_text()  # the run's table, with its new column
    neither = runner.invoke(app, ["suite", "infer", "--out", str(tmp_path / "x.json")])
    assert neither.exit_code == 2 and "--run RUN" in neither.output


def test_bracketed_names_and_messages_are_printed_literally(tmp_path):
    path = tmp_path / "[draft] reviews.jsonl"
    path.write_text('{"text": "[bold]not markup[/bold] but a review with brackets", "id": "[x]"}\n{"text": "another one", "id": "y"}\n')
    result = runner.invoke(app, ["audit", str(path), "--db", str(tmp_path / "m.duckdb"), "--id-col", "id", "--name", "[draft] reviews"])
    assert result.exit_code == 0, result.output
    assert "[draft] reviews" in result.output
    missing = runner.invoke(app, ["audit", str(path), "--db", str(tmp_path / "m.duckdb"), "--label-col", "[label]"])
    assert missing.exit_code == 2 and "'[label]'" in missing.output


def test_a_missing_source_registers_no_run(tmp_path):
    db = tmp_path / "typo.duckdb"
    result = runner.invoke(app, ["audit", str(tmp_path / "nothing.csv"), "--db", str(db)])
    assert result.exit_code == 2 and "does not exist" in " ".join(result.output.split())
    assert not db.exists() or Store(db).list_runs().empty

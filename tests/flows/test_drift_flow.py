"""Drift in real audit flows: a run-level finding against a reference run, and where it shows up."""

from __future__ import annotations

import json

import pytest

from flows.audit import audit_flow
from tests.conftest import TEXTS
from winnow.config import AuditConfig
from winnow.errors import RunNotFound
from winnow.export import export
from winnow.findings import RUN_ITEM_ID
from winnow.report import summary_markdown
from winnow.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")

RECIPES = [
    "Preheat the oven to 180 degrees and line a tin with baking paper.",
    "Whisk the eggs with the sugar until pale and doubled in volume.",
    "Fold in the sifted flour with a metal spoon, keeping the air in.",
    "Simmer the onions in butter for ten minutes until soft and golden.",
    "Season the stock with salt, pepper and a bay leaf, then reduce by half.",
    "Knead the dough for eight minutes until smooth and elastic.",
    "Leave the bread to prove in a warm place for an hour.",
    "Roast the peppers until their skins blister, then peel them.",
    "Stir the risotto constantly, adding the hot stock a ladle at a time.",
    "Chill the pastry for thirty minutes before rolling it out.",
    "Grate the zest of two lemons into the melted butter.",
    "Serve the soup with crusty bread and a swirl of cream.",
]


def write_jsonl(path, texts):
    path.write_text("\n".join(json.dumps({"id": f"r{i}", "text": t}) for i, t in enumerate(texts)) + "\n")
    return path


@pytest.fixture(scope="module")
def drift_db(tmp_path_factory):
    """A reference run of reviews, then a batch of recipes and a batch of the same reviews against it."""
    folder = tmp_path_factory.mktemp("drift")
    db = str(folder / "drift.duckdb")
    reviews = write_jsonl(folder / "reviews.jsonl", [t for _, t, _ in TEXTS if t])
    recipes = write_jsonl(folder / "recipes.jsonl", RECIPES)
    reference = audit_flow(AuditConfig(source=str(reviews), id_col="id", name="feed"), db=db)
    shifted = audit_flow(AuditConfig(source=str(recipes), id_col="id", name="feed", reference="previous"), db=db)
    same = audit_flow(AuditConfig(source=str(reviews), id_col="id", name="feed", reference=reference["run_id"]), db=db)
    return Store(db), reference, shifted, same


def test_a_shifted_batch_gets_one_flagged_run_level_finding(drift_db):
    store, reference, shifted, _ = drift_db
    drift = store.findings(shifted["run_id"], issue_type="drift")
    assert list(drift["item_id"]) == [RUN_ITEM_ID] and drift["flagged"].all()
    detail = json.loads(drift["detail"].iloc[0])
    assert set(detail["p_values"]) == {"mmd", "ks"} and detail["effects"]["mmd2"] > 0
    assert shifted["drift"]["reference"] == reference["run_id"]  # "previous" resolved to the earlier run
    assert drift["reason"].iloc[0].startswith("drift:")


def test_the_same_data_does_not_drift(drift_db):
    store, _, _, same = drift_db
    drift = store.findings(same["run_id"], issue_type="drift")
    assert len(drift) == 1 and not drift["flagged"].any()


def test_no_reference_means_no_drift_finding(drift_db):
    store, reference, _, _ = drift_db
    assert store.findings(reference["run_id"], issue_type="drift").empty
    assert "drift" not in reference


def test_drift_shows_in_the_markdown_artifact_and_exports(drift_db, tmp_path):
    store, _, shifted, _ = drift_db
    markdown = summary_markdown(shifted)
    assert "## Drift" in markdown and "**drift**" in markdown and "| mmd |" in markdown
    _, rows = export(store, "findings", tmp_path / "findings.csv", run_id=shifted["run_id"])
    assert rows == len(store.findings(shifted["run_id"]))
    _, kept = export(store, "clean", tmp_path / "clean.jsonl", run_id=shifted["run_id"])
    assert kept <= len(RECIPES)  # the run-level finding removes no item and adds no row


def test_reference_with_another_model_is_skipped_with_the_reason(drift_db, wine_csv):
    store, reference, _, _ = drift_db
    summary = audit_flow(AuditConfig(source=str(wine_csv), id_col="id", reference=reference["run_id"]), db=str(store.path))
    assert "all-minilm-l6-v2" in summary["skipped"]["drift"] and "--model tabular" in summary["skipped"]["drift"]
    assert store.findings(summary["run_id"], issue_type="drift").empty


def test_first_run_with_previous_reference_is_skipped(tmp_path, text_jsonl):
    summary = audit_flow(AuditConfig(source=str(text_jsonl), id_col="id", reference="previous"), db=str(tmp_path / "new.duckdb"))
    assert "no earlier completed run" in summary["skipped"]["drift"]


def test_unknown_reference_fails_before_a_run_is_created(drift_db):
    store, _, _, _ = drift_db
    before = len(store.list_runs())
    with pytest.raises(RunNotFound, match="winnow runs"):
        audit_flow(AuditConfig(source=str(store.path.parent / "reviews.jsonl"), id_col="id", reference="20000101-000000-nope"), db=str(store.path))
    assert len(store.list_runs()) == before

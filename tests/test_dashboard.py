"""The triage page against real DuckDB files written through the Store API."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from winnow.datasets.model import items_frame
from winnow.findings import make_findings
from winnow.store import Store

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def _pairs(rows: list[tuple[str, str, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item_a", "item_b", "similarity", "method"])


def _image_run(store: Store, folder: Path) -> str:
    """Three real PNGs (one an exact copy) and a broken file, audited by hand."""
    folder.mkdir()
    Image.new("RGB", (28, 28), (200, 30, 30)).save(folder / "red.png")
    Image.new("RGB", (28, 28), (30, 30, 200)).save(folder / "blue.png")
    (folder / "red_copy.png").write_bytes((folder / "red.png").read_bytes())
    (folder / "broken.png").write_text("not a png")
    ids = ["red.png", "blue.png", "red_copy.png", "broken.png"]
    items = items_frame(
        [{"item_id": i, "modality": "image", "uri": str(folder / i), "content_hash": i,
          "error": "not a readable image" if i == "broken.png" else None} for i in ids]
    )
    findings = pd.concat(
        [
            make_findings(ids, "exact_duplicate", [0.0, 0.0, 1.0, 0.0], [False, False, True, False],
                          [None, None, "byte-identical to red.png", None], [{}] * 4,
                          related_item_ids=[None, None, "red.png", None], group_ids=[None, None, "g1", None]),
            make_findings(ids, "corrupt", [0.0, 0.0, 0.0, 1.0], [False, False, False, True],
                          [None, None, None, "not a readable image"], [{}] * 4),
        ],
        ignore_index=True,
    )
    run_id = store.create_run(dataset="shapes", source=str(folder), modality="image", config={})
    store.save_items(run_id, items)
    store.save_results(run_id, findings, _pairs([("red.png", "red_copy.png", 1.0, "sha256")]))
    store.finish_run(run_id, status="completed", counts={"items": 4, "flagged": {"exact_duplicate": 1, "corrupt": 1}})
    return run_id


def _text_run(store: Store) -> str:
    """Three short texts, one near copy of another."""
    texts = {"a": "A gorgeous, moving portrait of a family.", "b": "A tedious mess.", "c": "A gorgeous moving portrait of a family!"}
    items = items_frame([{"item_id": k, "modality": "text", "text": v, "content_hash": k} for k, v in texts.items()])
    findings = make_findings(list(texts), "near_duplicate", [0.1, 0.0, 0.97], [False, False, True],
                             [None, None, "near copy of a"], [{}] * 3, related_item_ids=[None, None, "a"])
    run_id = store.create_run(dataset="reviews", source="reviews.jsonl", modality="text", config={})
    store.save_items(run_id, items)
    store.save_results(run_id, findings, _pairs([("a", "c", 0.97, "cosine")]))
    store.finish_run(run_id, status="completed", counts={"items": 3, "flagged": {"near_duplicate": 1}})
    return run_id


@pytest.fixture
def image_db(tmp_path, monkeypatch) -> tuple[Path, str]:
    """A database holding one image run; ``WINNOW_DB`` points at it."""
    db = tmp_path / "audit.duckdb"
    run_id = _image_run(Store(db), tmp_path / "images")
    monkeypatch.setenv("WINNOW_DB", str(db))
    return db, run_id


def _run_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception, at.exception
    return at


def test_image_run_shows_runs_counts_findings_thumbnails_and_pairs(image_db):
    db, run_id = image_db
    at = _run_app()

    assert str(db.resolve()) in at.caption[0].value
    runs = at.dataframe[0].value
    assert runs["run_id"].tolist() == [run_id]
    assert runs[["items", "flagged"]].iloc[0].tolist() == [4, 2]
    assert at.selectbox(key="run").value == run_id

    assert {m.label: m.value for m in at.metric} == {"corrupt": "1", "exact_duplicate": "1"}
    issue = at.selectbox(key="issue_type")
    assert issue.options == ["corrupt", "exact_duplicate"]

    issue.set_value("exact_duplicate").run()
    findings = at.dataframe[1].value
    assert findings["item_id"].tolist() == ["red_copy.png"]
    assert findings[["related_item_id", "group_id", "reason"]].iloc[0].tolist() == ["red.png", "g1", "byte-identical to red.png"]
    assert [image.captions for image in at.get("image")] == [["red_copy.png · 1.000"]]

    assert at.expander[0].label == "Duplicate pairs (1)"
    assert at.dataframe[2].value[["item_a", "item_b"]].values.tolist() == [["red.png", "red_copy.png"]]


def test_unreadable_image_gets_a_note_instead_of_a_thumbnail(image_db):
    at = _run_app()
    at.selectbox(key="issue_type").set_value("corrupt").run()
    assert at.dataframe[1].value["item_id"].tolist() == ["broken.png"]
    assert not at.get("image")
    assert at.warning[0].value.endswith("(file missing or unreadable): broken.png")


def test_flagged_only_off_lists_every_scored_item(image_db):
    at = _run_app()
    at.selectbox(key="issue_type").set_value("exact_duplicate").run()
    at.checkbox(key="flagged_only").uncheck().run()
    findings = at.dataframe[1].value
    assert findings["item_id"].iloc[0] == "red_copy.png"
    assert sorted(findings["item_id"]) == ["blue.png", "broken.png", "red.png", "red_copy.png"]


def test_text_run_shows_text_snippets(image_db):
    db, image_run = image_db
    text_run = _text_run(Store(db))
    at = _run_app()
    assert at.dataframe[0].value["run_id"].tolist()[0] == text_run
    at.selectbox(key="run").set_value(text_run).run()
    findings = at.dataframe[1].value
    assert findings[["item_id", "text"]].values.tolist() == [["c", "A gorgeous moving portrait of a family!"]]
    assert not at.get("image")


def test_missing_database_shows_message(tmp_path, monkeypatch):
    monkeypatch.setenv("WINNOW_DB", str(tmp_path / "nothing.duckdb"))
    at = _run_app()
    assert "no winnow database at" in at.info[0].value
    assert not at.dataframe


def test_database_without_runs_shows_message(tmp_path, monkeypatch):
    db = tmp_path / "empty.duckdb"
    Store(db).initialize()
    monkeypatch.setenv("WINNOW_DB", str(db))
    at = _run_app()
    assert "has no runs yet" in at.info[0].value
    assert not at.dataframe

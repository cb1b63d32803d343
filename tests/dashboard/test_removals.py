"""The Removals page and the other pages on a real ``winnow filter`` run (Prefect flow, real DuckDB
file, real Rotten Tomatoes documents with planted copies, a too-short text and an unreadable line)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.filtering import conftest as filtering
from winnow.datasets.model import items_frame
from winnow.filtering import filter_corpus, load_filter_config
from winnow.findings import empty_pairs, make_findings
from winnow.store import Store

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
reviews = filtering.reviews  # the filter tests' session fixture: real Rotten Tomatoes reviews


@dataclass(frozen=True)
class FilterRun:
    db: Path
    run_id: str
    audit_id: str
    summary: dict


@pytest.fixture(scope="module")
def filter_run(tmp_path_factory, reviews, prefect_harness) -> FilterRun:
    """20 documents, an exact and a near copy of five of them, one too short, in two .jsonl.gz
    shards, plus a .jsonl shard with one unreadable line; filtered by exact, MinHash and quality.
    An audit run shares the file."""
    folder = tmp_path_factory.mktemp("removals")
    records, _ = filtering.planted_corpus(reviews, n=20)
    records.insert(3, {"id": "short", "text": "Meh."})
    filtering.write_shards(records, folder / "in", per_shard=18)
    (folder / "in" / "part-009.jsonl").write_text('{"id": "cut", "text": \n')  # a line cut short
    db = folder / "filter.duckdb"
    config = load_filter_config(None, inputs=str(folder / "in" / "part-*"), out=str(folder / "out"), id_key="id")
    summary = filter_corpus(config, db=db)
    store = Store(db)
    audit_id = store.create_run(dataset="an-audit", source=str(folder / "texts.jsonl"), modality="text", config={})
    store.save_items(audit_id, items_frame([{"item_id": "a", "modality": "text", "text": "some text", "content_hash": "a"}]))
    store.save_results(audit_id, make_findings(["a"], "outlier", [0.5], [False], [None], [{}]), empty_pairs())
    store.finish_run(audit_id, status="completed", counts={"items": 1})
    return FilterRun(db, summary["run_id"], audit_id, summary)


def _open(run: FilterRun, page: str | None, monkeypatch, run_id: str | None = None) -> AppTest:
    monkeypatch.setenv("WINNOW_DB", str(run.db))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["run"] = run_id or run.run_id
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _removals(at: AppTest) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "kept document" in d.value.columns)


def test_removals_page_counts_stages_pages_and_shows_a_copy_against_its_kept_document(filter_run, monkeypatch):
    assert filter_run.summary["flagged"] == {"corrupt": 1, "exact": 5, "minhash": 5, "quality": 1}
    at = _open(filter_run, "removals", monkeypatch)
    assert {m.label: m.value for m in at.metric} == {"corrupt": "1", "exact": "5", "minhash": "5", "quality": "1"}
    table = _removals(at)
    assert len(table) == 12 and table["document"].iloc[0] == "short"  # corpus order: short is line 4 of the first shard
    assert table.set_index("document").loc["near-of-002", "kept document"] == "doc002"
    assert "jaccard" in table.set_index("document").loc["near-of-002", "evidence"]

    at.selectbox(key="removals_page_size").set_value(10).run()  # paging: 12 removals, 10 per page
    assert len(_removals(at)) == 10
    at.button(key="removals_page_next").click().run()
    assert len(_removals(at)) == 2 and any("showing 11–12" in c.value for c in at.caption)

    at.selectbox(key="removals_stage").set_value("minhash").run()  # one stage, back on page 1
    table = _removals(at)
    assert table["stage"].tolist() == ["minhash"] * 5 and table["kept document"].tolist() == [f"doc{i:03d}" for i in range(5)]
    at.session_state[f"removals_table_{filter_run.run_id}_minhash_0"] = {"selection": {"rows": [2], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    header = next(m.value for m in at.markdown if m.value.startswith("**near-of-002**"))
    assert "removed by **minhash** as a copy of **doc002**" in header
    diff = next(m.value for m in at.markdown if "<del" in m.value or "<ins" in m.value)
    assert "<del" in diff  # the near copy dropped words of the kept document
    assert any("Word diff, kept document doc002" in c.value for c in at.caption)

    at.selectbox(key="removals_stage").set_value("corrupt").run()
    at.session_state[f"removals_table_{filter_run.run_id}_corrupt_0"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert "Unreadable line" in at.error[0].value and "part-009.jsonl" in _removals(at)["shard"].iloc[0]


def test_filter_run_on_the_runs_triage_and_export_pages(filter_run, monkeypatch):
    at = _open(filter_run, None, monkeypatch)  # Runs
    assert at.subheader[0].value == f"Filter run {filter_run.run_id}"
    assert {m.label: m.value for m in at.metric} == {"corrupt": "1", "exact": "5", "minhash": "5", "quality": "1"}
    audits = next(d.value for d in at.dataframe if "flagged (all)" in d.value.columns)
    filters = next(d.value for d in at.dataframe if "removed" in d.value.columns).set_index("run_id")
    assert audits["run_id"].tolist() == [filter_run.audit_id] and filters.index.tolist() == [filter_run.run_id]
    assert filters.loc[filter_run.run_id, ["documents", "kept", "removed", "exact", "minhash"]].tolist() == [32, 20, 12, 5, 5]

    at.switch_page("views/triage.py").run()
    assert "is a `winnow filter` run" in at.info[0].value

    at.switch_page("views/export.py").run()
    assert at.radio(key="export_what").value == "removals" and len(at.radio(key="export_what").options) == 1
    next(b for b in at.button if b.label == "Prepare export").click().run()
    assert "12 rows ready." in at.success[0].value
    manifest = pd.read_parquet(filter_run.summary["manifest"])
    assert sorted(next(d.value for d in at.dataframe if "doc_id" in d.value.columns)["doc_id"]) == sorted(manifest["doc_id"])


def test_removals_page_on_an_audit_says_where_its_results_are(filter_run, monkeypatch):
    at = _open(filter_run, "removals", monkeypatch, run_id=filter_run.audit_id)
    assert "is an audit, not a `winnow filter` run" in at.info[0].value

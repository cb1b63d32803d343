import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from winnow.datasets.model import items_frame
from winnow.errors import ConfigError, RunNotFound, StoreLocked, WinnowError
from winnow.findings import make_findings
from winnow.store import Store, migrations


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "w.duckdb")


def items(n=3):
    return items_frame([
        {"item_id": f"i{i}", "modality": "text", "uri": None, "text": f"t{i}", "label": "a", "content_hash": f"h{i}", "metadata": "{}", "error": None}
        for i in range(n)
    ])


def run_with_findings(store):
    run = store.create_run(dataset="d", source="/x", modality="text", config={"k": 3})
    store.save_items(run, items())
    findings = make_findings(["i0", "i1", "i2"], "near_duplicate", [0.1, 0.99, 0.2], [False, True, False], [None, "copy of i0", None], [{}, {}, {}], related_item_ids=[None, "i0", None])
    pairs = pd.DataFrame({"item_a": ["i0"], "item_b": ["i1"], "similarity": [0.99], "method": ["embedding_cosine"]})
    store.save_results(run, findings, pairs)
    return run


def test_schema_is_migrated_once_and_recorded(store):
    assert store.initialize() == [name for name, _ in migrations.MIGRATIONS]
    with store.connect() as con:
        assert migrations.pending(con) == []
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"runs", "items", "embeddings", "properties", "findings", "pairs", "decisions", "check_results", "schema_migrations"} <= tables


def test_stage_writes_are_idempotent(store):
    run = run_with_findings(store)
    store.save_items(run, items())  # a resumed run writes its stage again
    run_with_findings_again = make_findings(["i0", "i1", "i2"], "near_duplicate", [0.1, 0.99, 0.2], [False, True, False], [None, "x", None], [{}, {}, {}])
    store.save_results(run, run_with_findings_again, pd.DataFrame({"item_a": ["i0"], "item_b": ["i1"], "similarity": [0.99], "method": ["m"]}))
    assert len(store.load_items(run)) == 3
    assert len(store.findings(run)) == 3 and len(store.pairs(run)) == 1
    assert set(store.stages(run)) == {"ingest", "detect"}
    assert store.issue_counts(run).set_index("issue_type").loc["near_duplicate", "flagged"] == 1


def test_vector_cache_round_trip_keeps_first_write(store):
    v = np.arange(6, dtype=np.float32).reshape(2, 3)
    store.save_vectors("m", ["a", "b"], v)
    store.save_vectors("m", ["a"], np.zeros((1, 3), np.float32))
    cached = store.cached_vectors("m", ["a", "b", "c"])
    assert set(cached) == {"a", "b"}
    np.testing.assert_array_equal(cached["a"], v[0])
    assert store.cached_vectors("other-model", ["a"]) == {}
    assert store.cached_hashes("vectors", "m", ["a", "b", "c"]) == {"a", "b"}
    assert store.cached_hashes("vectors", "other-model", ["a"]) == set()


def test_runs_listing_and_lookup(store):
    run = run_with_findings(store)
    store.finish_run(run, status="completed", counts={"items": 3})
    assert store.latest_run_id() == run
    assert store.get_run(run)["counts"] == {"items": 3}
    assert store.get_run(run)["config"] == {"k": 3}
    with pytest.raises(RunNotFound, match="winnow runs"):
        store.get_run("nope")


def test_clean_items_apply_findings_and_decisions(store):
    run = run_with_findings(store)
    assert store.clean_items(run)["item_id"].tolist() == ["i0", "i2"]
    store.record_decision(run, "i1", "near_duplicate", "dismissed", reviewer="ana")
    store.record_decision(run, "i2", "near_duplicate", "confirmed", reviewer="ana")
    store.record_decision(run, "i0", "near_duplicate", "relabel", new_label="b")
    clean = store.clean_items(run)
    assert clean["item_id"].tolist() == ["i0", "i1"]
    assert clean.set_index("item_id").loc["i0", "label"] == "b"
    with pytest.raises(WinnowError, match="decision must be one of"):
        store.record_decision(run, "i1", "near_duplicate", "maybe")


def test_reading_a_missing_database_says_what_to_do(tmp_path):
    with pytest.raises(WinnowError, match="run `winnow audit"):
        Store(tmp_path / "none.duckdb").list_runs()


def test_a_locked_file_is_waited_for_then_reported(store):
    store.initialize()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(store.path)!r}); print('held', flush=True); time.sleep(2)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(StoreLocked, match="stayed locked"):
        Store(store.path, lock_timeout=0.3).list_runs()
    started = time.monotonic()
    assert Store(store.path, lock_timeout=30).list_runs().empty  # waits for the holder to exit
    assert time.monotonic() - started > 0.5
    holder.wait()


def test_foreign_and_newer_databases_are_refused(tmp_path):
    import duckdb

    foreign = tmp_path / "other.duckdb"
    duckdb.connect(str(foreign)).execute("CREATE TABLE t (x INT)").close()
    with pytest.raises(WinnowError, match="not a winnow database"):
        Store(foreign).list_runs()
    newer = Store(tmp_path / "newer.duckdb")
    newer.initialize()
    with newer.connect() as con:
        con.execute("INSERT INTO schema_migrations VALUES (99, '0099_from_the_future', now())")
    with pytest.raises(WinnowError, match="newer winnow"):
        newer.list_runs()


def test_an_older_database_is_migrated_forward(tmp_path):
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    migrations.applied(con)
    name, first = migrations.MIGRATIONS[0]
    first(con)
    con.execute("INSERT INTO schema_migrations VALUES (1, ?, now())", [name])
    con.close()
    store = Store(path)
    assert store.initialize() == [name for name, _ in migrations.MIGRATIONS]
    store.save_properties("image-v1", {"h1": {"phash": "ff00", "width": 28}})
    assert store.cached_properties("image-v1", ["h1", "h2"]) == {"h1": {"phash": "ff00", "width": 28}}
    assert store.cached_properties("text-v1", ["h1"]) == {}


# -- dashboard queries ---------------------------------------------------------------------------


def ranked_run(store, dataset="ranked", n=10):
    """``n`` items, outlier scores i/n, labels alternating a/b, the top half flagged."""
    run = store.create_run(dataset=dataset, source="/x", modality="text", config={})
    store.save_items(run, items_frame([
        {"item_id": f"i{i}", "modality": "text", "text": f"t{i}", "label": "ab"[i % 2], "content_hash": f"h{i}"} for i in range(n)
    ]))
    store.save_results(run, make_findings([f"i{i}" for i in range(n)], "outlier", [i / n for i in range(n)],
                                          [i >= n // 2 for i in range(n)], [f"r{i}" for i in range(n)], [{}] * n),
                       pd.DataFrame(columns=["item_a", "item_b", "similarity", "method"]))
    return run


def test_findings_page_pages_and_filters_in_the_store(store):
    run = ranked_run(store)
    page, total = store.findings_page(run, "outlier", limit=3, offset=3)
    assert total == 10 and page["item_id"].tolist() == ["i6", "i5", "i4"]
    assert {"label", "text", "decision", "reviewer", "decided_at"} <= set(page.columns)
    assert store.findings_page(run, "outlier", flagged_only=True, limit=100)[1] == 5
    page, total = store.findings_page(run, "outlier", label="b", score_min=0.2, score_max=0.7, limit=100)
    assert page["item_id"].tolist() == ["i7", "i5", "i3"] and total == 3
    assert store.findings_page(run, "outlier", label="x'; DROP TABLE findings; --", limit=5)[1] == 0
    assert len(store.findings(run)) == 10


def test_decisions_apply_to_reruns_of_the_same_content(store):
    first = ranked_run(store)
    assert store.record_decisions(first, ["i9", "i8"], "outlier", "dismissed", reviewer="ada") == 2
    store.record_decision(first, "i9", "outlier", "confirmed", reviewer="bo")  # newer wins
    second = ranked_run(store)
    decided = store.decisions_for(second).set_index("item_id")
    assert decided.loc["i9", "decision"] == "confirmed" and decided.loc["i8", "reviewer"] == "ada"
    page, total = store.findings_page(second, "outlier", undecided_only=True, limit=100)
    assert total == 8 and "i9" not in set(page["item_id"])
    top = store.findings_page(second, "outlier", limit=1)[0].iloc[0]
    assert (top["item_id"], top["decision"], top["reviewer"]) == ("i9", "confirmed", "bo")
    other = ranked_run(store, dataset="other")
    assert store.decisions_for(other).empty  # decisions stay with their dataset


def test_record_decisions_is_all_or_nothing_and_needs_a_label_to_relabel(store):
    run = ranked_run(store)
    with pytest.raises(WinnowError, match="no item"):
        store.record_decisions(run, ["i1", "nope"], "outlier", "keep")
    with pytest.raises(WinnowError, match="new label"):
        store.record_decisions(run, ["i1"], "outlier", "relabel")
    assert store.decisions_for(run).empty
    store.record_decisions(run, ["i1"], "outlier", "relabel", new_label="a")
    assert store.clean_items(run).set_index("item_id").loc["i1", "label"] == "a"


def test_facets_items_pairs_trend_and_history(store):
    run = run_with_findings(store)
    assert store.queue_facets(run, "near_duplicate") == {"labels": ["a"], "score_min": 0.1, "score_max": 0.99}
    assert store.queue_facets(run, "corrupt")["score_min"] is None
    assert store.get_items(run, ["i2", "i0", "zz"])["item_id"].tolist() == ["i0", "i2"]
    assert store.pairs_for(run, ["i1"])[["item_a", "item_b"]].values.tolist() == [["i0", "i1"]]
    assert store.pairs_for(run, ["i2"]).empty
    second = run_with_findings(store)
    trend = store.issue_counts_by_run("d")
    assert trend["run_id"].tolist() == [run, second] and trend["flagged"].tolist() == [1, 1]
    store.record_decision(second, "i1", "near_duplicate", "keep", reviewer="cy")
    history = store.item_history("d", "i1")
    assert history["items"]["run_id"].tolist() == [second, run]
    assert history["findings"]["reason"].tolist() == ["copy of i0", "copy of i0"]
    assert history["decisions"][["decision", "reviewer"]].values.tolist() == [["keep", "cy"]]


def test_a_decision_stops_applying_when_the_content_changes(store):
    run = run_with_findings(store)
    store.record_decision(run, "i1", "near_duplicate", "dismissed", reviewer="ana")
    assert "i1" in set(store.clean_items(run)["item_id"])
    changed = items()
    changed.loc[changed.item_id == "i1", "content_hash"] = "h1-edited"
    rerun = store.create_run(dataset="d", source="/x", modality="text", config={})
    store.save_items(rerun, changed)
    findings = make_findings(["i0", "i1", "i2"], "near_duplicate", [0.1, 0.99, 0.2], [False, True, False], [None, "copy of i0", None], [{}, {}, {}])
    store.save_results(rerun, findings, pd.DataFrame(columns=["item_a", "item_b", "similarity", "method"]))
    assert "i1" not in set(store.clean_items(rerun)["item_id"])  # the edited file is judged afresh


def test_connections_bound_duckdb_memory(tmp_path, monkeypatch):
    """DuckDB's default buffer pool is 80 % of RAM; the store caps it so reading a large reference
    corpus does not grow the audit by the size of the table, and refuses a limit it cannot parse."""

    def limit_of(store: Store) -> str:
        with store.connect() as con:
            return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    monkeypatch.delenv("WINNOW_DUCKDB_MEMORY_LIMIT", raising=False)
    assert limit_of(Store(tmp_path / "a.duckdb")) == "488.2 MiB"  # DEFAULT_MEMORY_LIMIT, 512 MB
    monkeypatch.setenv("WINNOW_DUCKDB_MEMORY_LIMIT", "256MB")
    assert limit_of(Store(tmp_path / "b.duckdb")) == "244.1 MiB"
    assert limit_of(Store(tmp_path / "c.duckdb", memory_limit="1GB")) == "953.6 MiB"
    monkeypatch.setenv("WINNOW_DUCKDB_MEMORY_LIMIT", "lots")
    with pytest.raises(ConfigError, match="512MB or 2GB"):
        Store(tmp_path / "d.duckdb")

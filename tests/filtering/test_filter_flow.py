"""Real filter runs (Prefect flow, real DuckDB file) on small real corpora: each stage, the output
formats, the manifest in Parquet and DuckDB, and dedup against an earlier run's persisted index."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.filtering.conftest import (
    documents,
    planted_corpus,
    read_output,
    write_shards,
)
from winnow.filtering import filter_corpus, load_filter_config
from winnow.store import Store
from winnow.store.removals import removal_counts, removals

pytestmark = pytest.mark.usefixtures("prefect_harness")


def run(tmp_path: Path, inputs: str, yaml_text: str | None = None, **options) -> tuple[dict, Path]:
    config_path = None
    if yaml_text is not None:
        config_path = tmp_path / "filter.yaml"
        config_path.write_text(yaml_text)
    db = tmp_path / "filter.duckdb"
    config = load_filter_config(config_path, inputs=inputs, out=str(options.pop("out", tmp_path / "out")), **options)
    return filter_corpus(config, db=db), db


@dataclass(frozen=True)
class DedupRun:
    folder: Path
    summary: dict
    db: Path
    truth: dict[str, tuple[str, str]]
    records: list[dict]


@pytest.fixture(scope="module")
def dedup_run(tmp_path_factory, reviews, prefect_harness) -> DedupRun:
    """Exact + MinHash + quality over three .jsonl.gz shards with planted copies and one short text."""
    folder = tmp_path_factory.mktemp("dedup")
    records, truth = planted_corpus(reviews)
    records.insert(7, {"id": "short", "text": "Meh."})
    write_shards(records, folder / "in", per_shard=25)
    summary, db = run(folder, str(folder / "in" / "*.jsonl.gz"), "quality: {min_chars: 20, short_z: null}\n", id_key="id")
    return DedupRun(folder, summary, db, truth, records)


def test_exact_and_minhash_remove_the_planted_copies_and_name_the_original(dedup_run):
    truth = dedup_run.truth
    manifest = pd.read_parquet(dedup_run.summary["manifest"])
    by_id = manifest.set_index("doc_id")
    for copy, (stage, original) in truth.items():
        assert by_id.loc[copy, "stage"] == stage, (copy, by_id.loc[copy].to_dict())
        assert by_id.loc[copy, "related_doc_id"] == original
    assert by_id.loc["short", "stage"] == "quality" and "too short" in by_id.loc["short", "reason"]
    assert set(manifest.doc_id) == set(truth) | {"short"}  # nothing else removed
    assert "Jaccard" in by_id.loc["near-of-000", "reason"] and json.loads(by_id.loc["near-of-000", "detail"])["jaccard"] >= 0.5


def test_filtered_shards_keep_format_and_fields(dedup_run):
    folder, summary, truth, records = dedup_run.folder, dedup_run.summary, dedup_run.truth, dedup_run.records
    outputs = sorted((folder / "out").glob("*.jsonl.gz"))
    assert [p.name for p in outputs] == [p.name for p in sorted((folder / "in").glob("*.jsonl.gz"))]
    kept = [r for p in outputs for r in read_output(p)]
    assert [r["id"] for r in kept] == [r["id"] for r in records if r["id"] not in truth and r["id"] != "short"]
    assert summary["kept"] == len(kept) and summary["items"] == len(records) and summary["removed"] == len(truth) + 1


def test_manifest_is_in_duckdb_and_the_run_is_listed(dedup_run):
    summary = dedup_run.summary
    store = Store(dedup_run.db)
    stored = removals(store, summary["run_id"])
    parquet = pd.read_parquet(summary["manifest"])
    assert len(stored) == len(parquet) and set(stored.doc_id) == set(parquet.doc_id)
    assert list(stored.columns) == ["run_id", "doc_id", "shard", "line", "stage", "reason", "related_doc_id", "detail"]
    assert removal_counts(store, summary["run_id"]) == {"exact": 5, "minhash": 5, "quality": 1}
    run = store.get_run(summary["run_id"])
    assert run["status"] == "completed" and run["modality"] == "text" and run["counts"]["flagged"]["minhash"] == 5


def test_a_later_batch_dedups_against_the_earlier_runs_index(dedup_run, tmp_path, reviews):
    folder, records = dedup_run.folder, dedup_run.records
    later = [{"id": "again-003", "text": records[3]["text"]}, {"id": "fresh", "text": documents(reviews, 1, start=900)[0]},
             {"id": "near-again-010", "text": records[10]["text"].replace(".", "")}]
    write_shards(later, tmp_path / "batch2", per_shard=10, prefix="batch2")
    second, _ = run(tmp_path, str(tmp_path / "batch2" / "*.jsonl.gz"), "stages: [exact, minhash]\n", id_key="id", out=folder / "out")
    manifest = pd.read_parquet(second["manifest"]).set_index("doc_id")
    assert manifest.loc["again-003", "related_doc_id"] == records[3]["id"] and manifest.loc["again-003", "stage"] == "exact"
    assert manifest.loc["near-again-010", "related_doc_id"] == records[10]["id"]
    assert "fresh" not in manifest.index and second["kept"] == 1


@pytest.mark.parametrize("fmt", [".jsonl", ".parquet"])
def test_output_shards_are_in_the_input_format(tmp_path, reviews, fmt):
    records, truth = planted_corpus(reviews, n=20)
    for r in records:
        r["score"] = len(r["text"])
    write_shards(records, tmp_path / "in", per_shard=15, fmt=fmt)
    run(tmp_path, str(tmp_path / "in" / f"*{fmt}"), "stages: [exact, minhash]\n", id_key="id")
    outputs = sorted((tmp_path / "out").glob(f"*{fmt}"))
    assert len(outputs) == 2
    kept = [r for p in outputs for r in read_output(p)]
    assert {r["id"] for r in kept} == {r["id"] for r in records} - set(truth)
    assert all(set(r) == {"id", "text", "score"} for r in kept)
    if fmt == ".parquet":
        import pyarrow.parquet as pq

        assert pq.read_schema(outputs[0]) == pq.read_schema(min((tmp_path / "in").glob("*.parquet")))


def test_semantic_dedup_and_anomaly_against_a_reference_set(tmp_path, reviews):
    pool = documents(reviews, 60, start=400)
    base, good = pool[0::3], [t for i, t in enumerate(pool) if i % 3]  # the corpus and the reference: same kind of text
    records = [{"id": f"r{i}", "text": t} for i, t in enumerate(base)]
    records.append({"id": "reworded-0", "text": base[0].replace("film", "movie").replace("The ", "This ")})
    recipes = ["Preheat the oven to 200 degrees, grease a baking tray and roast the potatoes for forty minutes, turning twice.",
               "Whisk two eggs with milk and flour until smooth, rest the batter for an hour, then fry thin pancakes in butter."]
    records += [{"id": f"recipe-{i}", "text": t} for i, t in enumerate(recipes)]
    write_shards(records, tmp_path / "in", per_shard=20, fmt=".jsonl")
    reference = tmp_path / "good.jsonl"
    reference.write_text("".join(json.dumps({"text": t}) + "\n" for t in good))
    summary, _ = run(tmp_path, str(tmp_path / "in" / "*.jsonl"),
                      f"stages: [semantic, anomaly]\nsemantic: {{threshold: 0.9}}\nanomaly: {{reference: {reference}, k: 5, quantile: 0.95}}\n",
                      id_key="id")
    manifest = pd.read_parquet(summary["manifest"]).set_index("doc_id")
    assert manifest.loc["reworded-0", "stage"] == "semantic" and manifest.loc["reworded-0", "related_doc_id"] == "r0"
    assert {"recipe-0", "recipe-1"} <= set(manifest.index[manifest.stage == "anomaly"])
    assert (manifest.stage == "anomaly").sum() <= 4  # a few unusual reviews at most, not the corpus
    detail = json.loads(manifest.loc["recipe-0", "detail"])
    assert detail["score"] >= detail["threshold"]


def test_corrupt_lines_are_quarantined_and_the_run_goes_on(tmp_path, reviews):
    texts = documents(reviews, 4, start=100)
    lines = [json.dumps({"id": "ok0", "text": texts[0]}), "{broken json", json.dumps({"id": "notext", "body": texts[1]}),
             json.dumps([1, 2]), json.dumps({"id": "ok1", "text": texts[2]}), json.dumps({"id": "blank", "text": "   "})]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    summary, db = run(tmp_path, str(tmp_path / "in" / "*.jsonl.gz"), "stages: [exact, minhash]\n", id_key="id")
    manifest = pd.read_parquet(summary["manifest"]).set_index("line")
    assert set(manifest.index) == {2, 3, 4, 6} and set(manifest.stage) == {"corrupt"}
    assert "not valid JSON" in manifest.loc[2, "reason"] and manifest.loc[2, "doc_id"] == "a.jsonl.gz:2"
    assert "no 'text' key" in manifest.loc[3, "reason"] and manifest.loc[3, "doc_id"] == "notext"
    assert [r["id"] for r in read_output(tmp_path / "out" / "a.jsonl.gz")] == ["ok0", "ok1"]
    assert removal_counts(Store(db), summary["run_id"]) == {"corrupt": 4}

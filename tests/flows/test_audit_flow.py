"""Real Prefect flow runs on real DuckDB files with real images, texts and a table."""

import json

import pytest

from flows.audit import audit_flow
from winnow.config import AuditConfig
from winnow.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


def run(tmp_path, source, **options):
    db = tmp_path / "audit.duckdb"
    summary = audit_flow(AuditConfig(source=str(source), **options), db=str(db))
    return Store(db), summary


def test_image_audit_end_to_end(tmp_path, image_folder):
    store, summary = run(tmp_path, image_folder, shard_size=10)
    run_id = summary["run_id"]
    assert store.get_run(run_id)["status"] == "completed"
    assert set(store.stages(run_id)) == {"ingest", "measure", "embed", "detect"}
    findings = store.findings(run_id).set_index(["item_id", "issue_type"])
    items = store.load_items(run_id)
    readable = items[items["error"].isna()]["item_id"]
    for issue_type in ("exact_duplicate", "near_duplicate", "off_topic", "label_error", "outlier", "low_quality"):
        scored = findings.xs(issue_type, level="issue_type").index
        assert set(scored) == set(readable), issue_type  # every readable item has a score
    assert findings.loc[("trouser/zz_copy.png", "exact_duplicate"), "flagged"]
    assert findings.loc[("sneaker/broken.png", "corrupt"), "flagged"]
    assert findings.loc[("sneaker/empty.png", "corrupt"), "reason"] == "file is empty (0 bytes)"
    pairs = store.pairs(run_id)
    copy_pair = pairs[(pairs.item_b == "trouser/zz_copy.png") & (pairs.method == "content_hash")]
    assert len(copy_pair) == 1
    reencoded = {frozenset(p) for p in zip(pairs.item_a, pairs.item_b)}
    assert frozenset({copy_pair.item_a.iloc[0], "trouser/zz_reencoded.jpg"}) in reencoded
    # 26 readable items; the exact copy sits in a later shard and reuses its original's vector
    assert summary["embed"] == {"cached": 1, "computed": 25, "hit_rate": round(1 / 26, 4)}


def test_rerun_embeds_nothing_twice(tmp_path, image_folder):
    store, first = run(tmp_path, image_folder)
    _, second = run(tmp_path, image_folder)
    assert second["embed"] == {"cached": 26, "computed": 0, "hit_rate": 1.0}
    a = store.findings(first["run_id"]).drop(columns="run_id")
    b = store.findings(second["run_id"]).drop(columns="run_id")
    assert a.equals(b)


def test_text_audit(tmp_path, text_jsonl):
    store, summary = run(tmp_path, text_jsonl, id_col="id", label_col="label")
    f = store.findings(summary["run_id"]).set_index(["item_id", "issue_type"])
    assert f.loc[("c", "exact_duplicate"), "related_item_id"] == "a"
    assert f.loc[("d", "near_duplicate"), "flagged"]
    assert f.loc[("i", "corrupt"), "flagged"]
    assert summary["modality"] == "text" and summary["model_id"] == "all-minilm-l6-v2"


def test_tabular_audit(tmp_path, wine_csv):
    store, summary = run(tmp_path, wine_csv, id_col="id", label_col="cultivar")
    f = store.findings(summary["run_id"]).set_index(["item_id", "issue_type"])
    assert f.loc[("dup", "exact_duplicate"), "related_item_id"] == "w4"
    assert "alcohol" in f.loc[("bad", "corrupt"), "reason"]
    assert json.loads(f.loc[("w0", "near_duplicate"), "detail"])["threshold"] == 0.999


def test_detector_selection_and_params(tmp_path, text_jsonl):
    store, summary = run(tmp_path, text_jsonl, id_col="id", detectors=["exact_duplicate", "outlier"], params={"outlier": {"k": 3}})
    types = set(store.findings(summary["run_id"])["issue_type"])
    assert types == {"corrupt", "low_quality", "exact_duplicate", "outlier"}  # checks always run


def test_flow_run_is_named_after_the_dataset_and_publishes_a_summary(tmp_path, text_jsonl):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    _, summary = run(tmp_path, text_jsonl, id_col="id", name="named-reviews")

    async def read():
        async with get_client() as client:
            flow_runs = await client.read_flow_runs()
            artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["winnow-audit-summary"])))
            return [r.name for r in flow_runs], [a.data for a in artifacts]

    names, documents = asyncio.run(read())
    assert "audit-named-reviews" in names
    assert any(summary["run_id"] in doc and "| exact_duplicate |" in doc for doc in documents)

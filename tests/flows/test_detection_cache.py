"""Prefect caches the detect task: an unchanged re-audit reuses the findings; any change to what
detection reads computes them again."""

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

from flows.audit import audit_flow
from flows.result_cache import DETECTION_PREFIX
from winnow.config import AuditConfig
from winnow.datasets.model import ITEM_COLUMNS
from winnow.stages import DetectionInputs
from winnow.store import Store


@pytest.mark.usefixtures("prefect_harness")
def test_an_unchanged_reaudit_reuses_the_detection_and_a_changed_option_recomputes_it(tmp_path, text_jsonl):
    db = tmp_path / "audit.duckdb"

    def audit(**options):
        return audit_flow(AuditConfig(source=str(text_jsonl), id_col="id", label_col="label", **options), db=str(db))

    results = tmp_path / "results"
    results.mkdir()
    expired = results / f"{DETECTION_PREFIX}from-last-month"
    expired.write_bytes(b"stale")
    os.utime(expired, (time.time() - 30 * 86_400,) * 2)
    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: results}):  # no result from an earlier session
        first = audit()
        again = audit(shard_size=3)  # the work is spread differently; no finding can change
        changed = audit(params={"near_duplicate": {"threshold": 0.8}})
    assert [s["detection_cache"] for s in (first, again, changed)] == ["miss", "hit", "miss"]
    assert again["embed"]["hit_rate"] == 1.0 and set(again["seconds"]) >= {"ingest", "embed", "detect", "store"}
    store = Store(db)
    for load in (store.findings, store.pairs):
        a, b = (load(s["run_id"]).drop(columns="run_id") for s in (first, again))
        assert len(a) and a.equals(b)
    assert store.findings(again["run_id"])["run_id"].eq(again["run_id"]).all()  # the reused findings belong to the new run
    assert again["flagged"] == first["flagged"] and again["skipped"] == first["skipped"]
    cached = [p.name for p in results.iterdir()]
    assert len(cached) == 2 and all(name.startswith(DETECTION_PREFIX) for name in cached)  # the first and the changed run's; the expired one is gone


def _inputs(**changes) -> DetectionInputs:
    items = pd.DataFrame({column: [None, None] for column in ITEM_COLUMNS})
    items = items.assign(item_id=["a", "b"], content_hash=["h1", "h2"], modality="text", text=["x", "y"], ordinal=[0, 1])
    vectors = np.eye(2, 3, dtype=np.float32)
    config = AuditConfig(source=__file__, name="one")
    base = DetectionInputs(items, items[["item_id", "content_hash", "label"]], vectors, None, "text", config, "cpu")
    return dataclasses.replace(base, **changes)


def test_the_detection_key_covers_every_input_and_nothing_else():
    key = _inputs().key
    assert key == _inputs().key
    nudged = np.eye(2, 3, dtype=np.float32)
    nudged[0, 0] = np.nextafter(np.float32(1), np.float32(0))
    assert _inputs(vectors=nudged).key != key  # one ulp of one vector
    relabelled = _inputs().items.assign(label=["cat", None])
    assert _inputs(items=relabelled).key != key
    assert _inputs(items=_inputs().items.assign(label=["None", None])).key != _inputs(items=_inputs().items.assign(label=[None, None])).key
    assert _inputs(device="cuda").key != key
    options = dict(source=str(Path(__file__).parent / "__init__.py"), name="other", shard_size=7, batch_size=3, task_runner="dask", device="cpu")
    assert _inputs(config=AuditConfig(**options)).key == key  # naming and spreading the work change no finding
    assert _inputs(config=AuditConfig(source=__file__, k=5)).key != key
    assert _inputs(config=AuditConfig(source=__file__, reference="previous")).key is None  # the corpus grows: never reused


def test_detections_pickle_compactly_and_come_back_equal():
    """Prefect persists a cached detection by pickling it: the frames travel as compressed Arrow."""
    import pickle

    from winnow.stages import Detections

    n = 3000
    findings = pd.DataFrame({
        "item_id": np.array([f"item-{i}" for i in range(n)], dtype=object),
        "score": np.linspace(0, 1, n), "flagged": np.arange(n) % 7 == 0,
        "related_item_id": pd.Series([None if i % 3 else f"item-{i + 1}" for i in range(n)], index=np.arange(n) * 2, dtype=object),
        "detail": np.array(['{"distance": %d, "threshold": 0.95}' % i for i in range(n)], dtype=object),
    }, index=np.arange(n) * 2)
    pairs = pd.DataFrame({"item_a": ["a", "b"], "item_b": ["c", "d"], "similarity": [0.99, 0.97], "method": ["content_hash", "knn"]})
    detections = Detections(findings, pairs, {"label_error": "needs labels"}, {}, "faiss-flat")
    blob = pickle.dumps(detections)
    back = pickle.loads(blob)
    for name in ("findings", "pairs"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(detections, name), check_exact=True)
    assert back.findings["related_item_id"].iloc[1] is None and back.findings["related_item_id"].dtype == object and back.check_results is None
    assert (back.skipped, back.knn_method) == (detections.skipped, "faiss-flat")
    assert len(blob) < len(pickle.dumps(vars(detections))) / 5
    mixed = pd.DataFrame({"check_name": ["a", "b"], "observed": pd.Series([0.5, "3 rows"], dtype=object)})
    kept = pickle.loads(pickle.dumps(Detections(findings, pairs, {}, {}, "faiss-flat", check_results=mixed))).check_results
    assert kept["observed"].tolist() == [0.5, "3 rows"]  # numbers and text in one column: pickled as they are


def test_expired_cached_results_are_deleted_and_nothing_else(tmp_path):
    """Prefect never deletes a persisted result; the audit deletes winnow's own once expired."""
    from flows.result_cache import SUITE_PREFIX, prune_expired

    now = 1_800_000_000.0
    day = 86_400
    ages = {DETECTION_PREFIX + "old": 8 * day, DETECTION_PREFIX + "fresh": 6 * day, SUITE_PREFIX + "old": 2 * day,
            SUITE_PREFIX + "fresh": 3_600, "someone-elses-result": 30 * day}
    for name, age in ages.items():
        path = tmp_path / name
        path.write_bytes(b"x" * 100)
        os.utime(path, (now - age, now - age))
    assert prune_expired(tmp_path, now=now) == (2, 200)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DETECTION_PREFIX + "fresh", SUITE_PREFIX + "fresh", "someone-elses-result"])
    assert prune_expired(tmp_path / "missing", now=now) == (0, 0)

"""The audit on a Dask cluster through prefect-dask gives the findings of the default task runner:
two batches of texts, the second audited against the first, on an in-process Dask cluster."""

from __future__ import annotations

import json

import pytest

from flows.audit import run
from tests.conftest import TEXTS
from tests.flows.test_drift_flow import RECIPES
from winnow.config import AuditConfig
from winnow.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def cluster():
    """One Dask worker with two threads in this process (the test's Prefect harness serves it)."""
    from distributed import LocalCluster

    with LocalCluster(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    """Batch 1: the reviews. Batch 2: four of them unchanged, a copy of another under a new id, recipes."""
    folder = tmp_path_factory.mktemp("dask")
    reviews = [{"id": i, "text": t, "label": l} for i, t, l in TEXTS if t]
    first, second = folder / "first.jsonl", folder / "second.jsonl"
    first.write_text("\n".join(json.dumps(r) for r in reviews) + "\n")
    later = reviews[:4] + [{"id": "again", "text": reviews[6]["text"], "label": "neg"}]
    later += [{"id": f"recipe{i}", "text": t, "label": "neg"} for i, t in enumerate(RECIPES[:3])]
    second.write_text("\n".join(json.dumps(r) for r in later) + "\n")
    return first, second


def audit_both(db, batches, **options):
    """Batch 1, then batch 2 against it; the findings and pairs of both runs with run ids masked."""
    first, second = batches
    run1 = run(AuditConfig(source=str(first), id_col="id", label_col="label", name="reviews", shard_size=4, **options), db=str(db))
    run2 = run(AuditConfig(source=str(second), id_col="id", label_col="label", name="reviews", shard_size=4, reference="previous", **options), db=str(db))
    store = Store(db)
    masked = []
    for summary in (run1, run2):
        for frame in (store.findings(summary["run_id"]), store.pairs(summary["run_id"])):
            text = frame.drop(columns="run_id").to_json(orient="records")
            masked.append(text.replace(run1["run_id"], "RUN1").replace(run2["run_id"], "RUN2"))
    return run1, run2, masked


def test_a_dask_run_finds_what_the_default_runner_finds(tmp_path, batches, cluster):
    from distributed import Client

    default = audit_both(tmp_path / "default.duckdb", batches)
    on_dask = audit_both(tmp_path / "dask.duckdb", batches, dask_address=cluster)
    assert on_dask[1]["task_runner"] == "dask" and default[1]["task_runner"] == "default"
    assert on_dask[0]["embed"] == default[0]["embed"] and on_dask[1]["embed"] == default[1]["embed"]
    for got, expected in zip(on_dask[2], default[2]):
        assert got == expected
    with Client(cluster) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert sum(executed.values()) >= 10  # shards, reference chunks and detectors ran on the cluster
    copy = Store(tmp_path / "dask.duckdb").findings(on_dask[1]["run_id"], issue_type="exact_duplicate").set_index("item_id").loc["again"]
    assert copy["flagged"] and copy["related_item_id"] == "g"  # the copy is found in the reference corpus


def test_workers_elsewhere_need_a_prefect_api_they_can_reach():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from winnow.errors import ConfigError
    from winnow.prefect_env import api_for_workers

    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(ConfigError, match="PREFECT_API_URL=http"):
        with api_for_workers("tcp://10.1.2.3:8786"):
            pass

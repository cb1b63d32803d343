"""The audit flow: ingest → measure → embed → detect → store, one Prefect task per stage.

1. open (or resume) a run in the store
2. ingest the source and commit its items
3. measure image / text properties (quality, perceptual hashes) of content not measured before
4. embed each shard of items not in the embedding cache, committing vectors shard by shard
5. run the table's Great Expectations suite when one is given (``--suite``)
6. build the kNN graph once and run every detector and check on it
7. with ``--reference``: test the batch's embeddings and labels for drift against the reference run
8. commit findings, pairs and check results, publish a markdown summary artifact, mark the run completed

Runs with no Prefect server (Prefect starts a temporary one) or against ``PREFECT_API_URL``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from winnow import stages
from winnow.config import AuditConfig
from winnow.embed import resolve_device
from winnow.errors import WinnowError
from winnow.report import summary_markdown
from winnow.store import Store


def _retry_unless_user_error(task, task_run, state) -> bool:
    """Retry I/O failures, never errors in the user's input (they would fail the same way)."""
    try:
        state.result()
    except WinnowError:
        return False
    except Exception:
        return True
    return False


io_task = dict(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=_retry_unless_user_error, cache_policy=NO_CACHE)

open_run = task(stages.open_run, name="open-run", **io_task)
ingest = task(stages.ingest_stage, name="ingest", **io_task)
embed_shard = task(stages.embed_shard, name="embed-shard", task_run_name="embed-shard-{rows.index[0]}", **io_task)
measure_shard = task(stages.measure_shard, name="measure-shard", task_run_name="measure-shard-{rows.index[0]}", **io_task)
record_decode_errors = task(stages.record_decode_errors, name="record-decode-errors", **io_task)
load_vectors = task(stages.load_vectors, name="load-vectors", **io_task)
load_properties = task(stages.load_properties, name="load-properties", **io_task)
detect = task(stages.detect_stage, name="detect", cache_policy=NO_CACHE)
table_checks = task(stages.table_checks, name="great-expectations", cache_policy=NO_CACHE)
drift = task(stages.drift_stage, name="drift", cache_policy=NO_CACHE)


@task(name="store-results", **io_task)
def store_results(store: Store, run_id: str, detections: stages.Detections) -> None:
    store.save_results(run_id, detections.findings, detections.pairs, check_results=detections.check_results)


def _flow_run_name() -> str:
    """``audit-<dataset>``; a scheduled run adds its scheduled time (``audit-reviews-2026-11-23T02:00``)."""
    from prefect.runtime import deployment, flow_run

    config = flow_run.parameters["config"]
    name = f"audit-{config['name'] if isinstance(config, dict) else config.name}"
    if deployment.id is None:
        return name
    return f"{name}-{flow_run.scheduled_start_time:%Y-%m-%dT%H:%M}"


@flow(name="winnow-audit", flow_run_name=_flow_run_name, log_prints=True)
def audit_flow(config: AuditConfig, db: str, resume: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Audit one dataset into the DuckDB file ``db`` and return the run summary."""
    logger = get_run_logger()
    store = Store(db)
    stages.check_reference(store, config)
    run_id, config = open_run(store, config, resume)
    try:
        dataset = ingest(store, run_id, config)
        measurer = stages.measurer_for(dataset.modality)
        if measurer is not None:
            _measure_all(store, run_id, dataset, measurer, config, progress)
        device = resolve_device(config.device)
        embedder = stages.embedder_for(dataset, config)
        logger.info("run %s: %d items (%s), model %s on %s", run_id, len(dataset.items), dataset.modality, embedder.model_id, device)
        cached, computed = _embed_all(store, run_id, dataset, embedder, config, progress)
        embedded, vectors = load_vectors(store, dataset.items, embedder.model_id)
        properties = load_properties(store, dataset.items, measurer.kind) if measurer is not None else None
        rule_checks = table_checks(dataset, config) if config.suite else None
        detections = detect(dataset.items, embedded, vectors, dataset.modality, config, device, properties, rule_checks)
        drift_outcome = drift(store, run_id, config, embedded, vectors, embedder.model_id) if config.reference else None
        if drift_outcome is not None:
            detections = stages.add_drift(detections, drift_outcome)
        for name, why in detections.skipped.items():
            logger.info("detector %s skipped: %s", name, why)
        for name, why in detections.failed.items():
            logger.warning("detector %s failed: %s", name, why)
        store_results(store, run_id, detections)
        summary = stages.summarize(store, run_id)
        summary.update(
            dataset=config.name, modality=dataset.modality, model_id=embedder.model_id, device=device, knn=detections.knn_method,
            embed={"cached": cached, "computed": computed}, skipped=detections.skipped, failed=detections.failed, db=str(store.path),
        )
        if drift_outcome is not None and drift_outcome.summary:
            summary["drift"] = drift_outcome.summary
        store.finish_run(run_id, status="completed", counts=summary)
    except BaseException as exc:
        store.finish_run(run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    create_markdown_artifact(summary_markdown(summary), key="winnow-audit-summary", description=f"winnow audit {run_id}")
    return summary


def _measure_all(store: Store, run_id: str, dataset, measurer: stages.Measurer, config: AuditConfig, progress: bool) -> None:
    """Measure every shard, then record the items that failed to decode."""
    errors: dict[str, str] = {}
    with _progress_bar(progress, total=len(dataset.readable), label="measuring") as bar:
        for rows in stages.shards(dataset, config.shard_size):
            errors.update(measure_shard(store, dataset, rows, measurer)["errors"])
            bar(len(rows))
    record_decode_errors(store, run_id, dataset, errors)
    store.mark_stage(run_id, "measure", {"kind": measurer.kind, "decode_errors": len(errors)})


def _embed_all(store: Store, run_id: str, dataset, embedder, config: AuditConfig, progress: bool) -> tuple[int, int]:
    """Embed every shard (each commits its vectors), record decode failures; return (cached, computed)."""
    errors: dict[str, str] = {}
    cached = computed = 0
    with _progress_bar(progress, total=len(dataset.readable), label="embedding") as bar:
        for rows in stages.shards(dataset, config.shard_size):
            stats = embed_shard(store, dataset, rows, embedder, config.batch_size)
            errors.update(stats["errors"])
            cached += stats["cached"]
            computed += stats["computed"]
            bar(len(rows))
    record_decode_errors(store, run_id, dataset, errors)
    store.mark_stage(run_id, "embed", {"model_id": embedder.model_id, "cached": cached, "computed": computed, "decode_errors": len(errors)})
    return cached, computed


class _progress_bar:
    """A tqdm bar on stderr when asked for (and a no-op otherwise)."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="item", leave=False)

    def __enter__(self):
        return lambda n: self.bar.update(n) if self.bar is not None else None

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


if __name__ == "__main__":
    import sys

    print(audit_flow(AuditConfig(source=sys.argv[1]), db=sys.argv[2] if len(sys.argv) > 2 else "winnow.duckdb"))

"""The audit flow: ingest → measure → embed → detect → store, as Prefect tasks.

1. open (or resume) a run in the store
2. ingest the source and commit its items
3. measure image / text properties (quality, perceptual hashes) of content not measured before
4. embed each shard of items not in the embedding cache, committing vectors shard by shard
5. run the table's Great Expectations suite when one is given (``--suite``); Prefect caches it
6. with ``--reference``: load the reference corpus and search it, chunk by chunk, for each item's
   nearest reference contents
7. build the kNN graph once and run each detector as a task of its own
8. with ``--reference``: test the batch's embeddings and labels for drift against the reference run
   (steps 6-8 are one ``detect`` task, which Prefect caches: a run whose detection inputs and code
   are those of an earlier run reuses its findings; see :class:`winnow.stages.DetectionInputs`)
9. commit findings, pairs and check results, publish a markdown summary artifact, mark the run
   completed — or ``failed-checks`` (a failed flow run) when a ``--blocking`` check failed

The tasks that compute — shards, reference chunks, detectors — run here one after another with
the default task runner; with ``task_runner="dask"`` (:func:`run`) they run on a Dask cluster,
while this process alone reads and writes the DuckDB file. Runs with no Prefect server (Prefect
starts a temporary one) or against ``PREFECT_API_URL``.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator

import pandas as pd
from prefect import Task, flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.states import Failed

from detectors.reference import merge_hits, search_chunk
from flows import result_cache
from flows.retries import IO_TASK
from winnow import stages
from winnow.config import AuditConfig
from winnow.embed import resolve_device
from winnow.errors import ChecksFailed
from winnow.report import summary_markdown
from winnow.store import Store

open_run = task(stages.open_run, name="open-run", **IO_TASK)
ingest = task(stages.ingest_stage, name="ingest", **IO_TASK)
measure = task(stages.measure_items, name="measure-shard", **IO_TASK)
embed = task(stages.embed_items, name="embed-shard", **IO_TASK)
record_decode_errors = task(stages.record_decode_errors, name="record-decode-errors", **IO_TASK)
load_vectors = task(stages.load_vectors, name="load-vectors", **IO_TASK)
load_properties = task(stages.load_properties, name="load-properties", **IO_TASK)
load_reference = task(stages.load_reference, name="load-reference", **IO_TASK)
search_reference = task(search_chunk, name="search-reference", cache_policy=NO_CACHE)
reference_hits = task(stages.reference_hits, name="reference-hits", **IO_TASK)
plan_detection = task(stages.plan_detection, name="knn-graph", cache_policy=NO_CACHE)
detector = task(stages.run_job, name="detector", cache_policy=NO_CACHE)
assemble = task(stages.assemble, name="assemble-findings", cache_policy=NO_CACHE)
# a suite's findings depend only on the table and the suite: a re-run or a resumed run reuses them
table_checks = task(
    stages.table_checks, name="great-expectations", cache_key_fn=result_cache.suite_run_key, persist_result=True,
    cache_expiration=result_cache.SUITE_EXPIRATION,
)
drift = task(stages.drift_stage, name="drift", cache_policy=NO_CACHE)


def _detect(store: Store, run_id: str, inputs: stages.DetectionInputs, measurer: stages.Measurer | None, model_id: str, slots: int) -> stages.Detections:
    """The run's findings from its inputs: with ``--reference``, search the reference corpus; build
    the kNN graph once; run each detector as a task of its own; assemble; test for drift."""
    config, embedded, vectors = inputs.config, inputs.embedded, inputs.vectors
    reference = load_reference(store, run_id, config, model_id) if config.reference else None
    hits = _search(store, reference, vectors, measurer, model_id, config.k, slots) if reference is not None and len(embedded) else None
    plan = plan_detection(inputs.items, embedded, vectors, inputs.modality, config, inputs.device, inputs.properties, inputs.rule_checks, reference, hits)
    jobs = ((job, detector.with_options(task_run_name=f"detect-{'+'.join(job.names)}"), {"job": job}) for job in plan.jobs if job.names)
    detections = assemble(plan, [outcome for _, outcome in _in_flight(jobs, slots)])
    if config.reference:
        detections = stages.add_drift(detections, drift(store, run_id, config, embedded, vectors, model_id))
    return detections


# An unchanged dataset audited again with the same options and code reuses its findings: the key
# is a digest of every input of detection and of the detection code (DetectionInputs.key), and
# the result (findings, pairs, what was skipped) is persisted in Prefect's result storage.
detect = task(_detect, name="detect", cache_key_fn=result_cache.detection_key, cache_expiration=result_cache.DETECTION_EXPIRATION)


@task(name="store-results", **IO_TASK)
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
    runner = FlowRunContext.get().task_runner
    slots = _slots(runner)
    timings = _Laps()
    try:
        dataset = ingest(store, run_id, config)
        timings.lap("ingest")
        measurer = stages.measurer_for(dataset.modality)
        if measurer is not None:
            _measure_all(store, run_id, dataset, measurer, config, progress, slots)
            timings.lap("measure")
        device = resolve_device(config.device)
        embedder = stages.embedder_for(dataset, config)
        logger.info("run %s: %d items (%s), model %s on %s", run_id, len(dataset.items), dataset.modality, embedder.model_id, device)
        embedded_stats = _embed_all(store, run_id, dataset, embedder, config, progress, slots)
        timings.lap("embed")
        embedded, vectors = load_vectors(store, dataset.items, embedder.model_id)
        properties = load_properties(store, dataset.items, measurer.kind) if measurer is not None else None
        rule_checks = table_checks(dataset, config) if config.suite else None
        timings.lap("load inputs")
        inputs = stages.DetectionInputs(dataset.items, embedded, vectors, properties, dataset.modality, config, device, rule_checks)
        cacheable = inputs.key is not None
        timings.lap("detection key")
        state = detect.with_options(persist_result=cacheable)(store, run_id, inputs, measurer, embedder.model_id, slots, return_state=True)
        detections = state.result()
        detection_cache = "off" if not cacheable else "hit" if state.name == "Cached" else "miss"
        timings.lap("detect")
        pruned, freed = result_cache.prune_expired()
        if pruned:
            logger.info("deleted %d expired cached results (%.1f MB) from Prefect's result storage", pruned, freed / 1e6)
        for name, why in detections.skipped.items():
            logger.info("detector %s skipped: %s", name, why)
        for name, why in detections.failed.items():
            logger.warning("detector %s failed: %s", name, why)
        store_results(store, run_id, detections)
        summary = stages.summarize(store, run_id)
        timings.lap("store")
        summary.update(
            dataset=config.name, modality=dataset.modality, model_id=embedder.model_id, device=device, knn=detections.knn_method,
            embed=embedded_stats, skipped=detections.skipped, failed=detections.failed, db=str(store.path), task_runner=_runner_name(runner),
            detection_cache=detection_cache, seconds=timings.seconds,
        )
        if detections.reference is not None:
            summary["reference"] = detections.reference
        if detections.drift:
            summary["drift"] = detections.drift
        blocking = stages.blocking_failures(config, detections)
        if blocking:
            summary["blocking_failed"] = blocking
        store.finish_run(run_id, status=stages.FAILED_CHECKS if blocking else "completed", counts=summary)
    except BaseException as exc:
        store.finish_run(run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    create_markdown_artifact(summary_markdown(summary), key="winnow-audit-summary", description=f"winnow audit {run_id}")
    if blocking:
        message = f"run {run_id}: {len(blocking)} blocking check(s) failed: {', '.join(blocking)}; the findings are stored"
        return Failed(message=message, data=ChecksFailed(message, run_id=run_id, summary=summary))
    return summary


def run(config: AuditConfig, db: str, resume: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Run :func:`audit_flow` on the task runner ``config`` asks for and return the run summary.

    ``dask``: a prefect-dask ``DaskTaskRunner`` on ``config.dask_address`` or on a local cluster,
    with the Prefect API its workers need (:func:`winnow.prefect_env.api_for_workers`). Raises
    :class:`~winnow.errors.ChecksFailed` when a blocking check failed.
    """
    if config.task_runner != "dask":
        return audit_flow(config, db=db, resume=resume, progress=progress)
    from winnow.prefect_env import api_for_workers, dask_task_runner

    runner = dask_task_runner(config.dask_address)
    with api_for_workers(config.dask_address):
        return audit_flow.with_options(task_runner=runner)(config, db=db, resume=resume, progress=progress)


def _slots(runner: Any) -> int:
    """Tasks in flight at once: 1 with Prefect's default thread-pool runner (each task runs here, in
    order); on a cluster runner (Dask, Ray), twice its worker threads, so the workers stay busy
    while this process commits results."""
    if _runner_name(runner) == "default":
        return 1
    client = getattr(runner, "client", None)
    threads = sum(client.nthreads().values()) if hasattr(client, "nthreads") else os.cpu_count() or 1
    return max(2, 2 * threads)


def _runner_name(runner: Any) -> str:
    """``default`` for Prefect's thread-pool runner, else the runner's kind (``dask``, ``ray``)."""
    from prefect.task_runners import ThreadPoolTaskRunner

    if isinstance(runner, ThreadPoolTaskRunner):
        return "default"
    return type(runner).__name__.removesuffix("TaskRunner").lower()


def _in_flight(calls: Iterable[tuple[Any, Task | None, dict[str, Any]]], slots: int) -> Iterator[tuple[Any, Any]]:
    """Run each call's task with its keyword arguments and yield ``(key, result)`` in call order.

    With one slot every task runs here, one after another; with more they are submitted to the
    flow's task runner, at most ``slots`` at a time. ``calls`` is consumed lazily, so no more than
    that many inputs (shard payloads, reference chunks) are held at once. A call whose task is
    ``None`` has nothing to compute and yields ``None``.
    """
    pending: deque[tuple[Any, Any]] = deque()
    for key, work, kwargs in calls:
        if slots == 1:
            yield key, work(**kwargs) if work is not None else None
            continue
        pending.append((key, work.submit(**kwargs) if work is not None else None))
        while len(pending) >= slots:
            done, future = pending.popleft()
            yield done, future.result() if future is not None else None
    while pending:
        done, future = pending.popleft()
        yield done, future.result() if future is not None else None


def _fill(
    fill: stages.CacheFill, dataset, config: AuditConfig, compute: Task, kwargs: dict[str, Any], save: Callable[[pd.DataFrame, Any], dict[str, str]],
    label: str, progress: bool, slots: int,
) -> None:
    """Compute each shard's missing contents with ``compute`` (``kwargs`` plus the payloads) and
    commit each result here with ``save(todo, result)`` as it comes back."""

    def calls():
        for rows in stages.shards(dataset, config.shard_size):
            todo = fill.todo(rows)
            work = compute.with_options(task_run_name=f"{compute.name}-{rows.index[0]}") if len(todo) else None
            yield (rows, todo), work, {**kwargs, "payloads": stages.payloads(dataset, todo)}

    with _progress_bar(progress, total=len(dataset.readable), label=label) as bar:
        for (rows, todo), result in _in_flight(calls(), slots):
            if result is not None:
                failed = save(todo, result)
                fill.done(len(todo) - len(failed), failed)
            bar(len(rows))


def _measure_all(store: Store, run_id: str, dataset, measurer: stages.Measurer, config: AuditConfig, progress: bool, slots: int) -> None:
    """Measure every shard, then record the items that failed to decode."""
    fill = stages.CacheFill(store, "properties", measurer.kind, dataset.readable["content_hash"].tolist())
    save = lambda todo, measured: stages.save_measured(store, measurer, todo, measured)  # noqa: E731
    _fill(fill, dataset, config, measure, {"measurer": measurer}, save, "measuring", progress, slots)
    errors = fill.errors(dataset.readable)
    record_decode_errors(store, run_id, dataset, errors)
    store.mark_stage(run_id, "measure", {"kind": measurer.kind, **fill.stats(), "decode_errors": len(errors)})


def _embed_all(store: Store, run_id: str, dataset, embedder, config: AuditConfig, progress: bool, slots: int) -> dict[str, Any]:
    """Embed every shard (each commits its vectors), record decode failures; return ``cached``,
    ``computed`` and the cache ``hit_rate`` (also recorded in the ``embed`` stage)."""
    fill = stages.CacheFill(store, "vectors", embedder.model_id, dataset.readable["content_hash"].tolist())
    save = lambda todo, result: stages.save_embedded(store, embedder.model_id, todo, result)  # noqa: E731
    kwargs = {"embedder": stages.EmbedderRef.of(embedder, config, dataset.modality), "batch_size": config.batch_size}
    _fill(fill, dataset, config, embed, kwargs, save, "embedding", progress, slots)
    errors = fill.errors(dataset.readable)
    record_decode_errors(store, run_id, dataset, errors)
    stats = fill.stats()
    store.mark_stage(run_id, "embed", {"model_id": embedder.model_id, **stats, "decode_errors": len(errors)})
    return stats


def _search(store: Store, reference: stages.Reference, vectors, measurer, model_id: str, k: int, slots: int) -> stages.ReferenceHits:
    """Each embedded item's ``k`` nearest reference contents: the reference's vectors are read one
    chunk at a time and each chunk is searched by a task of its own."""
    calls = (
        (offset, search_reference.with_options(task_run_name=f"search-reference-{offset}"),
         {"queries": vectors, "chunk": stages.reference_vectors(store, model_id, hashes), "k": k})
        for offset, hashes in reference.chunks()
    )
    similarities, indices = merge_hits(((offset, *found) for offset, found in _in_flight(calls, slots)), len(vectors), k)
    return reference_hits(store, reference, similarities, indices, measurer)


class _Laps:
    """Wall seconds of the flow's stages, each lap from the end of the one before."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self.last, 3)
        self.last = now


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

    print(run(AuditConfig(source=sys.argv[1]), db=sys.argv[2] if len(sys.argv) > 2 else "winnow.duckdb"))

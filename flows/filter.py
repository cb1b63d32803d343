"""The filter flow: a pre-training corpus in, filtered shards and a removal manifest out.

1. open (or resume) the run: shards, state under ``<out>/.winnow-state``, a row in ``runs``
2. measure every shard (parallel, small shards grouped into one task: ``run.shard_groups``): exact
   keys, MinHash signatures, quality properties; corrupt lines; meanwhile decide the stages before
   the first embedding stage shard by shard, in corpus order, each group as soon as it is measured
3. for each remaining stage, in order: embed the kept documents (parallel) before the first
   embedding stage, then decide the stage over all shards
4. write every shard's kept documents in its own format (parallel, in the same groups)
5. combine the manifest, load it into DuckDB, mark the run completed, publish a markdown summary

With ``workers`` above 1 the shard tasks run on Prefect's Dask task runner, one process per worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from flows.retries import IO_TASK
from winnow.errors import ConfigError
from winnow.filtering import run
from winnow.filtering.config import EMBEDDING_STAGES, FilterConfig
from winnow.filtering.shards import Shard

open_plan = task(run.open_plan, name="open-filter-run", **IO_TASK)
measure = task(run.measure_shards, name="measure-shards", task_run_name="measure-{shards[0].key}", **IO_TASK)
embed = task(run.embed_pass, name="embed-shard", task_run_name="embed-{shard.key}", **IO_TASK)
open_indexes = task(run.open_indexes, name="open-dedup-indexes", **IO_TASK)
decide_shards = task(run.decide_shards, name="decide-shards", cache_policy=NO_CACHE)
decide = task(run.decide_pass, name="decide-stage", task_run_name="{stage}", cache_policy=NO_CACHE)
write = task(run.write_shards, name="write-shards", task_run_name="write-{shards[0].key}", **IO_TASK)
finish = task(run.finish, name="finish-filter-run", **IO_TASK)


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    config = flow_run.parameters["config"]
    return f"filter-{(FilterConfig.from_dict(config) if isinstance(config, dict) else config).dataset}"


@contextmanager
def _timed(into: dict[str, float], name: str) -> Iterator[None]:
    """Record the wall seconds of one pass (they go into the run summary)."""
    start = time.perf_counter()
    yield
    into[name] = round(time.perf_counter() - start, 2)


def _each_shard(task_, plan: run.FilterPlan, *args: Any) -> list[Any]:
    """Submit ``task_`` for every shard and wait for all (the task runner decides how many run at once)."""
    futures = [task_.submit(plan, shard, *args) for shard in plan.shards]
    wait(futures)
    return [f.result() for f in futures]


def _each_group(task_, plan: run.FilterPlan, groups: list[tuple[Shard, ...]]) -> list[Any]:
    """Submit ``task_`` for every group of shards and wait for all."""
    futures = [task_.submit(plan, group) for group in groups]
    wait(futures)
    return [f.result() for f in futures]


@flow(name="winnow-filter", flow_run_name=_flow_run_name, log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def filter_flow(config: FilterConfig, db: str) -> dict[str, Any]:
    """Filter the corpus of ``config`` into ``config.out``; return the run summary."""
    started = time.perf_counter()
    plan = open_plan(config, db)
    if plan.completed:
        return run.completed_summary(plan)
    from winnow.store import Store

    seconds: dict[str, float] = {}
    head = run.leading_shard_stages(config)
    groups = run.shard_groups(plan.shards, config.workers)
    try:
        indexes = open_indexes(plan)
        with _timed(seconds, "measure+" + "+".join(head) if head else "measure"):
            pending = [(group, measure.submit(plan, group)) for group in groups]
            while pending:  # in corpus order: each time, the measured groups at the front of the queue
                pending[0][1].result()
                ready = list(pending.pop(0)[0])
                while pending and pending[0][1].state.is_completed():
                    ready.extend(pending.pop(0)[0])
                if head:
                    decide_shards(plan, head, ready, indexes)
        for stage in config.stages[len(head):]:
            if stage in EMBEDDING_STAGES and "embed" not in seconds:
                with _timed(seconds, "embed"):
                    _each_shard(embed, plan, stage)
            with _timed(seconds, stage):
                decide(plan, stage, indexes)
        with _timed(seconds, "write"):
            _each_group(write, plan, groups)
        summary = finish(plan, started, seconds)
    except BaseException as exc:
        Store(db).finish_run(plan.run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    create_markdown_artifact(_markdown(summary), key="winnow-filter-summary", description=f"winnow filter {plan.run_id}")
    return summary


def _markdown(summary: dict[str, Any]) -> str:
    rows = "\n".join(f"| {stage} | {n} |" for stage, n in summary["flagged"].items())
    return (f"# winnow filter {summary['run_id']}\n\n{summary['items']} documents in {summary['shards']} shards: "
            f"{summary['kept']} kept, {summary['removed']} removed.\n\n| stage | removed |\n|---|---|\n{rows}\n\n"
            f"Manifest: `{summary['manifest']}`\n")


def filter_flow_for(config: FilterConfig):
    """The flow with the task runner ``config.workers`` asks for: threads (one at a time) for 1,
    else Prefect's Dask task runner with one single-threaded worker process per worker."""
    if config.workers <= 1:
        return filter_flow
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError(f"--workers {config.workers} runs shards on Dask and needs prefect-dask: pip install prefect-dask "
                          "(or leave --workers out to process one shard at a time).") from None
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": config.workers, "threads_per_worker": 1, "processes": True,
                                            "dashboard_address": None})
    return filter_flow.with_options(task_runner=runner)


if __name__ == "__main__":
    import sys

    from winnow.filtering import filter_corpus, load_filter_config

    print(filter_corpus(load_filter_config(None, inputs=sys.argv[1], out=sys.argv[2]), db=sys.argv[3] if len(sys.argv) > 3 else None))

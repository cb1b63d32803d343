"""Scheduled audits: the schedules of a winnow database, and the Prefect deployments built from them.

Schedules are recorded in a JSON file next to the database (``<db>.schedules.json``) rather than in
DuckDB: the store owns the tables, a schedule list is a handful of rows edited by hand-sized
commands, and ``winnow serve`` must read it without taking the database's single writer lock while
an audit runs. Each schedule becomes a deployment of the audit flow whose ``config`` parameter is
the audit's :class:`~winnow.config.AuditConfig` with ``reference = "previous"``, so every scheduled
run is an incremental audit against the dataset's previous completed run: its duplicates are
searched in the reference corpus, its off-topic items and outliers scored against it, and the
batch tested for drift (docs/incremental.md).

Two ways to run them (docs/scheduling.md): ``winnow serve`` serves every deployment from one
long-running process (:func:`serve`), or :func:`deploy` registers one with a Prefect server's work
pool, and a ``prefect worker`` runs it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from winnow.config import AuditConfig
from winnow.errors import ConfigError
from winnow.stages import PREVIOUS_RUN

SUFFIX = ".schedules.json"
SERVE_LIMIT = 1
"""Audits ``winnow serve`` runs at once: they share one DuckDB file, which takes one writer at a time."""


@dataclass(frozen=True)
class Schedule:
    """One scheduled audit: a dataset's audit options, its database and when it runs."""

    name: str
    config: dict[str, Any]
    db: str
    cron: str | None = None
    interval: float | None = None

    def when(self) -> str:
        """The schedule in words: the cron expression, or ``every N s``."""
        return self.cron if self.cron else f"every {self.interval:g} s"


def schedules_path(db: str | Path) -> Path:
    """The schedules file of database ``db``."""
    db = Path(db).expanduser().resolve()
    return db.with_name(db.name + SUFFIX)


def load_schedules(db: str | Path) -> list[Schedule]:
    """The schedules registered for ``db`` (none when the file does not exist yet)."""
    path = schedules_path(db)
    if not path.exists():
        return []
    try:
        return [Schedule(**entry) for entry in json.loads(path.read_text())]
    except (json.JSONDecodeError, TypeError) as exc:
        raise ConfigError(f"{path} is not a winnow schedules file ({exc}); fix it or delete it and schedule again.") from exc


def _save_schedules(db: str | Path, schedules: list[Schedule]) -> None:
    """Write the schedules atomically (a reader never sees half a file)."""
    path = schedules_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps([asdict(s) for s in schedules], indent=2, sort_keys=True))
    os.replace(partial, path)


def make_schedule(config: AuditConfig, db: str | Path, *, cron: str | None = None, interval: float | None = None) -> Schedule:
    """A schedule for ``config``, audited against the previous run; exactly one of
    ``cron`` and ``interval`` (seconds) must be given, and the cron expression must parse."""
    if (cron is None) == (interval is None):
        raise ConfigError("give exactly one of --cron \"0 2 * * *\" and --interval SECONDS.")
    if interval is not None and interval <= 0:
        raise ConfigError(f"--interval must be a positive number of seconds, got {interval}.")
    parameters = {**config.to_dict(), "reference": PREVIOUS_RUN}
    schedule = Schedule(name=str(config.name), config=parameters, db=str(Path(db).expanduser().resolve()), cron=cron, interval=interval)
    to_deployment(schedule)  # validates the cron expression and the parameters now, not at 2 a.m.
    return schedule


def add_schedule(schedule: Schedule) -> None:
    """Record ``schedule`` for its database, replacing one of the same name."""
    others = [s for s in load_schedules(schedule.db) if s.name != schedule.name]
    _save_schedules(schedule.db, others + [schedule])


def remove_schedule(db: str | Path, name: str) -> Schedule:
    """Forget the schedule ``name`` and return it."""
    schedules = load_schedules(db)
    match = [s for s in schedules if s.name == name]
    if not match:
        known = ", ".join(s.name for s in schedules) or "none"
        raise ConfigError(f"no schedule named {name!r} for {db} (registered: {known}); `winnow schedule --list` shows them.")
    _save_schedules(db, [s for s in schedules if s.name != name])
    return match[0]


def to_deployment(schedule: Schedule, work_pool: str | None = None):
    """The audit flow as a Prefect deployment for ``schedule`` (entry point by module path, so a
    worker started from any folder finds it)."""
    from prefect.deployments.runner import EntrypointType

    from flows.audit import audit_flow

    dataset = schedule.config["name"]
    try:
        return audit_flow.to_deployment(
            name=schedule.name, cron=schedule.cron, interval=schedule.interval, parameters={"config": schedule.config, "db": schedule.db},
            description=f"winnow audit of {dataset} into {schedule.db}, incremental against the previous run",
            tags=["winnow", dataset], work_pool_name=work_pool, entrypoint_type=EntrypointType.MODULE_PATH,
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        if schedule.cron:
            raise ConfigError(f"--cron {schedule.cron!r} is not a cron expression; give five fields, e.g. \"0 2 * * *\" for 02:00 daily.") from exc
        raise ConfigError(f"cannot schedule {schedule.name!r} ({schedule.when()}): {exc}") from exc


def serve(db: str | Path) -> None:
    """Run every schedule of ``db`` until interrupted (``prefect.serve``); each run is a subprocess.

    Uses the Prefect server at ``PREFECT_API_URL``. Without one it starts a local server for as
    long as it serves: Prefect's temporary in-process server runs no scheduler, so nothing would
    ever be scheduled.
    """
    schedules = load_schedules(db)
    if not schedules:
        raise ConfigError(f"no schedules for {db}; add one with `winnow schedule SOURCE --cron \"0 2 * * *\" --db {db}`.")
    if os.environ.get("PREFECT_API_URL"):
        _serve(schedules)
        return
    with local_prefect_server() as url:
        print(f"started a Prefect server for these schedules: {url.removesuffix('/api')} (UI and run history)")
        _serve(schedules, url)


def _serve(schedules: list[Schedule], api_url: str | None = None) -> None:
    """``prefect.serve`` the schedules' deployments against ``api_url`` (default: the configured API)."""
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url} if api_url else {}):
        prefect_serve(*[to_deployment(s) for s in schedules], print_starting_message=False, limit=SERVE_LIMIT)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def local_prefect_server(port: int | None = None, *, env: dict[str, str] | None = None, timeout: float = 120.0) -> Iterator[str]:
    """``prefect server start`` on 127.0.0.1 in a subprocess; yields its API URL once ``/api/health``
    answers and stops the server on exit. ``env`` adds to the environment (e.g. ``PREFECT_HOME``)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/api"
    environment = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(env or {})}
    environment.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_for_health(server, url, timeout)
        yield url
    finally:
        _stop(server)


def _wait_for_health(server: subprocess.Popen, url: str, timeout: float) -> None:
    """Poll ``/health`` until the server answers; fail with its stderr if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ConfigError(f"the Prefect server exited with code {server.returncode}: {server.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise ConfigError(f"the Prefect server at {url} did not answer within {timeout:.0f} s; start one yourself and set PREFECT_API_URL.")


def _stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process's group (the server and its children), SIGKILL after ``grace`` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def deploy(schedule: Schedule, work_pool: str) -> str:
    """Register ``schedule`` with the Prefect server at ``PREFECT_API_URL`` for the process work pool
    ``work_pool``; a ``prefect worker start --pool WORK_POOL`` then runs it. Returns the deployment id."""
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError("--work-pool needs a Prefect server: start one (`prefect server start`) and set PREFECT_API_URL.")
    return str(to_deployment(schedule, work_pool).apply(work_pool_name=work_pool))

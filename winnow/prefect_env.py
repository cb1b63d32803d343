"""Prefect settings winnow needs, applied before Prefect is imported, and the Dask task runner."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from prefect_dask import DaskTaskRunner


def configure_prefect(quiet: bool = False) -> None:
    """Turn off Prefect's analytics, allow a slow temporary-server start, and (when ``quiet``) hide
    Prefect's and Dask's console logging below warnings.

    Explicit environment settings win: this only fills in values the user has not set.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # two audits starting at once on a small machine each start a temporary server: Prefect's
    # default 20 s start-up limit is too tight there
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # a local Dask cluster's start-up chatter


def require_reachable_api(timeout: float = 5.0) -> None:
    """Fail fast, with what to do, when Prefect is pointed at a server that does not answer.

    Without ``PREFECT_API_URL`` Prefect runs flows against a temporary local server and this does
    nothing. With it, an unreachable server would otherwise surface as a traceback from deep inside
    Prefect's engine. Any HTTP answer counts as reachable (a server that wants a key says so itself).
    """
    import httpx
    from prefect.settings import PREFECT_API_URL

    from winnow.errors import WinnowError

    url = PREFECT_API_URL.value()
    if not url:
        return
    try:
        httpx.get(f"{str(url).rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as exc:
        raise WinnowError(
            f"the Prefect API at {url} is not reachable ({type(exc).__name__}: {exc}). Start that server "
            "(`prefect server start`), point PREFECT_API_URL at one that runs, or unset PREFECT_API_URL "
            "to let winnow run the flow on a temporary local server."
        ) from None


LOCAL_SCHEMES = ("inproc://", "tcp://127.", "tcp://localhost", "tls://127.", "tls://localhost", "ucx://127.")
"""Dask scheduler addresses on this machine: their workers can reach a Prefect server on 127.0.0.1."""


def dask_task_runner(address: str | None) -> "DaskTaskRunner":
    """A prefect-dask ``DaskTaskRunner``: on the Dask scheduler at ``address``, else on a local
    cluster it starts for the run (one worker process per core; its dashboard on a free port)."""
    from winnow.errors import ConfigError

    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError(
            "--task-runner dask needs prefect-dask, which is not installed: pip install 'winnow[dask]' "
            "(or pip install prefect-dask). For Ray, see docs/incremental.md."
        ) from None
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"dashboard_address": ":0"})


@contextmanager
def api_for_workers(address: str | None) -> Iterator[str]:
    """Make sure Dask workers report their task runs to the flow's Prefect API; yields its URL.

    Prefect hands each task's settings to the worker that runs it, but with no ``PREFECT_API_URL``
    there is no address to hand over and every worker process would start a temporary server of
    its own. So without one this starts Prefect's temporary server now (the one the flow itself
    would use) and sets ``PREFECT_API_URL`` to it for the duration — which only workers on this
    machine can reach: for a cluster ``address`` elsewhere it asks for a server they can reach.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from winnow.errors import ConfigError

    configured = PREFECT_API_URL.value()
    if configured:
        yield str(configured)
        return
    if address and not address.startswith(LOCAL_SCHEMES):
        raise ConfigError(
            f"the Dask workers at {address} report to the Prefect API, and without PREFECT_API_URL the only one is a "
            "temporary server on this machine that they cannot reach. Start a server they can reach (`prefect server "
            "start --host 0.0.0.0`) and set PREFECT_API_URL=http://THIS_HOST:4200/api."
        )
    server = SubprocessASGIServer()
    server.start()
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url  # for worker processes the local cluster spawns
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous

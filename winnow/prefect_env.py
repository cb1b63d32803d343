"""Prefect settings winnow needs, applied before Prefect is imported."""

from __future__ import annotations

import os


def configure_prefect(quiet: bool = False) -> None:
    """Turn off Prefect's analytics, allow a slow temporary-server start, and (when ``quiet``) hide
    Prefect's console logging below warnings.

    Explicit environment settings win: this only fills in values the user has not set.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # two audits starting at once on a small machine each start a temporary server: Prefect's
    # default 20 s start-up limit is too tight there
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


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

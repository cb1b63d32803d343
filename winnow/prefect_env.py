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

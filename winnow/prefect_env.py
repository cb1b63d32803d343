"""Prefect settings winnow needs, applied before Prefect is imported."""

from __future__ import annotations

import os


def configure_prefect(quiet: bool = False) -> None:
    """Turn off Prefect's analytics and (when ``quiet``) its console logging below warnings.

    Explicit environment settings win: this only fills in values the user has not set.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

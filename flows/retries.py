"""Task options shared by the flows: retry I/O failures with backoff, never a user's mistake."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

from winnow.errors import WinnowError


def retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O failures, never errors in the user's input (they would fail the same way)."""
    try:
        state.result()
    except WinnowError:
        return False
    except Exception:
        return True
    return False


# tasks that read or write files and the database: their results live in DuckDB, not in Prefect
IO_TASK: dict[str, Any] = dict(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_unless_user_error, cache_policy=NO_CACHE)

"""Exceptions users can act on.

Every error raised for bad input is a :class:`WinnowError`; the CLI turns it into a one-paragraph
message and exit code 2. The message always says what was expected, what was found and what to do.
"""

from __future__ import annotations


class WinnowError(Exception):
    """Base class for errors caused by the user's input or environment (CLI exit code 2)."""


class SourceError(WinnowError):
    """The dataset source cannot be read as any supported layout."""


class ConfigError(WinnowError):
    """An option or configuration value is invalid."""


class ModelError(WinnowError):
    """An embedding model cannot be built or its weights cannot be loaded."""


class RunNotFound(WinnowError):
    """A run id was given that is not in the database."""


class StoreLocked(WinnowError):
    """The DuckDB file stayed locked by another process for longer than the timeout."""


class ChecksFailed(WinnowError):
    """An audit finished and stored its findings, but checks marked blocking (``--blocking``) failed.

    The run's status is ``failed-checks`` and its Prefect flow run is failed; the CLI exits with
    :attr:`exit_code` (3), not 2, since nothing in the command was wrong. ``run_id`` and
    ``summary`` (the run summary, as ``winnow audit --json`` prints it) say where the findings are.
    """

    exit_code = 3

    def __init__(self, message: str, *, run_id: str | None = None, summary: dict | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.summary = summary or {}

"""``audit()``: the one entry point the CLI (and scripts) use to run an audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from winnow.config import AuditConfig
from winnow.prefect_env import configure_prefect
from winnow.store import Store


def audit(source: str | Path, *, db: str | Path | None = None, progress: bool = False, **options: Any) -> dict[str, Any]:
    """Audit ``source`` with the Prefect audit flow and return the run summary.

    ``options`` are the fields of :class:`~winnow.config.AuditConfig` (``modality``, ``label_col``,
    ``model``, ``params`` …). Results are written to ``db`` (default ``$WINNOW_DB`` or
    ``./winnow.duckdb``).
    """
    config = AuditConfig(source=str(source), **options)
    return _run(config, db, None, progress)


def resume(run_id: str, *, db: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Finish a run that was interrupted, reusing everything it already committed."""
    store = Store(db)
    config = AuditConfig.from_dict(store.get_run(run_id)["config"])
    return _run(config, db, run_id, progress)


def _run(config: AuditConfig, db: str | Path | None, resume_id: str | None, progress: bool) -> dict[str, Any]:
    configure_prefect()
    from flows.audit import audit_flow

    store = Store(db)
    store.initialize()
    return audit_flow(config, db=str(store.path), resume=resume_id, progress=progress)

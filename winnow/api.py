"""``winnow.audit()`` and ``winnow.resume()``: the one implementation behind the CLI and notebooks.

Both run the Prefect audit flow (with or without a Prefect server) and return a
:class:`~winnow.results.Report` over the run stored in DuckDB.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from winnow.config import AuditConfig
from winnow.errors import ConfigError
from winnow.prefect_env import configure_prefect, require_reachable_api
from winnow.results import Report
from winnow.sources import Materialized, materialize, save_array
from winnow.store import Store


def audit(
    source: Any, *, db: str | Path | None = None, labels: Sequence[Any] | None = None, embeddings: np.ndarray | None = None,
    pred_probs: np.ndarray | None = None, progress: bool = False, **options: Any,
) -> Report:
    """Audit ``source`` and return a :class:`~winnow.results.Report` (also stored in ``db``).

    ``source``: an image folder or a CSV / Parquet / JSONL file, a pandas DataFrame, a pyarrow
    Table, a Hugging Face ``datasets.Dataset``, or a list of texts or PIL images. ``labels``: one
    label per item for in-memory data. ``embeddings``: an ``(n_items, dim)`` array you already
    have, row-aligned with the source — the embedding stage is skipped. ``pred_probs``: your
    out-of-fold class probabilities (one column per class, in sorted label order), used by the
    label-error detector instead of its own probe. ``options`` are the fields
    of :class:`~winnow.config.AuditConfig` (``modality``, ``label_col``, ``id_col``, ``model``,
    ``params``, ``suite`` …). Results go to ``db`` (default ``$WINNOW_DB`` or ``./winnow.duckdb``).

    Example::

        report = winnow.audit(frame, labels=y, embeddings=features)
        report.top("label_error", 10)
    """
    store = Store(db)
    data = materialize(source, folder=store.path.parent / ".winnow-sources", labels=labels)
    if data.kind != "path":
        options.setdefault("name", f"in-memory-{data.kind}")
    if pred_probs is not None:
        options["pred_probs"] = str(save_array(np.asarray(pred_probs, dtype=np.float32), store.path.parent / ".winnow-sources", "pred-probs"))
    config = AuditConfig(source=str(data.path), **{**data.options, **options})
    if embeddings is not None:
        config.model = _cache_embeddings(store, config, embeddings)
    return _run(config, store, None, progress, data)


def resume(run_id: str, *, db: str | Path | None = None, progress: bool = False) -> Report:
    """Finish a run that was interrupted, reusing everything it already committed."""
    store = Store(db)
    config = AuditConfig.from_dict(store.get_run(run_id)["config"])
    return _run(config, store, run_id, progress, Materialized(Path(config.source), "path", config.source))


def _cache_embeddings(store: Store, config: AuditConfig, embeddings: np.ndarray) -> str:
    """Put the caller's vectors in the cache under their own model id and return its spec."""
    from detectors.knn import usable_rows
    from winnow.datasets import ingest
    from winnow.embed import l2_normalize

    vectors = np.asarray(embeddings, dtype=np.float32)
    dataset = ingest(config.source, modality=config.modality, text_col=config.text_col, path_col=config.path_col,
                     label_col=config.label_col, id_col=config.id_col, name=config.name)
    if vectors.ndim != 2 or len(vectors) != len(dataset.items):
        raise ConfigError(f"embeddings must be a 2-D array with one row per item ({len(dataset.items)}), got shape {vectors.shape}.")
    bad = np.flatnonzero(~usable_rows(vectors))
    if len(bad):
        raise ConfigError(f"embeddings rows {bad[:5].tolist()} contain NaN or infinite values or are all zero; fix or drop those rows first.")
    model_id = f"precomputed:{hashlib.blake2b(vectors.tobytes(), digest_size=8).hexdigest()}"
    store.save_vectors(model_id, dataset.items["content_hash"].tolist(), l2_normalize(vectors))
    return model_id


def _run(config: AuditConfig, store: Store, resume_id: str | None, progress: bool, data: Materialized) -> Report:
    configure_prefect()
    require_reachable_api()
    from flows.audit import run

    store.initialize()
    info = run(config, db=str(store.path), resume=resume_id, progress=progress)
    return Report(store, info["run_id"], info, data)

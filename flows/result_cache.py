"""What the audit flow keeps in Prefect's result cache, under which keys, for how long, and the
removal of what has expired.

Two tasks are cached: the detection (an unchanged dataset audited again with the same options and
code reuses its findings) and a Great Expectations suite run. Prefect stops serving a cached result
once it expires but never deletes the file it persisted, and a dataset that changes between
scheduled audits writes a new detection every run (about 20 MB per 100,000 items), so the flow
deletes winnow's expired entries itself (:func:`prune_expired`). Only files under winnow's own key
prefixes are touched: the result storage may be shared with other flows.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

DETECTION_PREFIX = "winnow-detection-"
DETECTION_EXPIRATION = timedelta(days=7)
SUITE_PREFIX = "winnow-suite-"
SUITE_EXPIRATION = timedelta(days=1)


def detection_key(context: Any, parameters: dict[str, Any]) -> str | None:
    """The cache key of a run's detection: :attr:`winnow.stages.DetectionInputs.key` under
    :data:`DETECTION_PREFIX` (``None``: not cached)."""
    key = parameters["inputs"].key
    return None if key is None else DETECTION_PREFIX + key


def suite_run_key(context: Any, parameters: dict[str, Any]) -> str:
    """Cache key of a suite run: the table's values, column names and types, the item ids, the
    suite file's bytes and the code that runs it — everything its findings depend on."""
    import checks.tabular
    from winnow import stages

    dataset, config = parameters["dataset"], parameters["config"]
    digest = hashlib.blake2b(digest_size=20)
    digest.update(pd.util.hash_pandas_object(dataset.table, index=False).to_numpy().tobytes())
    for part in (dataset.table.columns, dataset.table.dtypes.astype(str), dataset.items["item_id"]):
        digest.update("\x1f".join(map(str, part)).encode())
    for path in (Path(config.suite), Path(checks.tabular.__file__), Path(stages.__file__)):
        digest.update(path.read_bytes())
    digest.update(str(config.id_col).encode())
    return SUITE_PREFIX + digest.hexdigest()


def local_result_storage() -> Path | None:
    """The folder Prefect persists results in, or ``None`` when results go to a storage block
    that is not a local folder (its own retention rules apply there)."""
    from prefect.filesystems import LocalFileSystem
    from prefect.results import get_default_result_storage

    storage = get_default_result_storage()
    return Path(storage.basepath).expanduser() if isinstance(storage, LocalFileSystem) and storage.basepath else None


def prune_expired(storage: Path | None = None, now: float | None = None) -> tuple[int, int]:
    """Delete winnow's cached results older than their expiration from ``storage`` (default:
    Prefect's local result storage); returns ``(files, bytes)`` deleted.

    A result's expiration is its write time plus the task's ``cache_expiration``, and a cache hit
    does not rewrite the file, so the file's age tells whether Prefect would still serve it.
    """
    storage = local_result_storage() if storage is None else storage
    if storage is None or not storage.is_dir():
        return 0, 0
    now = time.time() if now is None else now
    files = freed = 0
    for prefix, expiration in ((DETECTION_PREFIX, DETECTION_EXPIRATION), (SUITE_PREFIX, SUITE_EXPIRATION)):
        for path in storage.glob(prefix + "*"):
            try:
                stat = path.stat()
                if now - stat.st_mtime > expiration.total_seconds():
                    path.unlink()
                    files, freed = files + 1, freed + stat.st_size
            except OSError:  # another audit pruned it first, or it is not ours to delete: left as it is
                continue
    return files, freed

"""The DuckDB store: the only module that speaks SQL.

Connections are short-lived: every call opens the file, does its work in one transaction and closes
it, so a dashboard and a scheduled audit can share a file (DuckDB lets only one process hold a
read-write connection). A call that finds the file locked retries until ``lock_timeout`` and then
raises :class:`~winnow.errors.StoreLocked`.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from winnow.datasets.model import ITEM_COLUMNS
from winnow.errors import ConfigError, RunNotFound, StoreLocked, WinnowError
from winnow.findings import FINDINGS_COLUMNS, PAIRS_COLUMNS
from winnow.store import migrations

__all__ = ["Store", "DEFAULT_DB", "default_db_path"]

DEFAULT_DB = "winnow.duckdb"
DEFAULT_MEMORY_LIMIT = "512MB"
"""DuckDB's own default is 80 % of RAM, and it keeps the pages a query scanned up to that limit: a
read of a large reference corpus's vectors would grow the audit by the size of the table. Past
this limit DuckDB evicts pages and spills to ``<db>.tmp``. Override with ``$WINNOW_DUCKDB_MEMORY_LIMIT``."""
_MEMORY_LIMIT = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)
DECISIONS = ("confirmed", "dismissed", "relabel", "keep")
CHECK_RESULT_COLUMNS = ("run_id", "check_name", "item_id", "success", "observed", "detail")


def default_db_path() -> Path:
    """``$WINNOW_DB`` if set, else ``./winnow.duckdb``."""
    return Path(os.environ.get("WINNOW_DB") or DEFAULT_DB)


def memory_limit_setting(value: str | None = None) -> str:
    """The memory limit every connection of the store sets: ``value``, else
    ``$WINNOW_DUCKDB_MEMORY_LIMIT``, else :data:`DEFAULT_MEMORY_LIMIT`."""
    limit = value or os.environ.get("WINNOW_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
    if not _MEMORY_LIMIT.match(limit):
        raise ConfigError(f"DuckDB memory limit {limit!r} is not a size; write it like 512MB or 2GB (WINNOW_DUCKDB_MEMORY_LIMIT).")
    return limit.strip()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


class Store:
    """A winnow DuckDB file. Safe to create anywhere; nothing is opened until a method needs it."""

    def __init__(self, path: str | Path | None = None, *, lock_timeout: float = 60.0, memory_limit: str | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.lock_timeout = lock_timeout
        self.memory_limit = memory_limit_setting(memory_limit)

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file, retrying while another process holds its lock, and close it after."""
        if read_only and not self.path.exists():
            raise WinnowError(f"no winnow database at {self.path}; run `winnow audit SOURCE` first or pass --db.")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only, config={"memory_limit": self.memory_limit})
                break
            except duckdb.IOException as exc:
                if not _is_lock_error(exc):
                    raise WinnowError(f"cannot open {self.path}: {exc}") from exc
                if time.monotonic() > deadline:
                    raise StoreLocked(
                        f"{self.path} stayed locked by another process for {self.lock_timeout:g} s; "
                        "wait for the running audit to finish, or use another --db."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            if not read_only:
                migrations.apply(con)
            self._check_schema(con)
            yield con
        finally:
            con.close()

    def _check_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "schema_migrations" not in tables:
            raise WinnowError(f"{self.path} is a DuckDB file but not a winnow database; point --db at a file winnow wrote.")
        known = {name for name, _ in migrations.MIGRATIONS}
        names = {row[0] for row in con.execute("SELECT name FROM schema_migrations").fetchall()}
        if names - known:
            raise WinnowError(f"{self.path} was written by a newer winnow (schema {sorted(names - known)[-1]}); upgrade winnow to read it.")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction, rolled back on error."""
        with self.connect() as con:
            con.execute("BEGIN")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self.connect(read_only=True) as con:
            return con.execute(sql, list(params)).df()

    def initialize(self) -> list[str]:
        """Create or migrate the schema; return the migrations applied."""
        with self.connect() as con:
            return migrations.applied(con)

    # -- runs --------------------------------------------------------------------------------

    def create_run(self, *, dataset: str, source: str, modality: str, config: dict[str, Any]) -> str:
        """Register a new run as ``running`` and return its id."""
        run_id = f"{_now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        with self.transaction() as con:
            con.execute(
                "INSERT INTO runs (run_id, dataset, source, modality, config, started, status) VALUES (?, ?, ?, ?, ?, ?, 'running')",
                [run_id, dataset, source, modality, json.dumps(config, sort_keys=True, default=str), _now()],
            )
        return run_id

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run as a dict (``config`` and ``counts`` decoded); :class:`RunNotFound` if absent."""
        frame = self._query("SELECT * FROM runs WHERE run_id = ?", [run_id])
        if frame.empty:
            raise RunNotFound(f"no run {run_id!r} in {self.path}; `winnow runs` lists the runs.")
        run = frame.iloc[0].to_dict()
        for key in ("config", "counts"):
            run[key] = json.loads(run[key]) if isinstance(run[key], str) else {}
        return run

    def list_runs(self, dataset: str | None = None) -> pd.DataFrame:
        """Runs, newest first; ``counts`` is the run summary as JSON (items, flagged per issue type…)."""
        sql = "SELECT run_id, dataset, modality, status, started, finished, source, counts, error FROM runs"
        params: list[Any] = []
        if dataset:
            sql += " WHERE dataset = ?"
            params.append(dataset)
        return self._query(sql + " ORDER BY started DESC", params)

    def latest_run_id(self) -> str:
        """The newest run's id."""
        runs = self.list_runs()
        if runs.empty:
            raise RunNotFound(f"{self.path} has no runs yet; run `winnow audit SOURCE` first.")
        return str(runs.iloc[0]["run_id"])

    def resolve_run(self, run_id: str | None) -> str:
        """``run_id`` if given (checked), else the newest run."""
        if run_id is None:
            return self.latest_run_id()
        self.get_run(run_id)
        return run_id

    def set_run_modality(self, run_id: str, modality: str) -> None:
        with self.transaction() as con:
            con.execute("UPDATE runs SET modality = ? WHERE run_id = ?", [modality, run_id])

    def finish_run(self, run_id: str, *, status: str, counts: dict[str, Any] | None = None, error: str | None = None) -> None:
        """Mark a run ``completed`` or ``failed`` with its summary counts."""
        with self.transaction() as con:
            con.execute(
                "UPDATE runs SET status = ?, finished = ?, counts = ?, error = ? WHERE run_id = ?",
                [status, _now(), json.dumps(counts or {}, sort_keys=True), error, run_id],
            )

    def mark_stage(self, run_id: str, stage: str, detail: dict[str, Any] | None = None) -> None:
        """Record that a stage of a run finished (idempotent)."""
        with self.transaction() as con:
            self._mark_stage(con, run_id, stage, detail)

    @staticmethod
    def _mark_stage(con: duckdb.DuckDBPyConnection, run_id: str, stage: str, detail: dict[str, Any] | None) -> None:
        con.execute(
            "INSERT OR REPLACE INTO run_stages VALUES (?, ?, ?, ?)",
            [run_id, stage, _now(), json.dumps(detail or {}, sort_keys=True, default=str)],
        )

    def stages(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Finished stages of a run and their details."""
        frame = self._query("SELECT stage, detail FROM run_stages WHERE run_id = ?", [run_id])
        return {row.stage: json.loads(row.detail or "{}") for row in frame.itertuples()}

    # -- items -------------------------------------------------------------------------------

    def save_items(self, run_id: str, items: pd.DataFrame) -> None:
        """Replace a run's items and mark its ``ingest`` stage, in one transaction."""
        frame = items[list(ITEM_COLUMNS)].copy()
        frame.insert(0, "run_id", run_id)
        with self.transaction() as con:
            con.execute("DELETE FROM items WHERE run_id = ?", [run_id])
            con.register("new_items", frame)
            con.execute(f"INSERT INTO items ({', '.join(frame.columns)}) SELECT * FROM new_items")
            con.unregister("new_items")
            self._mark_stage(con, run_id, "ingest", {"items": len(frame)})

    def load_items(self, run_id: str) -> pd.DataFrame:
        """A run's items in ingest order."""
        frame = self._query(f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE run_id = ? ORDER BY ordinal", [run_id])
        return frame.astype(object).where(frame.notna(), None).astype({"ordinal": "int64"})

    # -- content-keyed caches (embeddings, measured properties) -------------------------------

    _CACHES = {"vectors": ("embeddings", "vector", "model_id"), "properties": ("properties", "properties", "kind")}

    def _cached(self, cache: str, value: str, content_hashes: Sequence[str], *, with_values: bool = True) -> pa.Table:
        """``content_hash`` (and the cached value) rows of a cache (``vectors`` for a model id,
        ``properties`` for a measurer kind) for these hashes."""
        table, column, key = self._CACHES[cache]
        selected = f"c.content_hash, c.{column}" if with_values else "c.content_hash"
        if not self.path.exists() or not content_hashes:
            return pa.table({"content_hash": pa.array([], pa.string()), column: pa.array([])})
        wanted = pa.table({"content_hash": pa.array(sorted(set(content_hashes)), pa.string())})
        with self.connect(read_only=True) as con:
            con.register("wanted", wanted)
            return con.sql(
                f"SELECT {selected} FROM {table} c JOIN wanted USING (content_hash) WHERE c.{key} = $value",
                params={"value": value},
            ).to_arrow_table()

    def cached_hashes(self, cache: str, value: str, content_hashes: Sequence[str]) -> set[str]:
        """Which of these hashes the cache holds (``cache`` is ``vectors`` with a model id, or
        ``properties`` with a measurer kind), without reading the cached values."""
        return set(self._cached(cache, value, content_hashes, with_values=False).column("content_hash").to_pylist())

    def cached_vectors(self, model_id: str, content_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors already computed for these hashes with this model."""
        table = self._cached("vectors", model_id, content_hashes)
        hashes = table.column("content_hash").to_pylist()
        if not hashes:
            return {}
        flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        matrix = flat.astype(np.float32).reshape(len(hashes), -1)
        return dict(zip(hashes, matrix))

    def count_vectors(self, model_id: str) -> int:
        """How many vectors the cache holds for a model."""
        return int(self._query("SELECT count(*) AS n FROM embeddings WHERE model_id = ?", [model_id])["n"].iloc[0])

    def save_vectors(self, model_id: str, content_hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors to the cache (existing entries are kept)."""
        if len(content_hashes) == 0:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        table = pa.table(
            {
                "content_hash": pa.array(list(content_hashes), pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1]).cast(pa.list_(pa.float32())),
            }
        )
        with self.transaction() as con:
            con.register("new_vectors", table)
            con.execute(
                "INSERT INTO embeddings SELECT DISTINCT ON (content_hash) content_hash, ?, vector, ? FROM new_vectors "
                "ON CONFLICT DO NOTHING",
                [model_id, _now()],
            )
            con.unregister("new_vectors")

    def cached_properties(self, kind: str, content_hashes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Properties (image / text quality, perceptual hashes) already measured for these hashes by
        measurer ``kind`` (e.g. ``image-v1``)."""
        table = self._cached("properties", kind, content_hashes)
        return {h: json.loads(p) for h, p in zip(table.column("content_hash").to_pylist(), table.column("properties").to_pylist())}

    def save_properties(self, kind: str, properties: dict[str, dict[str, Any]]) -> None:
        """Add measured properties (``content_hash -> dict``) to the cache; existing entries are kept."""
        if not properties:
            return
        table = pa.table(
            {
                "content_hash": pa.array(list(properties), pa.string()),
                "properties": pa.array([json.dumps(p, sort_keys=True, default=str) for p in properties.values()], pa.string()),
            }
        )
        with self.transaction() as con:
            con.register("new_properties", table)
            con.execute(
                "INSERT INTO properties SELECT content_hash, ?, properties, ? FROM new_properties ON CONFLICT DO NOTHING",
                [kind, _now()],
            )
            con.unregister("new_properties")

    # -- incremental audits: the reference corpus a new batch is compared with ----------------

    REFERENCE_STAGE = "reference"
    """The run stage whose detail (``{"run": …}``) names the reference run a run was audited against."""

    def reference_corpus(self, run_id: str, reference_run: str) -> pd.DataFrame:
        """The readable items that the batch of run ``run_id`` is compared with when its reference
        is ``reference_run``: that run's items and, when that run was itself audited against a
        reference, that run's corpus in turn (followed through each run's ``reference`` stage), so
        a chain of batch-only runs adds up to everything the dataset has seen.

        Where runs share an item id, the newest run's version wins (an item that became unreadable
        stays out), and ids that run ``run_id`` has itself are left out: the batch holds their
        current version. Columns ``item_id, content_hash, label, ordinal, run_id`` (the run the item
        comes from), oldest run first, then in ingest order — so the first item of a content is
        the one seen first.
        """
        sql = """
            WITH RECURSIVE chain(run_id, depth) AS (
                SELECT $reference::VARCHAR, 0
                UNION ALL
                SELECT json_extract_string(s.detail, '$.run'), c.depth + 1
                FROM chain c JOIN run_stages s ON s.run_id = c.run_id AND s.stage = $stage
                WHERE c.depth < 100000 AND json_extract_string(s.detail, '$.run') IS NOT NULL
            ),
            versions AS (
                SELECT i.item_id, i.content_hash, i.label, i.ordinal, i.error, i.run_id, c.depth,
                       row_number() OVER (PARTITION BY i.item_id ORDER BY c.depth) AS version
                FROM items i JOIN chain c USING (run_id)
            )
            SELECT v.item_id, v.content_hash, v.label, v.ordinal, v.run_id FROM versions v
            WHERE v.version = 1 AND v.error IS NULL
              AND NOT EXISTS (SELECT 1 FROM items b WHERE b.run_id = $run AND b.item_id = v.item_id)
            ORDER BY v.depth DESC, v.ordinal
        """
        with self.connect(read_only=True) as con:
            frame = con.sql(sql, params={"reference": reference_run, "run": run_id, "stage": self.REFERENCE_STAGE}).df()
        return frame.astype(object).where(frame.notna(), None).astype({"ordinal": "int64"})

    def item_texts(self, rows: pd.DataFrame) -> list[str | None]:
        """The stored text of each ``(run_id, item_id)`` row of ``rows``, in order (``None`` where
        the item has none: an image or a table row)."""
        if rows.empty:
            return []
        wanted = pa.table({"run_id": pa.array(rows["run_id"].astype(str).tolist(), pa.string()),
                           "item_id": pa.array(rows["item_id"].astype(str).tolist(), pa.string()),
                           "position": pa.array(np.arange(len(rows)), pa.int64())})
        with self.connect(read_only=True) as con:
            con.register("wanted", wanted)
            found = con.sql("SELECT w.position, i.text FROM wanted w JOIN items i USING (run_id, item_id)").fetchall()
        texts: list[str | None] = [None] * len(rows)
        for position, text in found:
            texts[position] = text
        return texts

    # -- findings and pairs ------------------------------------------------------------------

    def save_results(
        self, run_id: str, findings: pd.DataFrame, pairs: pd.DataFrame, *, check_results: pd.DataFrame | None = None,
        stage: str = "detect",
    ) -> None:
        """Replace a run's findings, pairs and check results and mark the stage, in one transaction."""
        findings = findings.assign(run_id=run_id)[list(FINDINGS_COLUMNS)]
        pairs = pairs.assign(run_id=run_id)[list(PAIRS_COLUMNS)]
        with self.transaction() as con:
            con.execute("DELETE FROM findings WHERE run_id = ?", [run_id])
            con.execute("DELETE FROM pairs WHERE run_id = ?", [run_id])
            con.execute("DELETE FROM check_results WHERE run_id = ?", [run_id])
            if check_results is not None and len(check_results):
                results = check_results.assign(run_id=run_id)[list(CHECK_RESULT_COLUMNS)]
                con.register("new_check_results", results)
                con.execute(f"INSERT INTO check_results ({', '.join(CHECK_RESULT_COLUMNS)}) SELECT * FROM new_check_results")
                con.unregister("new_check_results")
            con.register("new_findings", findings)
            con.execute(f"INSERT INTO findings ({', '.join(FINDINGS_COLUMNS)}) SELECT * FROM new_findings")
            con.unregister("new_findings")
            con.register("new_pairs", pairs)
            con.execute(f"INSERT INTO pairs ({', '.join(PAIRS_COLUMNS)}) SELECT * FROM new_pairs")
            con.unregister("new_pairs")
            self._mark_stage(con, run_id, stage, {"findings": len(findings), "pairs": len(pairs)})

    def findings(self, run_id: str, *, issue_type: str | None = None, flagged_only: bool = False) -> pd.DataFrame:
        """A run's findings, most likely issues first within each issue type."""
        sql = f"SELECT {', '.join(FINDINGS_COLUMNS)} FROM findings WHERE run_id = ?"
        params: list[Any] = [run_id]
        if issue_type:
            sql += " AND issue_type = ?"
            params.append(issue_type)
        if flagged_only:
            sql += " AND flagged"
        return self._query(sql + " ORDER BY issue_type, score DESC, item_id", params)

    def pairs(self, run_id: str) -> pd.DataFrame:
        """A run's duplicate pairs, most similar first."""
        return self._query(
            f"SELECT {', '.join(PAIRS_COLUMNS)} FROM pairs WHERE run_id = ? ORDER BY similarity DESC, item_a, item_b", [run_id]
        )

    def check_results(self, run_id: str, *, failed_only: bool = False) -> pd.DataFrame:
        """A run's rule-check results (one row per expectation), failures first."""
        sql = f"SELECT {', '.join(CHECK_RESULT_COLUMNS)} FROM check_results WHERE run_id = ?"
        return self._query(sql + (" AND NOT success" if failed_only else "") + " ORDER BY success, check_name", [run_id])

    def issue_counts(self, run_id: str) -> pd.DataFrame:
        """Per issue type: items scored and items flagged."""
        return self._query("SELECT issue_type, scored, flagged FROM issue_counts WHERE run_id = ? ORDER BY issue_type", [run_id])

    # -- decisions and the cleaned dataset -----------------------------------------------------

    def record_decision(
        self, run_id: str, item_id: str, issue_type: str, decision: str, *, new_label: str | None = None,
        note: str | None = None, reviewer: str | None = None,
    ) -> None:
        """Store a reviewer's decision on one finding, keyed by dataset and content so it survives re-runs."""
        if decision not in DECISIONS:
            raise ConfigError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}.")
        run = self.get_run(run_id)
        with self.transaction() as con:
            found = con.execute("SELECT content_hash FROM items WHERE run_id = ? AND item_id = ?", [run_id, item_id]).fetchall()
            if not found:
                raise WinnowError(f"run {run_id} has no item {item_id!r}.")
            con.execute(
                "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run["dataset"], item_id, found[0][0], issue_type, decision, new_label, note, reviewer, _now()],
            )

    def clean_items(self, run_id: str) -> pd.DataFrame:
        """Items that remain after removing flagged findings and confirmed decisions.

        A flagged finding that a reviewer dismissed or chose to keep does not remove its item; an
        item a reviewer confirmed is removed even when it was not flagged. ``relabel`` decisions
        keep the item with its new label. Decisions apply as in the dashboard: same dataset, item
        and issue type, and the content the reviewer saw (a changed file is judged afresh).
        """
        run = self.get_run(run_id)
        sql = f"""
            WITH {self._LATEST_DECISIONS},
            run_items AS (SELECT * FROM items WHERE run_id = $run),
            applied AS (SELECT d.* FROM latest d JOIN run_items i ON {self._DECISION_APPLIES}),
            removed AS (
                SELECT f.item_id FROM findings f
                LEFT JOIN applied d ON d.item_id = f.item_id AND d.issue_type = f.issue_type
                WHERE f.run_id = $run AND (
                    (f.flagged AND coalesce(d.decision, '') NOT IN ('dismissed', 'keep', 'relabel'))
                    OR d.decision = 'confirmed')
            ),
            relabels AS (
                SELECT item_id, arg_max(new_label, "at") AS new_label FROM applied WHERE decision = 'relabel' GROUP BY item_id
            )
            SELECT {', '.join('i.' + c for c in ITEM_COLUMNS if c != 'label')},
                   coalesce(r.new_label, i.label) AS label
            FROM run_items i LEFT JOIN relabels r USING (item_id)
            WHERE i.item_id NOT IN (SELECT item_id FROM removed)
            ORDER BY i.ordinal
        """
        with self.connect(read_only=True) as con:
            return con.sql(sql, params={"run": run_id, "dataset": run["dataset"]}).df()

    # -- dashboard queries: paged queues, decisions that apply to a run, one item's history -----
    #
    # A decision applies to an item of a run when dataset, item_id and issue_type match and the
    # item's content is the one the reviewer saw (same content_hash, or no hash on either side), so
    # a re-run of the same dataset shows earlier decisions and a changed file is reviewed again.

    _LATEST_DECISIONS = """
        latest AS (
            SELECT item_id, content_hash, issue_type, decision, new_label, note, reviewer, "at"
            FROM decisions WHERE dataset = $dataset
            QUALIFY row_number() OVER (PARTITION BY item_id, content_hash, issue_type ORDER BY "at" DESC) = 1
        )"""
    _DECISION_APPLIES = "d.item_id = i.item_id AND d.content_hash IS NOT DISTINCT FROM i.content_hash"

    def findings_page(
        self, run_id: str, issue_type: str, *, flagged_only: bool = False, label: str | None = None,
        score_min: float | None = None, score_max: float | None = None, undecided_only: bool = False,
        limit: int = 50, offset: int = 0,
    ) -> tuple[pd.DataFrame, int]:
        """One page of a run's findings of one issue type, highest score first, and how many match.

        Each row is a finding with its item's ``label, uri, text, content_hash, metadata, error``
        and the decision that applies to it (``decision, new_label, note, reviewer, decided_at``;
        null when undecided). Filters: flagged only, the item's label, a score range (inclusive),
        undecided only. The page is cut in SQL (LIMIT/OFFSET), so a 100k-finding queue stays fast.
        """
        dataset = self.get_run(run_id)["dataset"]
        where = ["f.run_id = $run", "f.issue_type = $issue_type"]
        params: dict[str, Any] = {"run": run_id, "issue_type": issue_type, "dataset": dataset}
        if flagged_only:
            where.append("f.flagged")
        if label is not None:
            where.append("i.label = $label")
            params["label"] = label
        if score_min is not None:
            where.append("f.score >= $score_min")
            params["score_min"] = float(score_min)
        if score_max is not None:
            where.append("f.score <= $score_max")
            params["score_max"] = float(score_max)
        if undecided_only:
            where.append("d.decision IS NULL")
        body = f"""
            FROM findings f
            LEFT JOIN items i ON i.run_id = f.run_id AND i.item_id = f.item_id
            LEFT JOIN latest d ON d.issue_type = f.issue_type AND {self._DECISION_APPLIES}
            WHERE {' AND '.join(where)}"""
        columns = ", ".join(f"f.{c}" for c in FINDINGS_COLUMNS)
        with self.connect(read_only=True) as con:
            total = con.sql(f"WITH {self._LATEST_DECISIONS} SELECT count(*) AS n {body}", params=params).df()
            page = con.sql(
                f"""WITH {self._LATEST_DECISIONS}
                SELECT {columns}, i.label, i.uri, i.text, i.content_hash, i.metadata, i.error,
                       d.decision, d.new_label, d.note, d.reviewer, d."at" AS decided_at
                {body} ORDER BY f.score DESC, f.item_id LIMIT $limit OFFSET $offset""",
                params={**params, "limit": max(int(limit), 0), "offset": max(int(offset), 0)},
            ).df()
        return page, int(total["n"].iloc[0])

    def queue_facets(self, run_id: str, issue_type: str) -> dict[str, Any]:
        """What a queue can be filtered by: the run's item ``labels`` (sorted) and the issue type's
        ``score_min`` and ``score_max`` (None when the run has no such findings)."""
        with self.connect(read_only=True) as con:
            labels = con.execute(
                "SELECT DISTINCT label FROM items WHERE run_id = ? AND label IS NOT NULL ORDER BY label", [run_id]
            ).df()
            scores = con.execute(
                "SELECT min(score) AS lo, max(score) AS hi FROM findings WHERE run_id = ? AND issue_type = ?", [run_id, issue_type]
            ).df()
        lo, hi = scores["lo"].iloc[0], scores["hi"].iloc[0]
        return {
            "labels": [str(v) for v in labels["label"]],
            "score_min": None if pd.isna(lo) else float(lo),
            "score_max": None if pd.isna(hi) else float(hi),
        }

    def get_items(self, run_id: str, item_ids: Sequence[str]) -> pd.DataFrame:
        """The items of a run with these ids (in ingest order; unknown ids are left out)."""
        if not item_ids:
            return self._query(f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE false")
        with self.connect(read_only=True) as con:
            return con.sql(
                f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE run_id = $run AND list_contains($ids, item_id) ORDER BY ordinal",
                params={"run": run_id, "ids": [str(i) for i in item_ids]},
            ).df()

    def pairs_for(self, run_id: str, item_ids: Sequence[str]) -> pd.DataFrame:
        """A run's duplicate pairs that involve any of these items, most similar first."""
        with self.connect(read_only=True) as con:
            return con.sql(
                f"SELECT {', '.join(PAIRS_COLUMNS)} FROM pairs WHERE run_id = $run "
                "AND (list_contains($ids, item_a) OR list_contains($ids, item_b)) ORDER BY similarity DESC, item_a, item_b",
                params={"run": run_id, "ids": [str(i) for i in item_ids]},
            ).df()

    def issue_counts_by_run(self, dataset: str | None = None) -> pd.DataFrame:
        """Scored and flagged counts per run and issue type (``run_id, dataset, started, issue_type,
        scored, flagged``), oldest run first: the trend of a dataset across its runs."""
        sql = "SELECT r.run_id, r.dataset, r.started, c.issue_type, c.scored, c.flagged FROM runs r JOIN issue_counts c USING (run_id)"
        params: list[Any] = []
        if dataset:
            sql += " WHERE r.dataset = ?"
            params.append(dataset)
        return self._query(sql + " ORDER BY r.started, r.run_id, c.issue_type", params)

    def record_decisions(
        self, run_id: str, item_ids: Sequence[str], issue_type: str, decision: str, *, new_label: str | None = None,
        note: str | None = None, reviewer: str | None = None,
    ) -> int:
        """Store one decision on several findings of a run in one transaction; return how many.

        Keyed like :meth:`record_decision` (dataset, item, content hash, issue type). ``relabel``
        needs ``new_label``; an id the run does not have raises and nothing is stored.
        """
        if decision not in DECISIONS:
            raise ConfigError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}.")
        if decision == "relabel" and not new_label:
            raise ConfigError("a relabel decision needs the new label.")
        ids = list(dict.fromkeys(str(i) for i in item_ids))
        if not ids:
            return 0
        dataset = self.get_run(run_id)["dataset"]
        with self.transaction() as con:
            found = con.sql(
                "SELECT item_id, content_hash FROM items WHERE run_id = $run AND list_contains($ids, item_id)",
                params={"run": run_id, "ids": ids},
            ).df()
            missing = sorted(set(ids) - set(found["item_id"]))
            if missing:
                raise WinnowError(f"run {run_id} has no item(s) {', '.join(map(repr, missing[:5]))}; nothing was recorded.")
            at = _now()
            con.executemany(
                "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[dataset, row.item_id, row.content_hash, issue_type, decision, new_label, note, reviewer, at] for row in found.itertuples()],
            )
        return len(ids)

    def decisions_for(self, run_id: str) -> pd.DataFrame:
        """The decisions that apply to a run's items (the newest per item and issue type), including
        those recorded on earlier runs of the same dataset: ``item_id, issue_type, decision,
        new_label, note, reviewer, at, content_hash``."""
        dataset = self.get_run(run_id)["dataset"]
        with self.connect(read_only=True) as con:
            return con.sql(
                f"""WITH {self._LATEST_DECISIONS}
                SELECT d.item_id, d.issue_type, d.decision, d.new_label, d.note, d.reviewer, d."at", d.content_hash
                FROM latest d JOIN items i ON i.run_id = $run AND {self._DECISION_APPLIES}
                ORDER BY d."at" DESC, d.item_id, d.issue_type""",
                params={"run": run_id, "dataset": dataset},
            ).df()

    def item_history(self, dataset: str, item_id: str) -> dict[str, pd.DataFrame]:
        """Everything known about one item of a dataset across its runs, newest run first:
        ``items`` (the item as each run saw it), ``findings`` (every issue type's score, flag and
        reason per run, with the run's ``started``) and ``decisions`` (every decision, newest first)."""
        params = {"dataset": dataset, "item": item_id}
        with self.connect(read_only=True) as con:
            items = con.sql(
                f"SELECT r.started, {', '.join('i.' + c for c in ITEM_COLUMNS)}, i.run_id FROM items i JOIN runs r USING (run_id) "
                "WHERE r.dataset = $dataset AND i.item_id = $item ORDER BY r.started DESC",
                params=params,
            ).df()
            findings = con.sql(
                f"SELECT r.started, {', '.join('f.' + c for c in FINDINGS_COLUMNS)} FROM findings f JOIN runs r USING (run_id) "
                "WHERE r.dataset = $dataset AND f.item_id = $item ORDER BY r.started DESC, f.flagged DESC, f.score DESC",
                params=params,
            ).df()
            decisions = con.sql(
                'SELECT * FROM decisions WHERE dataset = $dataset AND item_id = $item ORDER BY "at" DESC', params=params
            ).df()
        return {"items": items, "findings": findings, "decisions": decisions}

    # -- dashboard review aids: score distributions (the unsure band), duplicate groups, keepers --

    def score_distribution(self, run_id: str, issue_type: str) -> dict[str, Any]:
        """Every finding's ``scores``, ``flagged`` and ``decided`` (whether a decision applies; arrays)
        of one issue type of a run, and the ``threshold`` the detector recorded in
        ``detail.threshold`` (``None`` where it records none)."""
        params = {"run": run_id, "issue_type": issue_type}
        with self.connect(read_only=True) as con:
            dataset = con.execute("SELECT dataset FROM runs WHERE run_id = ?", [run_id]).fetchall()
            if not dataset:
                raise RunNotFound(f"no run {run_id!r} in {self.path}; `winnow runs` lists the runs.")
            frame = con.sql(
                f"""WITH {self._LATEST_DECISIONS}
                SELECT f.score, f.flagged, d.decision IS NOT NULL AS decided FROM findings f
                LEFT JOIN items i ON i.run_id = f.run_id AND i.item_id = f.item_id
                LEFT JOIN latest d ON d.issue_type = f.issue_type AND {self._DECISION_APPLIES}
                WHERE f.run_id = $run AND f.issue_type = $issue_type""",
                params={**params, "dataset": dataset[0][0]},
            ).df()
            recorded = con.sql(
                "SELECT TRY_CAST(json_extract_string(detail, '$.threshold') AS DOUBLE) AS t FROM findings "
                "WHERE run_id = $run AND issue_type = $issue_type LIMIT 1", params=params,
            ).df()
        threshold = recorded["t"].iloc[0] if len(recorded) else None
        return {"scores": frame["score"].to_numpy(np.float64), "flagged": frame["flagged"].to_numpy(bool),
                "decided": frame["decided"].to_numpy(bool), "threshold": None if threshold is None or pd.isna(threshold) else float(threshold)}

    def duplicate_groups(
        self, run_id: str, issue_type: str, *, undecided_only: bool = False, limit: int = 10, offset: int = 0,
    ) -> tuple[pd.DataFrame, int]:
        """One page of a run's duplicate groups of ``issue_type`` (most similar copy first) with
        every member, and how many groups match.

        Rows are members: the finding's columns, the item's ``label, uri, text, content_hash,
        metadata, error, ordinal``, the decision that applies (``decision, new_label, reviewer,
        decided_at``), ordered by group, then the detector's keeper (the unflagged member), then
        ingest order. ``undecided_only`` keeps groups with a flagged member nobody has decided on.
        """
        dataset = self.get_run(run_id)["dataset"]
        params: dict[str, Any] = {"run": run_id, "issue_type": issue_type, "dataset": dataset}
        members = f"""
            SELECT f.*, i.label, i.uri, i.text, i.content_hash, i.metadata, i.error, i.ordinal,
                   d.decision, d.new_label, d.reviewer, d."at" AS decided_at
            FROM findings f
            LEFT JOIN items i ON i.run_id = f.run_id AND i.item_id = f.item_id
            LEFT JOIN latest d ON d.issue_type = f.issue_type AND {self._DECISION_APPLIES}
            WHERE f.run_id = $run AND f.issue_type = $issue_type AND f.group_id IS NOT NULL"""
        groups = f"""
            grouped AS (
                SELECT group_id, max(score) AS top, count(*) FILTER (WHERE flagged AND decision IS NULL) AS undecided
                FROM ({members}) GROUP BY group_id {'HAVING undecided > 0' if undecided_only else ''}
            )"""
        with self.connect(read_only=True) as con:
            total = con.sql(f"WITH {self._LATEST_DECISIONS}, {groups} SELECT count(*) AS n FROM grouped", params=params).df()
            page = con.sql(
                f"""WITH {self._LATEST_DECISIONS}, {groups},
                page AS (SELECT group_id, top FROM grouped ORDER BY top DESC, group_id LIMIT $limit OFFSET $offset)
                SELECT m.* EXCLUDE (run_id) FROM ({members}) m JOIN page p USING (group_id)
                ORDER BY p.top DESC, m.group_id, m.flagged, m.ordinal, m.item_id""",
                params={**params, "limit": max(int(limit), 0), "offset": max(int(offset), 0)},
            ).df()
        return page, int(total["n"].iloc[0])

    def set_keeper(self, run_id: str, issue_type: str, group_id: str, item_id: str, *, reviewer: str | None = None) -> list[str]:
        """Make ``item_id`` the member of duplicate group ``group_id`` that stays, in one transaction.

        Records ``keep`` on the new keeper and ``confirmed`` (a real duplicate: it leaves the
        cleaned set) on every other member that was staying as a keeper: the detector's keeper
        (the unflagged member) unless it is already confirmed, and any member kept by an earlier
        decision. Flagged copies keep their own decisions. Returns the ids confirmed. Decisions
        are keyed like :meth:`record_decisions`, so ``clean_items`` and the export honour them.
        """
        dataset = self.get_run(run_id)["dataset"]
        params = {"run": run_id, "issue_type": issue_type, "dataset": dataset, "group": group_id}
        with self.transaction() as con:
            members = con.sql(
                f"""WITH {self._LATEST_DECISIONS}
                SELECT f.item_id, f.flagged, i.content_hash, d.decision FROM findings f
                JOIN items i ON i.run_id = f.run_id AND i.item_id = f.item_id
                LEFT JOIN latest d ON d.issue_type = f.issue_type AND {self._DECISION_APPLIES}
                WHERE f.run_id = $run AND f.issue_type = $issue_type AND f.group_id = $group""",
                params=params,
            ).df()
            if item_id not in set(members["item_id"]):
                raise WinnowError(f"{item_id!r} is not a member of {issue_type} group {group_id!r} in run {run_id}; nothing was recorded.")
            staying = members[(members["item_id"] != item_id) & (
                ((~members["flagged"]) & (members["decision"].fillna("") != "confirmed")) | (members["decision"] == "keep"))]
            at = _now()
            note = f"keeper of {group_id} changed to {item_id}"
            new = members[members["item_id"] == item_id].iloc[0]
            rows = [[dataset, item_id, new["content_hash"], issue_type, "keep", None, note, reviewer, at]]
            rows += [[dataset, r.item_id, r.content_hash, issue_type, "confirmed", None, note, reviewer, at] for r in staying.itertuples()]
            con.executemany("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return list(staying["item_id"])

    def runs_with_versions(self) -> pd.DataFrame:
        """The runs as :meth:`list_runs` gives them (newest first), with each run's ``kind``
        (``filter`` for ``winnow filter`` runs, else ``audit``) and ``version``: a string that
        changes whenever what a review page shows of the run can change — its status, finish time
        and newest finished stage (items and findings are saved with a stage), and the number and
        newest time of its dataset's decisions. One cheap read per page view; the dashboard keys
        its caches by the version, so a new session reuses what was read and a decision reads afresh."""
        part = "coalesce(CAST({} AS VARCHAR), '-')"
        version = " || '|' || ".join(part.format(c) for c in ("r.status", "r.finished", "s.stage", "j.n", "j.newest"))
        return self._query(
            f"""WITH s AS (SELECT run_id, max(finished) AS stage FROM run_stages GROUP BY run_id),
                     j AS (SELECT dataset, count(*) AS n, max("at") AS newest FROM decisions GROUP BY dataset)
                SELECT r.run_id, r.dataset, r.modality, r.status, r.started, r.finished, r.source, r.counts, r.error,
                       CASE WHEN json_extract_string(r.config, '$.command') = 'filter' THEN 'filter' ELSE 'audit' END AS kind,
                       {version} AS version
                FROM runs r LEFT JOIN s USING (run_id) LEFT JOIN j USING (dataset)
                ORDER BY r.started DESC"""
        )

    def removals_page(self, run_id: str, *, stage: str | None = None, limit: int = 50, offset: int = 0) -> tuple[pd.DataFrame, int]:
        """One page of a filter run's removals (optionally of one stage) in shard and line order,
        and how many match: ``doc_id, shard, line, stage, reason, related_doc_id, detail``."""
        where, params = "run_id = $run", {"run": run_id}
        if stage is not None:
            where += " AND stage = $stage"
            params["stage"] = stage
        with self.connect(read_only=True) as con:
            total = con.sql(f"SELECT count(*) AS n FROM removals WHERE {where}", params=params).df()
            page = con.sql(
                f"SELECT doc_id, shard, line, stage, reason, related_doc_id, detail FROM removals WHERE {where} "
                "ORDER BY shard, line LIMIT $limit OFFSET $offset",
                params={**params, "limit": max(int(limit), 0), "offset": max(int(offset), 0)},
            ).df()
        return page, int(total["n"].iloc[0])

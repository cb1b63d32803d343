"""Named, append-only schema migrations, recorded in ``schema_migrations`` as they are applied.

Never edit a migration that has shipped: add a new one at the end of :data:`MIGRATIONS`.
"""

from __future__ import annotations

from typing import Callable

import duckdb

Migration = tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]


def _initial_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY, dataset VARCHAR NOT NULL, source VARCHAR NOT NULL,
            modality VARCHAR, config JSON, started TIMESTAMP NOT NULL, finished TIMESTAMP,
            status VARCHAR NOT NULL, counts JSON, error VARCHAR
        );
        CREATE TABLE run_stages (
            run_id VARCHAR NOT NULL, stage VARCHAR NOT NULL, finished TIMESTAMP NOT NULL, detail JSON,
            PRIMARY KEY (run_id, stage)
        );
        CREATE TABLE items (
            run_id VARCHAR NOT NULL, item_id VARCHAR NOT NULL, ordinal BIGINT NOT NULL, modality VARCHAR,
            uri VARCHAR, text VARCHAR, label VARCHAR, content_hash VARCHAR, metadata JSON, error VARCHAR,
            PRIMARY KEY (run_id, item_id)
        );
        CREATE TABLE embeddings (
            content_hash VARCHAR NOT NULL, model_id VARCHAR NOT NULL, vector FLOAT[] NOT NULL,
            created TIMESTAMP NOT NULL, PRIMARY KEY (content_hash, model_id)
        );
        CREATE TABLE findings (
            run_id VARCHAR NOT NULL, item_id VARCHAR NOT NULL, issue_type VARCHAR NOT NULL,
            score DOUBLE NOT NULL, flagged BOOLEAN NOT NULL, related_item_id VARCHAR, group_id VARCHAR,
            suggested_label VARCHAR, reason VARCHAR, detail JSON,
            PRIMARY KEY (run_id, item_id, issue_type)
        );
        CREATE TABLE pairs (
            run_id VARCHAR NOT NULL, item_a VARCHAR NOT NULL, item_b VARCHAR NOT NULL,
            similarity DOUBLE NOT NULL, method VARCHAR NOT NULL, PRIMARY KEY (run_id, item_a, item_b, method)
        );
        CREATE TABLE decisions (
            dataset VARCHAR NOT NULL, item_id VARCHAR NOT NULL, content_hash VARCHAR,
            issue_type VARCHAR NOT NULL, decision VARCHAR NOT NULL
                CHECK (decision IN ('confirmed', 'dismissed', 'relabel', 'keep')),
            new_label VARCHAR, note VARCHAR, reviewer VARCHAR, "at" TIMESTAMP NOT NULL
        );
        CREATE TABLE check_results (
            run_id VARCHAR NOT NULL, check_name VARCHAR NOT NULL, item_id VARCHAR, success BOOLEAN NOT NULL,
            observed VARCHAR, detail JSON
        );
        CREATE VIEW issue_counts AS
            SELECT run_id, issue_type, count(*) AS scored, count(*) FILTER (WHERE flagged) AS flagged
            FROM findings GROUP BY run_id, issue_type;
        """
    )


def _properties_cache(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE properties (
            content_hash VARCHAR NOT NULL, kind VARCHAR NOT NULL, properties JSON NOT NULL,
            created TIMESTAMP NOT NULL, PRIMARY KEY (content_hash, kind)
        );
        """
    )


def _filter_removals(con: duckdb.DuckDBPyConnection) -> None:
    """``winnow filter``'s removal manifest: one row per removed document of a filter run (the run
    itself is a row of ``runs`` with modality ``text``)."""
    con.execute(
        """
        CREATE TABLE removals (
            run_id VARCHAR NOT NULL, doc_id VARCHAR NOT NULL, shard VARCHAR NOT NULL, line BIGINT NOT NULL,
            stage VARCHAR NOT NULL, reason VARCHAR, related_doc_id VARCHAR, detail JSON,
            PRIMARY KEY (run_id, shard, line)
        );
        """
    )


MIGRATIONS: list[Migration] = [
    ("0001_initial_schema", _initial_schema),
    ("0002_properties_cache", _properties_cache),
    ("0003_filter_removals", _filter_removals),
]


def applied(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Names of the migrations already applied to this database."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)")
    return [row[0] for row in con.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()]


def pending(con: duckdb.DuckDBPyConnection) -> list[Migration]:
    """Migrations not yet applied, in order."""
    done = set(applied(con))
    return [m for m in MIGRATIONS if m[0] not in done]


def apply(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the names applied."""
    names = []
    for name, migrate in pending(con):
        version = [m[0] for m in MIGRATIONS].index(name) + 1
        con.execute("BEGIN")
        try:
            migrate(con)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        names.append(name)
    return names


def schema_version() -> int:
    """The version this code expects."""
    return len(MIGRATIONS)

"""The trainer's schema as an append-only list of migrations, and a synchronous runner.

The same rules and ledger as ``storage/migrations.py`` (which the trainer must not
import): never edit or reorder a migration that has shipped; add one with the next
version. Each applied migration is recorded (version, name, sha256 of its SQL) in
``schema_migrations``, and a database whose record disagrees with this list (an edited
migration, or one written by newer code) is refused. Each migration runs in its own
``BEGIN IMMEDIATE`` transaction with its record, so a crash leaves the previous version.

Databases from before this runner kept their version in ``PRAGMA user_version`` (1 = the
tables of migration 1); they are adopted by recording migration 1 as applied, then migrate
on like any other (``user_version`` is read only while the ledger is empty, never written).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass


class MigrationError(RuntimeError):
    """The database cannot be brought to this code's schema."""


@dataclass(frozen=True)
class Migration:
    """One step of the schema's history."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    def statements(self) -> Iterator[str]:
        """The SQL split into complete statements (trailing comments allowed)."""
        pending: list[str] = []
        for line in self.sql.splitlines(keepends=True):
            pending.append(line)
            if sqlite3.complete_statement("".join(pending)):
                yield "".join(pending).strip()
                pending.clear()
        rest = "".join(pending).strip()
        if any(line.strip() and not line.strip().startswith("--") for line in rest.splitlines()):
            raise MigrationError(f"migration {self.version} ends with an incomplete statement")


_CORE = """
CREATE TABLE files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    path TEXT NOT NULL
);
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    model TEXT NOT NULL,
    training_file TEXT NOT NULL,
    validation_file TEXT,
    suffix TEXT,
    seed INTEGER NOT NULL,
    metadata TEXT,
    hyperparameters TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    model_name TEXT NOT NULL,
    fine_tuned_model TEXT,
    finished_at INTEGER,
    trained_tokens INTEGER,
    result_files TEXT NOT NULL DEFAULT '[]',
    estimated_finish INTEGER,
    output_dir TEXT NOT NULL
);
CREATE INDEX jobs_status ON jobs(status);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT
);
CREATE INDEX events_job ON events(job_id, seq);
CREATE TABLE checkpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    model_name TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    metrics TEXT NOT NULL
);
CREATE INDEX checkpoints_job ON checkpoints(job_id, seq);
CREATE TABLE models (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    base_model TEXT NOT NULL,
    job_id TEXT NOT NULL,
    adapter_dir TEXT NOT NULL
);
"""

# When each base model was first served, so its ``created`` survives restarts.
_BASE_MODELS = """
CREATE TABLE base_models (
    id TEXT PRIMARY KEY,
    created INTEGER NOT NULL
) WITHOUT ROWID;
"""

# An uploaded file's OpenAI ``status`` ("processed" or "error") and why it is "error".
_FILE_STATUS = """
ALTER TABLE files ADD COLUMN status TEXT NOT NULL DEFAULT 'processed';
ALTER TABLE files ADD COLUMN status_details TEXT;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "files, jobs, events, checkpoints, fine-tuned models", _CORE),
    Migration(2, "first-seen times of base models", _BASE_MODELS),
    Migration(3, "status of uploaded files", _FILE_STATUS),
)

LATEST_VERSION = MIGRATIONS[-1].version

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""

_OLD_SCHEME_VERSION = 1
"""The only ``PRAGMA user_version`` the old scheme ever wrote: migration 1's tables."""


def _recorded(conn: sqlite3.Connection) -> dict[int, tuple[str, str]]:
    rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
    return {int(r[0]): (str(r[1]), str(r[2])) for r in rows}


def _verify(recorded: dict[int, tuple[str, str]], migrations: tuple[Migration, ...]) -> None:
    known = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(recorded.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the trainer database has migration {version} ({name!r}), which this code does "
                "not know: it was written by a newer tunecord"
            )
        if checksum != migration.checksum:
            raise MigrationError(
                f"migration {version} ({migration.name!r}) was changed after it was applied; "
                "migrations are append-only: add a new one instead"
            )


def _adopt_old_scheme(conn: sqlite3.Connection, now: Callable[[], str], first: Migration) -> None:
    """Record migration 1 for a database the ``user_version`` scheme created (inside the lock)."""
    if _recorded(conn):
        return
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        return
    if version != _OLD_SCHEME_VERSION:
        raise MigrationError(f"the trainer database has user_version {version}, which this code does not know")
    conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
        (first.version, first.name, first.checksum, now()),
    )


def apply(
    conn: sqlite3.Connection,
    now: Callable[[], str],
    *,
    target: int | None = None,
    migrations: tuple[Migration, ...] = MIGRATIONS,
) -> list[int]:
    """Apply every pending migration up to ``target`` (default: all); returns their versions.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no transaction open.
    """
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must be 1, 2, 3, ... in order, not {versions}")
    conn.execute(_CREATE_LEDGER)
    conn.execute("BEGIN IMMEDIATE")
    try:
        _adopt_old_scheme(conn, now, migrations[0])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    _verify(_recorded(conn), migrations)
    applied: list[int] = []
    for migration in migrations:
        if target is not None and migration.version > target:
            break
        conn.execute("BEGIN IMMEDIATE")
        try:
            if migration.version in _recorded(conn):  # another process may have just applied it
                conn.execute("ROLLBACK")
                continue
            for statement in migration.statements():
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                (migration.version, migration.name, migration.checksum, now()),
            )
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise MigrationError(f"migration {migration.version} ({migration.name!r}) failed: {exc}") from exc
            raise
        applied.append(migration.version)
    return applied

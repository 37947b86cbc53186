"""SQLite state: files metadata, jobs, events, checkpoints and fine-tuned models.

One ``sqlite3`` connection shared by the HTTP handlers and the worker threads, guarded
by a lock (every method is one short transaction). File contents and adapters live on
disk under the data directory; the database holds their paths. The schema is
:mod:`trainer.migrations`, applied when the store opens. All SQL is
parameterised; the only interpolated fragments are column names from this module.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from trainer import migrations
from trainer.datadir import private_dirs
from trainer.ids import event_id, now

T = TypeVar("T")

ACTIVE_STATUSES = ("validating_files", "queued", "running")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")

@dataclass(frozen=True)
class FileRecord:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    path: Path
    status: str = "processed"
    """OpenAI's file status: ``processed``, or ``error`` for a file that cannot be used
    (a ``fine-tune`` upload that is empty or holds no training example)."""
    status_details: str | None = None
    """Why the status is ``error``."""


@dataclass(frozen=True)
class JobRecord:
    id: str
    created_at: int
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    metadata: dict[str, str] | None
    hyperparameters: dict[str, Any]
    """What the caller asked for (``"auto"`` allowed) until validation resolves it."""
    status: str
    error: dict[str, Any] | None
    model_name: str
    """The ``ft:`` name this job will publish; ``fine_tuned_model`` is set on success."""
    fine_tuned_model: str | None
    finished_at: int | None
    trained_tokens: int | None
    result_files: list[str]
    estimated_finish: int | None
    output_dir: Path


@dataclass(frozen=True)
class EventRecord:
    id: str
    job_id: str
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any] | None


@dataclass(frozen=True)
class CheckpointRecord:
    id: str
    job_id: str
    created_at: int
    step: int
    epoch: int
    model_name: str
    path: Path
    metrics: dict[str, Any]


@dataclass(frozen=True)
class ModelRecord:
    id: str
    created: int
    base_model: str
    job_id: str
    adapter_dir: Path


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _file(row: sqlite3.Row) -> FileRecord:
    return FileRecord(row["id"], row["filename"], row["purpose"], row["bytes"], row["created_at"], Path(row["path"]),
                      row["status"], row["status_details"])  # fmt: skip


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        created_at=row["created_at"],
        model=row["model"],
        training_file=row["training_file"],
        validation_file=row["validation_file"],
        suffix=row["suffix"],
        seed=row["seed"],
        metadata=_loads(row["metadata"]),
        hyperparameters=json.loads(row["hyperparameters"]),
        status=row["status"],
        error=_loads(row["error"]),
        model_name=row["model_name"],
        fine_tuned_model=row["fine_tuned_model"],
        finished_at=row["finished_at"],
        trained_tokens=row["trained_tokens"],
        result_files=json.loads(row["result_files"]),
        estimated_finish=row["estimated_finish"],
        output_dir=Path(row["output_dir"]),
    )


def _event(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        row["id"], row["job_id"], row["created_at"], row["level"], row["message"], row["type"], _loads(row["data"])
    )


def _checkpoint(row: sqlite3.Row) -> CheckpointRecord:
    return CheckpointRecord(
        row["id"], row["job_id"], row["created_at"], row["step"], row["epoch"], row["model_name"],
        Path(row["path"]), json.loads(row["metrics"]),
    )  # fmt: skip


def _model(row: sqlite3.Row) -> ModelRecord:
    return ModelRecord(row["id"], row["created"], row["base_model"], row["job_id"], Path(row["adapter_dir"]))


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a cursor-paginated list."""

    items: list[T]
    has_more: bool


class Store:
    """Typed access to the trainer database; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        private_dirs(path.parent)
        if not path.exists():  # private from the start (SQLite gives its -wal/-shm files the same mode)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._lock:
            migrations.apply(self._db, lambda: datetime.now(UTC).isoformat())

    def _one(self, sql: str, params: Sequence[Any]) -> sqlite3.Row | None:
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _page(self, table: str, where: str, params: list[Any], after_id: str | None,
              limit: int, newest_first: bool) -> Page[sqlite3.Row] | None:  # fmt: skip
        """Rows of ``table`` matching ``where``, after the row ``after_id``; None if unknown cursor."""
        if after_id is not None:
            cursor = self._one(f"SELECT seq FROM {table} WHERE id = ?", (after_id,))  # noqa: S608
            if cursor is None:
                return None
            where += " AND seq < ?" if newest_first else " AND seq > ?"
            params = [*params, cursor["seq"]]
        order = "DESC" if newest_first else "ASC"
        rows = self._all(
            f"SELECT * FROM {table} WHERE {where} ORDER BY seq {order} LIMIT ?",  # noqa: S608
            [*params, limit + 1],
        )
        return Page(rows[:limit], len(rows) > limit)

    # ----- files -----

    def add_file(self, record: FileRecord) -> None:
        with self._tx() as db:
            self._insert_file(db, record)

    @staticmethod
    def _insert_file(db: sqlite3.Connection, record: FileRecord) -> None:
        db.execute(
            "INSERT INTO files (id, filename, purpose, bytes, created_at, path, status, status_details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (record.id, record.filename, record.purpose, record.bytes, record.created_at, str(record.path),
             record.status, record.status_details),
        )  # fmt: skip

    def file_ids(self) -> set[str]:
        """Ids of every file record (uploads and results)."""
        return {r["id"] for r in self._all("SELECT id FROM files", ())}

    def get_file(self, file_id: str) -> FileRecord | None:
        row = self._one("SELECT * FROM files WHERE id = ?", (file_id,))
        return _file(row) if row else None

    def list_files(self, *, purpose: str | None, after: str | None, limit: int,
                   newest_first: bool) -> Page[FileRecord] | None:  # fmt: skip
        where, params = ("purpose = ?", [purpose]) if purpose else ("1 = 1", [])
        page = self._page("files", where, params, after, limit, newest_first)
        return None if page is None else Page([_file(r) for r in page.items], page.has_more)

    def delete_file(self, file_id: str) -> FileRecord | None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is not None:
                db.execute("DELETE FROM files WHERE id = ?", (file_id,))
        return _file(row) if row else None

    # ----- jobs -----

    def add_job(self, job: JobRecord, events: Sequence[EventRecord]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs (id, created_at, model, training_file, validation_file, suffix, seed, "
                "metadata, hyperparameters, status, error, model_name, fine_tuned_model, finished_at, "
                "trained_tokens, result_files, estimated_finish, output_dir) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id, job.created_at, job.model, job.training_file, job.validation_file, job.suffix,
                    job.seed, _dumps(job.metadata), json.dumps(job.hyperparameters), job.status,
                    _dumps(job.error), job.model_name, job.fine_tuned_model, job.finished_at,
                    job.trained_tokens, json.dumps(job.result_files), job.estimated_finish,
                    str(job.output_dir),
                ),
            )  # fmt: skip
            for event in events:
                self._insert_event(db, event)

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(row) if row else None

    def list_jobs(self, *, after: str | None, limit: int,
                  metadata: dict[str, str] | None) -> Page[JobRecord] | None:  # fmt: skip
        """Newest first; ``metadata`` keeps jobs whose metadata has every given pair (one
        query of the same shape however many pairs are given)."""
        where, params = "1 = 1", []
        if metadata:
            where = (
                "(SELECT count(*) FROM json_each(?) AS f WHERE EXISTS (SELECT 1 FROM json_each(jobs.metadata) AS m "
                "WHERE m.key = f.key AND m.type = 'text' AND m.value = f.value)) = ?"
            )
            params = [json.dumps(metadata), len(metadata)]
        page = self._page("jobs", where, params, after, limit, newest_first=True)
        return None if page is None else Page([_job(r) for r in page.items], page.has_more)

    def job_ids(self) -> set[str]:
        return {r["id"] for r in self._all("SELECT id FROM jobs", ())}

    def jobs_of_deleted_models(self) -> list[JobRecord]:
        """Succeeded jobs whose fine-tuned model has been deleted."""
        rows = self._all(
            "SELECT * FROM jobs WHERE status = 'succeeded' AND fine_tuned_model IS NOT NULL "
            "AND fine_tuned_model NOT IN (SELECT id FROM models) ORDER BY seq",
            (),
        )
        return [_job(r) for r in rows]

    def jobs_with_status(self, statuses: Sequence[str]) -> list[JobRecord]:
        """Oldest first, so a restart re-queues jobs in their original order."""
        marks = ", ".join("?" for _ in statuses)
        return [_job(r) for r in self._all(f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY seq", statuses)]  # noqa: S608

    def update_job(self, job_id: str, *, expect: Sequence[str] | None = None,
                   events: Sequence[EventRecord] = (), **fields: Any) -> bool:  # fmt: skip
        """Set ``fields`` (and log ``events``) atomically, only if the status is in ``expect``.

        Returns False (and changes nothing) when the job is not in an expected status,
        which is how a cancel racing with the worker is resolved; with no ``fields`` it
        only logs ``events``, under the same condition.
        """
        encoders: dict[str, Callable[[Any], Any]] = {"metadata": _dumps, "hyperparameters": json.dumps, "error": _dumps,
                    "result_files": json.dumps}  # fmt: skip
        columns = [f"{name} = ?" for name in fields]
        values = [encoders.get(name, lambda v: v)(value) for name, value in fields.items()]
        where, params = " WHERE id = ?", [job_id]
        if expect is not None:
            where += f" AND status IN ({', '.join('?' for _ in expect)})"
            params += list(expect)
        with self._tx() as db:
            if fields:
                sql = f"UPDATE jobs SET {', '.join(columns)}{where}"  # noqa: S608
                changed = db.execute(sql, [*values, *params]).rowcount > 0
            else:
                changed = db.execute(f"SELECT 1 FROM jobs{where}", params).fetchone() is not None  # noqa: S608
            if changed:
                for event in events:
                    self._insert_event(db, event)
        return changed

    def job_with_model_name(self, model_name: str) -> JobRecord | None:
        row = self._one("SELECT * FROM jobs WHERE model_name = ?", (model_name,))
        return _job(row) if row else None

    def jobs_missing_final_event(self, status: str, message: str) -> list[str]:
        """Ids of jobs in ``status`` whose newest event is not ``message``."""
        rows = self._all(
            "SELECT id FROM jobs WHERE status = ? AND (SELECT message FROM events "
            "WHERE events.job_id = jobs.id ORDER BY seq DESC LIMIT 1) IS NOT ? ORDER BY seq",
            (status, message),
        )
        return [r["id"] for r in rows]

    def succeed_job(self, job_id: str, *, model: ModelRecord, results_file: FileRecord,
                    trained_tokens: int, events: Sequence[EventRecord]) -> bool:  # fmt: skip
        """Publish the model, the results file and the final events in one transaction.

        Only a ``running`` job can succeed; returns False (writing nothing) otherwise.
        """
        with self._tx() as db:
            changed = db.execute(
                "UPDATE jobs SET status = 'succeeded', fine_tuned_model = ?, finished_at = ?, "
                "trained_tokens = ?, result_files = ?, estimated_finish = NULL "
                "WHERE id = ? AND status = 'running'",
                (model.id, now(), trained_tokens, json.dumps([results_file.id]), job_id),
            ).rowcount
            if not changed:
                return False
            db.execute(
                "INSERT INTO models (id, created, base_model, job_id, adapter_dir) VALUES (?, ?, ?, ?, ?)",
                (model.id, model.created, model.base_model, model.job_id, str(model.adapter_dir)),
            )
            self._insert_file(db, results_file)
            for event in events:
                self._insert_event(db, event)
        return True

    # ----- events -----

    @staticmethod
    def _insert_event(db: sqlite3.Connection, event: EventRecord) -> None:
        db.execute(
            "INSERT INTO events (id, job_id, created_at, level, message, type, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.id, event.job_id, event.created_at, event.level, event.message, event.type, _dumps(event.data)),
        )

    def add_event(self, event: EventRecord) -> None:
        self.add_events([event])

    def add_events(self, events: Sequence[EventRecord]) -> None:
        """Log ``events`` in one transaction, in order."""
        with self._tx() as db:
            for event in events:
                self._insert_event(db, event)

    def list_events(self, job_id: str, *, after: str | None, limit: int) -> Page[EventRecord] | None:
        """Newest first, like OpenAI."""
        page = self._page("events", "job_id = ?", [job_id], after, limit, newest_first=True)
        return None if page is None else Page([_event(r) for r in page.items], page.has_more)

    def metrics_events(self, job_id: str) -> list[EventRecord]:
        """A job's ``metrics`` events, oldest first."""
        rows = self._all("SELECT * FROM events WHERE job_id = ? AND type = 'metrics' ORDER BY seq", (job_id,))
        return [_event(r) for r in rows]

    # ----- checkpoints -----

    def add_checkpoint(self, checkpoint: CheckpointRecord, event: EventRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO checkpoints (id, job_id, created_at, step, epoch, model_name, path, metrics) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    checkpoint.id, checkpoint.job_id, checkpoint.created_at, checkpoint.step, checkpoint.epoch,
                    checkpoint.model_name, str(checkpoint.path), json.dumps(checkpoint.metrics),
                ),
            )  # fmt: skip
            self._insert_event(db, event)

    def list_checkpoints(self, job_id: str, *, after: str | None, limit: int) -> Page[CheckpointRecord] | None:
        """Newest first."""
        page = self._page("checkpoints", "job_id = ?", [job_id], after, limit, newest_first=True)
        return None if page is None else Page([_checkpoint(r) for r in page.items], page.has_more)

    def latest_checkpoints(self, job_id: str) -> list[CheckpointRecord]:
        """All of a job's checkpoints, latest step first."""
        rows = self._all("SELECT * FROM checkpoints WHERE job_id = ? ORDER BY step DESC, seq DESC", (job_id,))
        return [_checkpoint(r) for r in rows]

    def checkpoint_by_model_name(self, model_name: str) -> CheckpointRecord | None:
        row = self._one("SELECT * FROM checkpoints WHERE model_name = ?", (model_name,))
        return _checkpoint(row) if row else None

    # ----- models -----

    def base_model_times(self, model_ids: Sequence[str]) -> dict[str, int]:
        """When each base model was first served; unseen ones are recorded as seen now."""
        marks = ", ".join("?" for _ in model_ids)
        sql = f"SELECT id, created FROM base_models WHERE id IN ({marks})"  # noqa: S608
        known = {r["id"]: r["created"] for r in self._all(sql, list(model_ids))}
        missing = [m for m in model_ids if m not in known]
        if missing:
            with self._tx() as db:
                db.executemany("INSERT OR IGNORE INTO base_models (id, created) VALUES (?, ?)",
                               [(m, now()) for m in missing])  # fmt: skip
                rows = db.execute(sql, list(model_ids)).fetchall()
            known = {r["id"]: r["created"] for r in rows}
        return known

    def get_model(self, model_id: str) -> ModelRecord | None:
        row = self._one("SELECT * FROM models WHERE id = ?", (model_id,))
        return _model(row) if row else None

    def list_models(self) -> list[ModelRecord]:
        return [_model(r) for r in self._all("SELECT * FROM models ORDER BY seq", ())]

    def delete_model(self, model_id: str) -> tuple[ModelRecord, list[CheckpointRecord]] | None:
        """Delete a fine-tuned model and its job's checkpoints (the same weights, epoch by
        epoch) in one transaction; returns what was deleted, None if there was no such model."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
            if row is None:
                return None
            checkpoints = db.execute("SELECT * FROM checkpoints WHERE job_id = ?", (row["job_id"],)).fetchall()
            db.execute("DELETE FROM models WHERE id = ?", (model_id,))
            db.execute("DELETE FROM checkpoints WHERE job_id = ?", (row["job_id"],))
        return _model(row), [_checkpoint(c) for c in checkpoints]

    def delete_checkpoints(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM checkpoints WHERE job_id = ?", (job_id,))


def new_event(job_id: str, message: str, *, level: str = "info", type: str = "message",  # noqa: A002
              data: dict[str, Any] | None = None) -> EventRecord:  # fmt: skip
    """An event stamped now, with a fresh id."""
    return EventRecord(event_id(), job_id, now(), level, message, type, data)

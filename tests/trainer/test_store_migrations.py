"""The trainer's own SQLite state: checksummed, append-only migrations (``trainer.migrations``),
adoption of databases from the old ``PRAGMA user_version`` scheme, and job creation by the
job manager without the HTTP layer."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.trainer.test_server import (
    BASE,
    all_events,
    async_client,
    jsonl,
    make_config,
    running_server,
    tiny_engine,
)
from trainer import migrations
from trainer.errors import APIError
from trainer.job_params import parse_job_params
from trainer.jobs import TRAINING_COPY, JobManager
from trainer.migrations import LATEST_VERSION, MIGRATIONS, MigrationError
from trainer.store import FileRecord, Store

# What the trainer's store executed on a new database before trainer.migrations existed
# (trainer/store.py up to e8e11b0), followed by ``PRAGMA user_version = 1``.
OLD_SCHEMA = [
    """
    CREATE TABLE files (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        filename TEXT NOT NULL,
        purpose TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        path TEXT NOT NULL
    )""",
    """
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
    )""",
    "CREATE INDEX jobs_status ON jobs(status)",
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        job_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        type TEXT NOT NULL,
        data TEXT
    )""",
    "CREATE INDEX events_job ON events(job_id, seq)",
    """
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
    )""",
    "CREATE INDEX checkpoints_job ON checkpoints(job_id, seq)",
    """
    CREATE TABLE models (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        created INTEGER NOT NULL,
        base_model TEXT NOT NULL,
        job_id TEXT NOT NULL,
        adapter_dir TEXT NOT NULL
    )""",
]


OLD_JOB_ID = "ftjob-Ab3dE6gH"  # the old 8-character ids


def _now() -> str:
    return "2026-01-01T00:00:00+00:00"


def _old_database(path: Path, data_dir: Path) -> None:
    """A database as the old code left it: a succeeded job, and a cancelled one whose events
    end with the old order ("Training stopped" after the terminal "cancelled")."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    for statement in OLD_SCHEMA:
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    train = data_dir / "file-old"
    train.write_bytes(jsonl(10))
    db.execute(
        "INSERT INTO files (id, filename, purpose, bytes, created_at, path) VALUES (?, ?, ?, ?, ?, ?)",
        ("file-old", "t.jsonl", "fine-tune", train.stat().st_size, 1700000000, str(train)),
    )
    hyperparameters = json.dumps({"n_epochs": 1, "batch_size": 5, "learning_rate_multiplier": 1.0})
    for job_id, status, model in ((OLD_JOB_ID, "succeeded", f"ft:{BASE}:testorg::Ab3dE6gH"),
                                  ("ftjob-Zz9yX8wV", "cancelled", None)):  # fmt: skip
        db.execute(
            "INSERT INTO jobs (id, created_at, model, training_file, seed, hyperparameters, status, "
            "model_name, fine_tuned_model, finished_at, output_dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, 1700000000, BASE, "file-old", 7, hyperparameters, status,
             f"ft:{BASE}:testorg::{job_id[6:]}", model, 1700000100, str(data_dir / "jobs" / job_id)),
        )  # fmt: skip
        messages = ["Created fine-tuning job", f"Fine-tuning job {status}"]
        if status == "cancelled":
            messages.append("Training stopped at step 3")
        for n, message in enumerate(messages):
            db.execute(
                "INSERT INTO events (id, job_id, created_at, level, message, type) VALUES (?, ?, ?, 'info', ?, 'message')",
                (f"ftevent-{job_id}-{n}", job_id, 1700000000 + n, message),
            )
    db.close()


def _schema(path: Path) -> list[tuple[str, str, str]]:
    """Every table and index with its SQL, whitespace normalised (the old scheme indented it)."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").fetchall()
    finally:
        db.close()
    return [(kind, name, re.sub(r"\s+", " ", sql).replace("( ", "(").replace(" )", ")")) for kind, name, sql in rows]


def _ledger(path: Path) -> list[tuple[int, str, str]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version").fetchall()
    finally:
        db.close()


def test_fresh_store_records_every_migration(tmp_path: Path) -> None:
    Store(tmp_path / "t.sqlite3").close()
    assert _ledger(tmp_path / "t.sqlite3") == [(m.version, m.name, m.checksum) for m in MIGRATIONS]
    db = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    try:
        assert migrations.apply(db, _now) == []  # opening again applies nothing
    finally:
        db.close()


async def test_old_user_version_database_is_adopted_with_its_jobs(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    _old_database(config.db_path, config.data_dir)
    store = Store(config.db_path)
    try:
        job = store.get_job(OLD_JOB_ID)
        assert job is not None and job.status == "succeeded" and job.seed == 7
        assert [e.message for e in store.list_events(OLD_JOB_ID, after=None, limit=10).items][0] == "Fine-tuning job succeeded"
    finally:
        store.close()
    assert _ledger(config.db_path) == [(m.version, m.name, m.checksum) for m in MIGRATIONS]
    Store(tmp_path / "fresh.sqlite3").close()
    assert _schema(config.db_path) == _schema(tmp_path / "fresh.sqlite3")

    with running_server(config, tiny_engine()) as url:  # old 8-character ids keep working
        client = async_client(url)
        old = await client.fine_tuning.jobs.retrieve(OLD_JOB_ID)
        assert (old.status, old.fine_tuned_model) == ("succeeded", f"ft:{BASE}:testorg::Ab3dE6gH")
        assert [e.message for e in await all_events(client, OLD_JOB_ID)][-1] == "Fine-tuning job succeeded"
        assert [j.id async for j in client.fine_tuning.jobs.list()] == ["ftjob-Zz9yX8wV", OLD_JOB_ID]
        cancelled = [e.message for e in await all_events(client, "ftjob-Zz9yX8wV")]
        assert cancelled[-2:] == ["Training stopped at step 3", "Fine-tuning job cancelled"]  # mended on start
        upload = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
        new = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id)
        assert re.fullmatch(r"ftjob-[A-Za-z0-9]{24}", new.id)
        await client.fine_tuning.jobs.cancel(new.id)
        assert [j.id for j in (await client.fine_tuning.jobs.list(limit=1)).data] == [new.id]


def test_edited_migration_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "t.sqlite3").close()
    edited = (dataclasses.replace(MIGRATIONS[0], sql=MIGRATIONS[0].sql + "\n-- edited\n"), *MIGRATIONS[1:])
    db = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    try:
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrations.apply(db, _now, migrations=edited)
    finally:
        db.close()


def test_database_from_newer_code_is_refused(tmp_path: Path) -> None:
    newer = (*MIGRATIONS, migrations.Migration(LATEST_VERSION + 1, "future", "CREATE TABLE f (x);"))
    db = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    try:
        assert migrations.apply(db, _now, migrations=newer) == [*range(1, LATEST_VERSION + 2)]
    finally:
        db.close()
    with pytest.raises(MigrationError, match="newer tunecord"):
        Store(tmp_path / "t.sqlite3")


def test_unknown_user_version_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    db.execute("PRAGMA user_version = 7")
    db.close()
    with pytest.raises(MigrationError, match="user_version 7"):
        Store(tmp_path / "t.sqlite3")


def test_failing_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    broken = (*MIGRATIONS, migrations.Migration(
        LATEST_VERSION + 1, "broken", "CREATE TABLE half (x);\nINSERT INTO nowhere VALUES (1);"
    ))  # fmt: skip
    db = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    try:
        with pytest.raises(MigrationError, match="broken"):
            migrations.apply(db, _now, migrations=broken)
        assert db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == LATEST_VERSION
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half'").fetchone()[0] == 0
    finally:
        db.close()


def test_job_manager_creates_jobs_without_the_http_layer(tmp_path: Path) -> None:
    """Creating a job is the manager's: checks, a private copy of the files, the record, the events."""
    config = make_config(tmp_path)
    store = Store(config.db_path)
    try:
        manager = JobManager(store, tiny_engine(), files_dir=config.files_dir, jobs_dir=config.jobs_dir, org="testorg")
        upload = tmp_path / "upload.jsonl"
        upload.write_bytes(jsonl(10))
        store.add_file(FileRecord("file-x", "t.jsonl", "fine-tune", upload.stat().st_size, 1, upload))
        job = manager.create(parse_job_params({"model": BASE, "training_file": "file-x", "suffix": "s"}))
        upload.unlink()  # the job trains on its own copy
        assert (job.output_dir / TRAINING_COPY).read_bytes() == jsonl(10)
        assert job.model_name == f"ft:{BASE}:testorg:s:{job.id[6:14]}"
        assert store.get_job(job.id) == job and job.status == "validating_files"
        events = store.list_events(job.id, after=None, limit=10).items
        assert [e.message for e in events] == ["Validating training file: file-x", f"Created fine-tuning job: {job.id}"]
        with pytest.raises(APIError) as err:
            manager.create(parse_job_params({"model": "nope", "training_file": "file-x"}))
        assert (err.value.status, err.value.param, err.value.code) == (400, "model", "model_not_available")
        with pytest.raises(APIError) as err:
            manager.create(parse_job_params({"model": BASE, "training_file": "file-gone"}))
        assert (err.value.param, err.value.code) == ("training_file", "file_not_found")
        assert [j.id for j in store.list_jobs(after=None, limit=10, metadata=None).items] == [job.id]
    finally:
        store.close()

"""Migrations: fresh and upgraded databases end in the same schema; history is guarded."""

from __future__ import annotations

import dataclasses
import sqlite3

import aiosqlite
import pytest

from storage import migrations
from storage.db import Database
from storage.errors import MigrationError
from storage.examples import ExampleRepository
from storage.migrations import LATEST_VERSION, MIGRATIONS
from tests.storage.helpers import GUILD_A, schema


def _now() -> str:
    return "2026-01-01T00:00:00.000000+00:00"


async def test_fresh_database_has_every_migration(tmp_path):
    path = tmp_path / "fresh.sqlite3"
    db = await Database.open(path)
    try:
        assert await db.schema_version() == LATEST_VERSION
        rows = await db.fetchall("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        assert [(r[0], r[1], r[2]) for r in rows] == [
            (m.version, m.name, m.checksum) for m in MIGRATIONS
        ]
    finally:
        await db.close()
    tables = {name for kind, name, _, _ in schema(path) if kind == "table"}
    assert {
        "guild_settings", "datasets", "examples", "example_tokens", "votes", "consents",
        "fine_tune_jobs", "active_models", "chat_channels", "spend_ledger",
        "dataset_status_counts", "dataset_token_totals", "schema_migrations",
    } <= tables


@pytest.mark.parametrize("old_version", range(1, LATEST_VERSION))
async def test_old_database_upgrades_to_the_same_schema(tmp_path, old_version):
    fresh = tmp_path / "fresh.sqlite3"
    old = tmp_path / "old.sqlite3"
    await (await Database.open(fresh)).close()

    partial = await Database.open(old, migrate=False)
    try:
        assert await partial.migrate(target=old_version) == list(range(1, old_version + 1))
        assert await partial.schema_version() == old_version
    finally:
        await partial.close()
    assert schema(old) != schema(fresh)

    upgraded = await Database.open(old)
    try:
        assert await upgraded.schema_version() == LATEST_VERSION
    finally:
        await upgraded.close()
    assert schema(old) == schema(fresh)


async def test_opening_again_applies_nothing(tmp_db_path):
    db = await Database.open(tmp_db_path)
    try:
        assert await db.migrate() == []
    finally:
        await db.close()


async def test_v1_data_gets_its_statistics_backfilled_by_v2(tmp_db_path):
    db = await Database.open(tmp_db_path, migrate=False)
    try:
        await db.migrate(target=1)
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO datasets (id, guild_id, name, created_at) VALUES (1, ?, 'old', 'x')",
                (GUILD_A,),
            )
            for n, status in enumerate(["pending", "approved", "approved", "rejected"]):
                await tx.execute(
                    "INSERT INTO examples (guild_id, dataset_id, example_json, content_hash, "
                    "status, source, created_at, updated_at) VALUES (?, 1, '{}', ?, ?, 'import', "
                    "'x', 'x')",
                    (GUILD_A, f"h{n}", status),
                )
        await db.migrate()
        stats = await ExampleRepository(db).stats(GUILD_A, 1, "o200k_base")
        assert (stats.pending.examples, stats.approved.examples, stats.rejected.examples) == (1, 2, 1)
        assert stats.uncounted == 4
    finally:
        await db.close()


async def test_edited_migration_is_refused(tmp_db_path):
    await (await Database.open(tmp_db_path)).close()
    edited = list(MIGRATIONS)
    edited[1] = dataclasses.replace(edited[1], sql=edited[1].sql + "\n-- edited\n")
    conn = await aiosqlite.connect(tmp_db_path, isolation_level=None)
    try:
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrations.apply(conn, _now, migrations=tuple(edited))
    finally:
        await conn.close()


async def test_database_from_newer_code_is_refused(tmp_db_path):
    newer = (*MIGRATIONS, migrations.Migration(LATEST_VERSION + 1, "future", "CREATE TABLE f (x);"))
    conn = await aiosqlite.connect(tmp_db_path, isolation_level=None)
    try:
        await migrations.apply(conn, _now, migrations=newer)
    finally:
        await conn.close()
    with pytest.raises(MigrationError, match="newer tunecord"):
        await Database.open(tmp_db_path)


async def test_failing_migration_leaves_the_previous_version(tmp_db_path):
    broken = (*MIGRATIONS, migrations.Migration(
        LATEST_VERSION + 1, "broken", "CREATE TABLE half (x);\nINSERT INTO nowhere VALUES (1);"
    ))
    conn = await aiosqlite.connect(tmp_db_path, isolation_level=None)
    try:
        with pytest.raises(MigrationError, match="broken"):
            await migrations.apply(conn, _now, migrations=broken)
    finally:
        await conn.close()
    conn2 = sqlite3.connect(tmp_db_path)
    try:
        assert conn2.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == LATEST_VERSION
        assert conn2.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half'").fetchone()[0] == 0
    finally:
        conn2.close()


def test_statements_keep_trigger_bodies_whole():
    statements = list(MIGRATIONS[1].statements())
    triggers = [s for s in statements if s.startswith("CREATE TRIGGER")]
    assert len(triggers) == 7
    assert all(s.rstrip().endswith("END;") for s in triggers)
    assert all(sqlite3.complete_statement(s) for s in statements)

"""The database wrapper: pragmas, serialised transactions, savepoints, readers."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from storage.db import Database


@pytest.fixture
async def db(tmp_db_path):
    database = await Database.open(tmp_db_path)
    async with database.transaction() as tx:
        await tx.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
        await tx.execute("INSERT INTO counter (id, value) VALUES (1, 0)")
    yield database
    await database.close()


async def test_pragmas_wal_foreign_keys_synchronous(tmp_db_path):
    db = await Database.open(tmp_db_path)
    try:
        async with db.transaction() as tx:
            assert await tx.fetchval("PRAGMA foreign_keys") == 1
            assert await tx.fetchval("PRAGMA synchronous") == 1  # NORMAL
            assert await tx.fetchval("PRAGMA busy_timeout") == 5000
        assert str(await db.fetchval("PRAGMA journal_mode")).lower() == "wal"
        assert await db.fetchval("PRAGMA query_only") == 1  # reads go to read-only readers
    finally:
        await db.close()
    full = await Database.open(tmp_db_path, synchronous="FULL")
    try:
        async with full.transaction() as tx:
            assert await tx.fetchval("PRAGMA synchronous") == 2
    finally:
        await full.close()


async def test_read_modify_write_transactions_do_not_interleave(db):
    events: list[tuple[int, str]] = []

    async def bump(worker: int, times: int) -> None:
        for _ in range(times):
            async with db.transaction() as tx:
                events.append((worker, "begin"))
                value = await tx.fetchval("SELECT value FROM counter WHERE id = 1")
                await asyncio.sleep(0)  # give the other coroutine every chance to cut in
                await tx.execute("UPDATE counter SET value = ? WHERE id = 1", (value + 1,))
                events.append((worker, "end"))

    await asyncio.gather(bump(1, 40), bump(2, 40), bump(3, 40))

    assert await db.fetchval("SELECT value FROM counter WHERE id = 1") == 120
    # Every transaction's begin is immediately followed by its own end.
    assert len(events) == 240
    for begin, end in zip(events[::2], events[1::2], strict=True):
        assert begin[1] == "begin" and end == (begin[0], "end")
    assert {worker for worker, _ in events} == {1, 2, 3}


async def test_error_in_transaction_rolls_back(db):
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute("UPDATE counter SET value = 99 WHERE id = 1")
            raise RuntimeError("boom")
    assert await db.fetchval("SELECT value FROM counter WHERE id = 1") == 0
    # The lock was released and the connection is usable.
    await db.execute("UPDATE counter SET value = 1 WHERE id = 1")
    assert await db.fetchval("SELECT value FROM counter WHERE id = 1") == 1


async def test_nested_transaction_is_a_savepoint(db):
    async with db.transaction() as tx:
        await tx.execute("UPDATE counter SET value = 10 WHERE id = 1")
        with pytest.raises(ValueError):
            async with db.transaction() as inner:
                await inner.execute("UPDATE counter SET value = 20 WHERE id = 1")
                raise ValueError("undo the inner part only")
        # reads inside the task's transaction see its own uncommitted write
        assert await db.fetchval("SELECT value FROM counter WHERE id = 1") == 10
        async with db.transaction() as inner:
            await inner.execute("INSERT INTO counter (id, value) VALUES (2, 5)")
    assert [tuple(r) for r in await db.fetchall("SELECT id, value FROM counter ORDER BY id")] == [
        (1, 10),
        (2, 5),
    ]


async def test_reads_run_during_a_write_and_see_only_committed_data(db):
    inside = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE counter SET value = 42 WHERE id = 1")
            inside.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await inside.wait()
    # Not blocked by the open write transaction, and it does not see its write.
    seen = await asyncio.wait_for(db.fetchval("SELECT value FROM counter WHERE id = 1"), 2)
    assert seen == 0
    release.set()
    await task
    assert await db.fetchval("SELECT value FROM counter WHERE id = 1") == 42


async def test_snapshot_sees_one_moment(db):
    async with db.snapshot():
        before = await db.fetchval("SELECT value FROM counter WHERE id = 1")
        await asyncio.create_task(db.execute("UPDATE counter SET value = 7 WHERE id = 1"))
        assert await db.fetchval("SELECT value FROM counter WHERE id = 1") == before == 0
    assert await db.fetchval("SELECT value FROM counter WHERE id = 1") == 7


async def test_cancelled_transaction_rolls_back_and_frees_the_lock(db):
    started = asyncio.Event()

    async def slow() -> None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE counter SET value = 5 WHERE id = 1")
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(slow())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await db.fetchval("SELECT value FROM counter WHERE id = 1") == 0
    await asyncio.wait_for(db.execute("UPDATE counter SET value = 6 WHERE id = 1"), 2)
    assert await db.fetchval("SELECT value FROM counter WHERE id = 1") == 6


async def test_statement_after_transaction_end_is_refused(db):
    async with db.transaction() as tx:
        pass
    with pytest.raises(RuntimeError, match="ended"):
        await tx.execute("UPDATE counter SET value = 1")


async def test_foreign_keys_are_enforced(tmp_db_path):
    db = await Database.open(tmp_db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await db.execute(
                "INSERT INTO examples (guild_id, dataset_id, example_json, content_hash, source, "
                "created_at, updated_at) VALUES (1, 999, '{}', 'h', 'import', 'now', 'now')"
            )
    finally:
        await db.close()


async def test_in_memory_database_works_without_readers():
    db = await Database.open(":memory:")
    try:
        await db.execute(
            "INSERT INTO chat_channels (guild_id, channel_id, added_at) VALUES (1, 2, 'now')"
        )
        assert await db.fetchval("SELECT count(*) FROM chat_channels") == 1
    finally:
        await db.close()

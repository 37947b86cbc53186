"""The one database wrapper: connections, pragmas, serialised write transactions.

Layout
------
* One **writer** connection. Every write runs inside ``async with db.transaction() as tx:``,
  which holds an :class:`asyncio.Lock` from ``BEGIN IMMEDIATE`` to ``COMMIT``, so two
  coroutines can never interleave statements inside one transaction. A ``transaction()``
  opened again by the task that already holds one becomes a ``SAVEPOINT`` (it can roll back
  on its own without undoing the outer work), so repository methods compose.
* A small pool of **reader** connections (``PRAGMA query_only``). Reads outside a
  transaction run there, concurrently with each other and with an open write transaction,
  and see only committed data (WAL snapshots). Reads made *inside* a transaction by its
  own task go to the writer connection, so they see the transaction's own writes.

Durability
----------
``journal_mode=WAL`` with ``synchronous=NORMAL`` (the default here): a commit is appended
to the WAL file before ``COMMIT`` returns, so once a write has returned it survives the
process being killed (SIGKILL, OOM, crash): the data is in the operating system's page
cache and the next open replays the WAL. It is *not* fsynced on every commit, so a power
loss or kernel crash can lose the last transactions (never corrupt the file). Pass
``synchronous="FULL"`` to fsync the WAL on every commit and survive power loss too, at the
cost of one fsync per transaction. ``tests/storage/test_crash.py`` checks the SIGKILL
guarantee.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from os import PathLike
from typing import Any, Literal, TypeVar

import aiosqlite

from storage import migrations

Params = Sequence[Any] | dict[str, Any]
Synchronous = Literal["NORMAL", "FULL"]
T = TypeVar("T")

_current: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
    "tunecord_storage_transaction", default=None
)
# (database, owning task, reader) of the snapshot the current task is reading in, if any.
_snapshot: contextvars.ContextVar[tuple[Database, asyncio.Task[Any] | None, Reader] | None] = (
    contextvars.ContextVar("tunecord_storage_snapshot", default=None)
)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock)."""
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """How timestamps are stored: ISO 8601 UTC with microseconds, so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_timestamp(text: str | None) -> datetime | None:
    """The inverse of :func:`format_timestamp` (``None`` stays ``None``)."""
    return None if text is None else datetime.fromisoformat(text)


async def _finish(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` to completion even if the caller is cancelled meanwhile.

    BEGIN/COMMIT/ROLLBACK must not be abandoned half-way: aiosqlite would still run them
    on its thread later, leaving the connection in a state the lock no longer protects.
    The cancellation is re-raised once the statement is done.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            await asyncio.wait([task])
        raise


class Reader:
    """Read queries on one connection."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    def _check(self) -> aiosqlite.Connection:
        return self._conn

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """The first row of a query (a ``RETURNING`` statement too), or ``None``."""
        cursor = await self._check().execute(sql, params)
        try:
            return await cursor.fetchone()
        finally:
            await cursor.close()

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """All rows of a query."""
        return list(await self._check().execute_fetchall(sql, params))

    async def fetchval(self, sql: str, params: Params = (), default: Any = None) -> Any:
        """The first column of the first row, or ``default`` when there is no row."""
        row = await self.fetchone(sql, params)
        return default if row is None else row[0]


class Transaction(Reader):
    """Statements on the writer connection, valid only inside ``db.transaction()``."""

    def __init__(self, db: Database, conn: aiosqlite.Connection) -> None:
        super().__init__(conn)
        self._db = db
        self._owner = asyncio.current_task()
        self._depth = 0
        self._open = True

    @property
    def db(self) -> Database:
        return self._db

    def _check(self) -> aiosqlite.Connection:
        if not self._open:
            raise RuntimeError("this transaction has already ended")
        return self._conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        cursor = await self._check().execute(sql, params)
        try:
            return cursor.rowcount
        finally:
            await cursor.close()

    async def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement for each parameter row; returns the rows changed in total."""
        cursor = await self._check().executemany(sql, rows)
        try:
            return cursor.rowcount
        finally:
            await cursor.close()

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT and return the new row's rowid."""
        cursor = await self._check().execute(sql, params)
        try:
            if cursor.lastrowid is None:  # pragma: no cover - sqlite always sets it
                raise RuntimeError("INSERT did not produce a rowid")
            return cursor.lastrowid
        finally:
            await cursor.close()


class Database:
    """An open tunecord database (see the module docstring for the guarantees)."""

    def __init__(
        self,
        path: str,
        writer: aiosqlite.Connection,
        clock: Callable[[], datetime],
    ) -> None:
        self.path = path
        self._writer = writer
        self._readers: list[Reader] = []
        self._idle_readers: asyncio.Queue[Reader] = asyncio.Queue()
        self._write_lock = asyncio.Lock()
        self._clock = clock
        self._closed = False
        self._version = 0

    @classmethod
    async def open(
        cls,
        path: str | PathLike[str],
        *,
        readers: int = 2,
        synchronous: Synchronous = "NORMAL",
        busy_timeout_ms: int = 5000,
        migrate: bool = True,
        clock: Callable[[], datetime] = utc_now,
    ) -> Database:
        """Open (creating if needed) the database at ``path`` and apply pending migrations.

        ``:memory:`` works for throwaway use; it has no readers (one connection cannot be
        shared), so its reads wait for the write lock.
        """
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be 'NORMAL' or 'FULL'")
        location = str(path)
        in_memory = location == ":memory:"
        writer = await _connect(location, busy_timeout_ms)
        reader_conns: list[aiosqlite.Connection] = []
        try:
            if not in_memory:
                mode = await _pragma(writer, "PRAGMA journal_mode=WAL")
                if str(mode).lower() != "wal":
                    raise RuntimeError(f"could not switch {location} to WAL (got {mode!r})")
            # Fixed strings: pragmas cannot take bound parameters.
            await writer.execute(
                "PRAGMA synchronous=FULL" if synchronous == "FULL" else "PRAGMA synchronous=NORMAL"
            )
            await writer.execute("PRAGMA foreign_keys=ON")
            db = cls(location, writer, clock)
            if migrate:
                await db.migrate()
            if not in_memory:
                for _ in range(readers):
                    reader = await _connect(location, busy_timeout_ms)
                    await reader.execute("PRAGMA query_only=ON")
                    reader_conns.append(reader)
                    db._readers.append(Reader(reader))
                    db._idle_readers.put_nowait(db._readers[-1])
        except BaseException:
            for conn in (writer, *reader_conns):
                await conn.close()
            raise
        return db

    async def migrate(self, target: int | None = None) -> list[int]:
        """Apply the pending migrations (up to ``target``); returns the versions applied."""
        async with self._write_lock:
            return await migrations.apply(self._writer, self.now_text, target=target)

    async def schema_version(self) -> int:
        """The highest migration version recorded in this database (0 when none)."""
        return int(await self.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))

    async def close(self) -> None:
        """Close every connection (waits for the transaction in progress, if any)."""
        if self._closed:
            return
        async with self._write_lock:
            self._closed = True
            for reader in self._readers:
                await reader._conn.close()
            await self._writer.execute("PRAGMA optimize")
            await self._writer.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- time ---------------------------------------------------------------------------

    def now(self) -> datetime:
        """The database clock (injectable for tests)."""
        return self._clock()

    def now_text(self) -> str:
        """The database clock, formatted for storage."""
        return format_timestamp(self._clock())

    # -- transactions -------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Changes when a write transaction begins and when it ends (odd while one is
        open): equal even versions before and after a read mean no write of this process
        touched the database in between, so what was read may be kept until it changes."""
        return self._version

    def _own_transaction(self) -> Transaction | None:
        tx = _current.get()
        if tx is not None and tx._open and tx._db is self and tx._owner is asyncio.current_task():
            return tx
        return None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A serialised write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``).

        Commits when the block ends, rolls back if it raises. Nested in a transaction of the
        same task, it is a savepoint instead.
        """
        outer = self._own_transaction()
        if outer is not None:
            async with self._savepoint(outer) as tx:
                yield tx
            return
        if self._closed:
            raise RuntimeError("the database is closed")
        async with self._write_lock:
            try:
                await _finish(self._writer.execute("BEGIN IMMEDIATE"))
            except BaseException:  # cancelled while BEGIN ran: do not leave it open
                await self._rollback()
                raise
            tx = Transaction(self, self._writer)
            token = _current.set(tx)
            self._version += 1
            try:
                yield tx
                await _finish(self._writer.execute("COMMIT"))
            except BaseException:
                await self._rollback()
                raise
            finally:
                tx._open = False
                _current.reset(token)
                self._version += 1

    async def _rollback(self) -> None:
        if self._writer.in_transaction:
            await _finish(self._writer.execute("ROLLBACK"))

    @asynccontextmanager
    async def _savepoint(self, outer: Transaction) -> AsyncIterator[Transaction]:
        outer._depth += 1
        # The name is built from a counter, never from input.
        name = f"sp{outer._depth}"
        await _finish(self._writer.execute("SAVEPOINT " + name))
        try:
            yield outer
        except BaseException:
            await _finish(self._writer.execute("ROLLBACK TO " + name))
            await _finish(self._writer.execute("RELEASE " + name))
            raise
        else:
            await _finish(self._writer.execute("RELEASE " + name))
        finally:
            outer._depth -= 1

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One write statement in its own transaction (or the caller's); rows changed."""
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    # -- reads --------------------------------------------------------------------------

    def _own_snapshot(self) -> Reader | None:
        bound = _snapshot.get()
        if bound is not None and bound[0] is self and bound[1] is asyncio.current_task():
            return bound[2]
        return None

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Reader]:
        """A reader for a few queries: the task's own transaction or snapshot if it is in
        one, else an idle reader connection (committed data)."""
        tx = self._own_transaction()
        snap = self._own_snapshot() if tx is None else None
        if tx is not None:
            yield tx
        elif snap is not None:
            yield snap
        elif not self._readers:
            async with self.transaction() as tx:
                yield tx
        else:
            reader = await self._idle_readers.get()
            try:
                yield reader
            finally:
                self._idle_readers.put_nowait(reader)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Reader]:
        """Reads that all see one consistent moment (a read transaction on one reader).

        Every read the task makes inside the block (repository methods included) uses it.
        For multi-query reads such as an export. Inside the task's own write transaction,
        or an enclosing snapshot, it reads that instead.
        """
        async with self.reading() as reader:
            if isinstance(reader, Transaction) or reader is self._own_snapshot():
                yield reader
                return
            await _finish(reader._conn.execute("BEGIN"))
            token = _snapshot.set((self, asyncio.current_task(), reader))
            try:
                yield reader
            finally:
                _snapshot.reset(token)
                await _finish(reader._conn.execute("COMMIT"))

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """All rows of a read query (committed data, or the caller's own transaction)."""
        async with self.reading() as reader:
            return await reader.fetchall(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """The first row of a read query, or ``None``."""
        async with self.reading() as reader:
            return await reader.fetchone(sql, params)

    async def fetchval(self, sql: str, params: Params = (), default: Any = None) -> Any:
        """The first column of the first row of a read query, or ``default``."""
        async with self.reading() as reader:
            return await reader.fetchval(sql, params, default)


async def _connect(location: str, busy_timeout_ms: int) -> aiosqlite.Connection:
    # isolation_level=None: the sqlite3 module never opens transactions on its own;
    # Database.transaction() issues BEGIN/COMMIT itself.
    conn = await aiosqlite.connect(location, isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute("PRAGMA busy_timeout=" + str(int(busy_timeout_ms)))
    return conn


async def _pragma(conn: aiosqlite.Connection, sql: str) -> Any:
    cursor = await conn.execute(sql)
    try:
        row = await cursor.fetchone()
    finally:
        await cursor.close()
    return None if row is None else row[0]

"""The spend ledger: estimated and actual fine-tuning costs per guild, in exact money."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal

from storage.db import Database, format_timestamp, parse_timestamp
from storage.records import SpendEntry, micros_to_usd, usd_to_micros
from storage.tables import Table

_LEDGER = Table(
    "spend_ledger", "id", "guild_id", "job_id", "amount_micro_usd", "kind", "note", "created_at"
)
_INSERT = _LEDGER.returning(
    "INSERT INTO spend_ledger (guild_id, job_id, amount_micro_usd, kind, note, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SELECT_LATEST = _LEDGER.select(
    "guild_id = ?", order_by="created_at DESC, id DESC", limit=True
)


def _entry(row: sqlite3.Row) -> SpendEntry:
    created_at = parse_timestamp(row["created_at"])
    assert created_at is not None
    return SpendEntry(
        id=row["id"],
        guild_id=row["guild_id"],
        job_id=row["job_id"],
        amount_usd=micros_to_usd(row["amount_micro_usd"]),
        kind=row["kind"],
        note=row["note"],
        created_at=created_at,
    )


class SpendRepository:
    """Append to and sum a guild's ledger. Amounts are stored in micro-dollars."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        guild_id: int,
        amount_usd: Decimal | int | str,
        *,
        kind: str,
        job_id: int | None = None,
        note: str | None = None,
    ) -> SpendEntry | None:
        """Append an entry (negative for a refund); ``None`` if ``job_id`` is not this
        guild's."""
        async with self._db.transaction() as tx:
            if job_id is not None and await tx.fetchval(
                "SELECT 1 FROM fine_tune_jobs WHERE id = ? AND guild_id = ?", (job_id, guild_id)
            ) is None:
                return None
            row = await tx.fetchone(
                _INSERT,
                (guild_id, job_id, usd_to_micros(amount_usd), kind, note, self._db.now_text()),
            )
        assert row is not None
        return _entry(row)

    async def total(
        self, guild_id: int, *, since: datetime | None = None, kind: str | None = None
    ) -> Decimal:
        """The sum of the guild's entries (from ``since``, of one ``kind`` if given)."""
        micros = await self._db.fetchval(
            "SELECT coalesce(sum(amount_micro_usd), 0) FROM spend_ledger "
            "WHERE guild_id = ? AND created_at >= ? AND (? IS NULL OR kind = ?)",
            (guild_id, "" if since is None else format_timestamp(since), kind, kind),
        )
        return micros_to_usd(int(micros))

    async def entries(self, guild_id: int, *, limit: int = 50) -> list[SpendEntry]:
        """The guild's latest entries, newest first."""
        rows = await self._db.fetchall(_SELECT_LATEST, (guild_id, limit))
        return [_entry(r) for r in rows]

"""Consent: a member's opt-in to having their messages collected in a guild."""

from __future__ import annotations

import sqlite3

from storage.db import Database, parse_timestamp
from storage.records import Consent
from storage.tables import Table

_CONSENTS = Table(
    "consents", "guild_id", "user_id", "granted", "granted_at", "revoked_at", "updated_at"
)
_SELECT = _CONSENTS.select("guild_id = ? AND user_id = ?")
_GRANT = _CONSENTS.returning(
    "INSERT INTO consents (guild_id, user_id, granted, granted_at, revoked_at, updated_at) "
    "VALUES (?, ?, 1, ?, NULL, ?) "
    "ON CONFLICT (guild_id, user_id) DO UPDATE SET granted = 1, "
    "granted_at = excluded.granted_at, revoked_at = NULL, updated_at = excluded.updated_at"
)
_REVOKE = _CONSENTS.returning(
    "INSERT INTO consents (guild_id, user_id, granted, granted_at, revoked_at, updated_at) "
    "VALUES (?, ?, 0, NULL, ?, ?) "
    "ON CONFLICT (guild_id, user_id) DO UPDATE SET granted = 0, "
    "revoked_at = excluded.revoked_at, updated_at = excluded.updated_at"
)


def _consent(row: sqlite3.Row) -> Consent:
    updated_at = parse_timestamp(row["updated_at"])
    assert updated_at is not None
    return Consent(
        guild_id=row["guild_id"],
        user_id=row["user_id"],
        granted=bool(row["granted"]),
        granted_at=parse_timestamp(row["granted_at"]),
        revoked_at=parse_timestamp(row["revoked_at"]),
        updated_at=updated_at,
    )


class ConsentRepository:
    """Opt-in, opt-out and forgetting, per member and guild."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def grant(self, guild_id: int, user_id: int) -> Consent:
        """Opt in (again); ``granted_at`` is the time of the latest opt-in."""
        now = self._db.now_text()
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_GRANT, (guild_id, user_id, now, now))
        assert row is not None
        return _consent(row)

    async def revoke(self, guild_id: int, user_id: int) -> Consent:
        """Opt out; the record stays (with ``revoked_at``) so the opt-out is remembered."""
        now = self._db.now_text()
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_REVOKE, (guild_id, user_id, now, now))
        assert row is not None
        return _consent(row)

    async def get(self, guild_id: int, user_id: int) -> Consent | None:
        row = await self._db.fetchone(_SELECT, (guild_id, user_id))
        return None if row is None else _consent(row)

    async def has_consented(self, guild_id: int, user_id: int) -> bool:
        """True only while the member is opted in."""
        granted = await self._db.fetchval(
            "SELECT granted FROM consents WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return bool(granted)

    async def consented_users(self, guild_id: int, user_ids: list[int]) -> set[int]:
        """Which of ``user_ids`` are opted in (one query for a whole conversation)."""
        if not user_ids:
            return set()
        rows = await self._db.fetchall(
            "SELECT user_id FROM consents WHERE guild_id = ? AND granted = 1 "
            "AND user_id IN (SELECT value FROM json_each(?))",
            (guild_id, "[" + ",".join(str(int(u)) for u in user_ids) + "]"),
        )
        return {r["user_id"] for r in rows}

    async def delete(self, guild_id: int, user_id: int) -> bool:
        """Forget the record entirely (a privacy deletion)."""
        removed = await self._db.execute(
            "DELETE FROM consents WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return removed > 0

"""Votes: one per member per example (+1 or -1); voting again changes the vote."""

from __future__ import annotations

import sqlite3

from bot.dataset.errors import InvalidInput
from storage.db import Database, parse_timestamp
from storage.records import Vote, VoteTally
from storage.tables import Table

_VOTES = Table("votes", "example_id", "user_id", "guild_id", "value", "created_at", "updated_at")
_UPSERT = _VOTES.returning(
    "INSERT INTO votes (example_id, user_id, guild_id, value, created_at, updated_at) "
    "SELECT e.id, ?, e.guild_id, ?, ?, ? FROM examples AS e WHERE e.id = ? AND e.guild_id = ? "
    "ON CONFLICT (example_id, user_id) DO UPDATE SET "
    "value = excluded.value, updated_at = excluded.updated_at"
)
_SELECT_ONE = _VOTES.select("example_id = ? AND user_id = ? AND guild_id = ?")
_SELECT_BY_USER = _VOTES.select("guild_id = ? AND user_id = ?", order_by="example_id")


def _vote(row: sqlite3.Row) -> Vote:
    created_at = parse_timestamp(row["created_at"])
    updated_at = parse_timestamp(row["updated_at"])
    assert created_at is not None and updated_at is not None
    return Vote(
        example_id=row["example_id"],
        user_id=row["user_id"],
        guild_id=row["guild_id"],
        value=row["value"],
        created_at=created_at,
        updated_at=updated_at,
    )


class VoteRepository:
    """Members' votes on a guild's examples."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def cast(self, guild_id: int, example_id: int, user_id: int, value: int) -> Vote | None:
        """Record ``user_id``'s vote (+1 or -1), replacing an earlier one.

        Returns ``None`` if the guild has no such example; raises :class:`InvalidInput`
        for any other value.
        """
        if value not in (-1, 1):
            raise InvalidInput("A vote is +1 (for the example) or -1 (against it).")
        now = self._db.now_text()
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_UPSERT, (user_id, value, now, now, example_id, guild_id))
        return None if row is None else _vote(row)

    async def retract(self, guild_id: int, example_id: int, user_id: int) -> bool:
        """Remove ``user_id``'s vote on the example; False if there was none."""
        removed = await self._db.execute(
            "DELETE FROM votes WHERE example_id = ? AND user_id = ? AND guild_id = ?",
            (example_id, user_id, guild_id),
        )
        return removed > 0

    async def get(self, guild_id: int, example_id: int, user_id: int) -> Vote | None:
        row = await self._db.fetchone(_SELECT_ONE, (example_id, user_id, guild_id))
        return None if row is None else _vote(row)

    async def tally(self, guild_id: int, example_id: int) -> VoteTally:
        """Up and down votes on one example (zeros for an unknown or foreign example)."""
        row = await self._db.fetchone(
            "SELECT count(*) FILTER (WHERE value > 0) AS up, "
            "count(*) FILTER (WHERE value < 0) AS down "
            "FROM votes WHERE example_id = ? AND guild_id = ?",
            (example_id, guild_id),
        )
        assert row is not None
        return VoteTally(example_id=example_id, up=row["up"], down=row["down"])

    async def by_user(self, guild_id: int, user_id: int) -> list[Vote]:
        """Every vote ``user_id`` cast in this guild."""
        rows = await self._db.fetchall(_SELECT_BY_USER, (guild_id, user_id))
        return [_vote(r) for r in rows]

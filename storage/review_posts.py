"""Review posts: the message in the review channel that shows an example and its buttons."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from storage.db import Database
from storage.tables import Table

_POSTS = Table("review_posts", "example_id", "guild_id", "channel_id", "message_id")
_SELECT_ONE = _POSTS.select("example_id = ? AND guild_id = ?")
_SELECT_MANY = _POSTS.select(
    "guild_id = ? AND example_id IN (SELECT value FROM json_each(?))", order_by="example_id"
)


@dataclass(frozen=True)
class ReviewPost:
    example_id: int
    guild_id: int
    channel_id: int
    message_id: int


def _post(row: sqlite3.Row) -> ReviewPost:
    return ReviewPost(row["example_id"], row["guild_id"], row["channel_id"], row["message_id"])


class ReviewPostRepository:
    """Where each example's review post is, so it is edited in place, never re-posted."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self, guild_id: int, example_id: int, channel_id: int, message_id: int
    ) -> bool:
        """Remember the post of an example of the guild; False if the guild has no such
        example (it was deleted meanwhile). A later post replaces the earlier one."""
        stored = await self._db.execute(
            "INSERT INTO review_posts (example_id, guild_id, channel_id, message_id, posted_at) "
            "SELECT e.id, e.guild_id, ?, ?, ? FROM examples AS e WHERE e.id = ? AND e.guild_id = ? "
            "ON CONFLICT (example_id) DO UPDATE SET channel_id = excluded.channel_id, "
            "message_id = excluded.message_id, posted_at = excluded.posted_at",
            (channel_id, message_id, self._db.now_text(), example_id, guild_id),
        )
        return stored > 0

    async def get(self, guild_id: int, example_id: int) -> ReviewPost | None:
        row = await self._db.fetchone(
            _SELECT_ONE, (example_id, guild_id)
        )
        return None if row is None else _post(row)

    async def for_examples(self, guild_id: int, example_ids: list[int]) -> list[ReviewPost]:
        """The posts of several examples (for deleting them with their examples)."""
        if not example_ids:
            return []
        rows = await self._db.fetchall(
            _SELECT_MANY,
            (guild_id, "[" + ",".join(str(int(i)) for i in example_ids) + "]"),
        )
        return [_post(r) for r in rows]

    async def for_dataset(self, guild_id: int, dataset_id: int) -> list[ReviewPost]:
        rows = await self._db.fetchall(
            "SELECT p.example_id, p.guild_id, p.channel_id, p.message_id FROM review_posts AS p "
            "JOIN examples AS e ON e.id = p.example_id "
            "WHERE e.dataset_id = ? AND e.guild_id = ? AND p.guild_id = ? ORDER BY p.example_id",
            (dataset_id, guild_id, guild_id),
        )
        return [_post(r) for r in rows]

    async def forget(self, guild_id: int, example_id: int) -> bool:
        removed = await self._db.execute(
            "DELETE FROM review_posts WHERE example_id = ? AND guild_id = ?",
            (example_id, guild_id),
        )
        return removed > 0

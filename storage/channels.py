"""The channels where the bot chats with a guild's model."""

from __future__ import annotations

import sqlite3

from storage.db import Database, parse_timestamp
from storage.records import ChatChannel
from storage.tables import Table

_CHANNELS = Table("chat_channels", "guild_id", "channel_id", "added_by", "added_at")
_SELECT_ALL = _CHANNELS.select("guild_id = ?", order_by="channel_id")


def _channel(row: sqlite3.Row) -> ChatChannel:
    added_at = parse_timestamp(row["added_at"])
    assert added_at is not None
    return ChatChannel(
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        added_by=row["added_by"],
        added_at=added_at,
    )


class ChatChannelRepository:
    """Add, remove and list a guild's chat channels."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, guild_id: int, channel_id: int, *, added_by: int | None = None) -> bool:
        """Enable chat in the channel; False if it already was."""
        added = await self._db.execute(
            "INSERT INTO chat_channels (guild_id, channel_id, added_by, added_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (guild_id, channel_id) DO NOTHING",
            (guild_id, channel_id, added_by, self._db.now_text()),
        )
        return added > 0

    async def remove(self, guild_id: int, channel_id: int) -> bool:
        """Disable chat in the channel; False if it was not enabled."""
        removed = await self._db.execute(
            "DELETE FROM chat_channels WHERE guild_id = ? AND channel_id = ?",
            (guild_id, channel_id),
        )
        return removed > 0

    async def contains(self, guild_id: int, channel_id: int) -> bool:
        found = await self._db.fetchval(
            "SELECT 1 FROM chat_channels WHERE guild_id = ? AND channel_id = ?",
            (guild_id, channel_id),
        )
        return found is not None

    async def list_all(self, guild_id: int) -> list[ChatChannel]:
        rows = await self._db.fetchall(_SELECT_ALL, (guild_id,))
        return [_channel(r) for r in rows]

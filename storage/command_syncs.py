"""The hash of the slash-command tree last synced to Discord, per application and scope."""

from __future__ import annotations

from storage.db import Database

GLOBAL_SCOPE = 0
"""The ``guild_id`` recorded for a global sync."""


class CommandSyncRepository:
    """Remembers what was last synced, so an unchanged tree is not synced again."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def last_hash(self, application_id: int, guild_id: int = GLOBAL_SCOPE) -> str | None:
        """The payload hash last synced to ``guild_id`` (0: globally), or ``None``."""
        value = await self._db.fetchval(
            "SELECT payload_hash FROM command_syncs WHERE application_id = ? AND guild_id = ?",
            (application_id, guild_id),
        )
        return None if value is None else str(value)

    async def record(self, application_id: int, guild_id: int, payload_hash: str) -> None:
        """Remember a successful sync of ``payload_hash`` to ``guild_id`` (0: globally)."""
        await self._db.execute(
            "INSERT INTO command_syncs (application_id, guild_id, payload_hash, synced_at) "
            "VALUES (?, ?, ?, ?) "
            "ON CONFLICT (application_id, guild_id) DO UPDATE SET "
            "payload_hash = excluded.payload_hash, synced_at = excluded.synced_at",
            (application_id, guild_id, payload_hash, self._db.now_text()),
        )

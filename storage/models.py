"""The model each guild chats with (its active fine-tuned model)."""

from __future__ import annotations

import sqlite3

from storage.db import Database, Transaction, parse_timestamp
from storage.records import ActiveModel
from storage.tables import Table

_ACTIVE_MODELS = Table(
    "active_models", "guild_id", "model", "system_prompt", "job_id", "activated_at"
)
_SELECT = _ACTIVE_MODELS.select("guild_id = ?")
_HISTORY = Table(
    "active_model_history", "id", "guild_id", "model", "system_prompt", "job_id", "activated_at"
)
_SELECT_PREVIOUS = _HISTORY.select("guild_id = ?", order_by="id DESC", limit=True)
_UPSERT = _ACTIVE_MODELS.returning(
    "INSERT INTO active_models (guild_id, model, system_prompt, job_id, activated_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET "
    "model = excluded.model, system_prompt = excluded.system_prompt, "
    "job_id = excluded.job_id, activated_at = excluded.activated_at"
)


def _active(row: sqlite3.Row) -> ActiveModel:
    activated_at = parse_timestamp(row["activated_at"])
    assert activated_at is not None
    return ActiveModel(
        guild_id=row["guild_id"],
        model=row["model"],
        system_prompt=row["system_prompt"],
        job_id=row["job_id"],
        activated_at=activated_at,
    )


class ActiveModelRepository:
    """At most one active model per guild."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, guild_id: int) -> ActiveModel | None:
        row = await self._db.fetchone(_SELECT, (guild_id,))
        return None if row is None else _active(row)

    async def set(
        self,
        guild_id: int,
        model: str,
        *,
        system_prompt: str | None = None,
        job_id: int | None = None,
    ) -> ActiveModel | None:
        """Make ``model`` the guild's chat model, replacing the previous one.

        ``None`` (and nothing changed) if ``job_id`` is not one of this guild's jobs.
        """
        async with self._db.transaction() as tx:
            if job_id is not None and await tx.fetchval(
                "SELECT 1 FROM fine_tune_jobs WHERE id = ? AND guild_id = ?", (job_id, guild_id)
            ) is None:
                return None
            await self._remember(tx, guild_id, model)
            row = await tx.fetchone(
                _UPSERT,
                (guild_id, model, system_prompt, job_id, self._db.now_text()),
            )
        assert row is not None
        return _active(row)

    async def clear(self, guild_id: int) -> bool:
        """Go back to no fine-tuned model; False if there was none."""
        removed = await self._db.execute("DELETE FROM active_models WHERE guild_id = ?", (guild_id,))
        return removed > 0

    async def _remember(self, tx: Transaction, guild_id: int, model: str) -> None:
        """Keep the current active model in the history when another one replaces it."""
        await tx.execute(
            "INSERT INTO active_model_history "
            "(guild_id, model, system_prompt, job_id, activated_at, replaced_at) "
            "SELECT guild_id, model, system_prompt, job_id, activated_at, ? FROM active_models "
            "WHERE guild_id = ? AND model <> ?",
            (self._db.now_text(), guild_id, model),
        )

    async def previous(self, guild_id: int) -> ActiveModel | None:
        """The model active before the current one (the newest in the history)."""
        row = await self._db.fetchone(_SELECT_PREVIOUS, (guild_id, 1))
        return None if row is None else _active(row)

    async def roll_back(self, guild_id: int) -> ActiveModel | None:
        """Make the previous model active again and drop it from the history; with no
        history, clear the active model. Returns the model now active (None: none)."""
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_SELECT_PREVIOUS, (guild_id, 1))
            if row is None:
                await tx.execute("DELETE FROM active_models WHERE guild_id = ?", (guild_id,))
                return None
            await tx.execute("DELETE FROM active_model_history WHERE id = ?", (row["id"],))
            restored = await tx.fetchone(
                _UPSERT,
                (guild_id, row["model"], row["system_prompt"], row["job_id"], row["activated_at"]),
            )
        assert restored is not None
        return _active(restored)

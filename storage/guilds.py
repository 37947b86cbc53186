"""Per-guild settings."""

from __future__ import annotations

import dataclasses
import sqlite3
from decimal import Decimal
from typing import Any

from bot.dataset.errors import InvalidInput
from storage.db import Database, parse_timestamp
from storage.records import GuildSettings, micros_to_usd, usd_to_micros
from storage.tables import Table
from storage.unset import UNSET, Unset

_GUILD_SETTINGS = Table(
    "guild_settings", "guild_id", "default_base_model", "provider", "chat_enabled",
    "capture_enabled", "admin_role_id", "curator_role_id", "monthly_budget_micro_usd",
    "review_channel_id", "vote_threshold", "max_pending_per_member", "default_dataset_id",
    "capture_depth", "trainer_role_id", "training_channel_id", "created_at", "updated_at",
)  # fmt: skip
_SELECT = _GUILD_SETTINGS.select("guild_id = ?")
_UPSERT = _GUILD_SETTINGS.returning(
    "INSERT INTO guild_settings (guild_id, default_base_model, provider, chat_enabled, "
    "capture_enabled, admin_role_id, curator_role_id, monthly_budget_micro_usd, "
    "review_channel_id, vote_threshold, max_pending_per_member, default_dataset_id, "
    "capture_depth, trainer_role_id, training_channel_id, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (guild_id) DO UPDATE SET "
    "default_base_model = excluded.default_base_model, "
    "provider = excluded.provider, "
    "chat_enabled = excluded.chat_enabled, "
    "capture_enabled = excluded.capture_enabled, "
    "admin_role_id = excluded.admin_role_id, "
    "curator_role_id = excluded.curator_role_id, "
    "monthly_budget_micro_usd = excluded.monthly_budget_micro_usd, "
    "review_channel_id = excluded.review_channel_id, "
    "vote_threshold = excluded.vote_threshold, "
    "max_pending_per_member = excluded.max_pending_per_member, "
    "default_dataset_id = excluded.default_dataset_id, "
    "capture_depth = excluded.capture_depth, "
    "trainer_role_id = excluded.trainer_role_id, "
    "training_channel_id = excluded.training_channel_id, "
    "updated_at = excluded.updated_at"
)


def _settings(row: sqlite3.Row) -> GuildSettings:
    budget = row["monthly_budget_micro_usd"]
    return GuildSettings(
        guild_id=row["guild_id"],
        default_base_model=row["default_base_model"],
        provider=row["provider"],
        chat_enabled=bool(row["chat_enabled"]),
        capture_enabled=bool(row["capture_enabled"]),
        admin_role_id=row["admin_role_id"],
        curator_role_id=row["curator_role_id"],
        monthly_budget_usd=None if budget is None else micros_to_usd(budget),
        review_channel_id=row["review_channel_id"],
        vote_threshold=row["vote_threshold"],
        max_pending_per_member=row["max_pending_per_member"],
        default_dataset_id=row["default_dataset_id"],
        capture_depth=row["capture_depth"],
        trainer_role_id=row["trainer_role_id"],
        training_channel_id=row["training_channel_id"],
        created_at=parse_timestamp(row["created_at"]),
        updated_at=parse_timestamp(row["updated_at"]),
    )


class GuildRepository:
    """Reads and changes one guild's settings row."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, guild_id: int) -> GuildSettings:
        """The guild's settings, or the defaults if it has never been configured."""
        row = await self._db.fetchone(
            _SELECT, (guild_id,)
        )
        return GuildSettings(guild_id=guild_id) if row is None else _settings(row)

    async def update(
        self,
        guild_id: int,
        *,
        default_base_model: str | None | Unset = UNSET,
        provider: str | None | Unset = UNSET,
        chat_enabled: bool | Unset = UNSET,
        capture_enabled: bool | Unset = UNSET,
        admin_role_id: int | None | Unset = UNSET,
        curator_role_id: int | None | Unset = UNSET,
        monthly_budget_usd: Decimal | int | str | None | Unset = UNSET,
        review_channel_id: int | None | Unset = UNSET,
        vote_threshold: int | Unset = UNSET,
        max_pending_per_member: int | Unset = UNSET,
        default_dataset_id: int | None | Unset = UNSET,
        capture_depth: int | Unset = UNSET,
        trainer_role_id: int | None | Unset = UNSET,
        training_channel_id: int | None | Unset = UNSET,
    ) -> GuildSettings:
        """Change the settings given (``None`` clears one that may be empty); returns the
        result."""
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("default_base_model", default_base_model),
                ("provider", provider),
                ("chat_enabled", chat_enabled),
                ("capture_enabled", capture_enabled),
                ("admin_role_id", admin_role_id),
                ("curator_role_id", curator_role_id),
                ("monthly_budget_usd", monthly_budget_usd),
                ("review_channel_id", review_channel_id),
                ("vote_threshold", vote_threshold),
                ("max_pending_per_member", max_pending_per_member),
                ("default_dataset_id", default_dataset_id),
                ("capture_depth", capture_depth),
                ("trainer_role_id", trainer_role_id),
                ("training_channel_id", training_channel_id),
            )
            if value is not UNSET
        }
        budget = changes.get("monthly_budget_usd")
        if budget is not None:
            changes["monthly_budget_usd"] = Decimal(budget)
            if changes["monthly_budget_usd"] < 0:
                raise InvalidInput("The monthly budget cannot be negative.")
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                _SELECT, (guild_id,)
            )
            current = GuildSettings(guild_id=guild_id) if row is None else _settings(row)
            new = dataclasses.replace(current, **changes)
            now = self._db.now_text()
            budget_micros = (
                None if new.monthly_budget_usd is None else usd_to_micros(new.monthly_budget_usd)
            )
            saved = await tx.fetchone(
                _UPSERT,
                (
                    guild_id,
                    new.default_base_model,
                    new.provider,
                    int(new.chat_enabled),
                    int(new.capture_enabled),
                    new.admin_role_id,
                    new.curator_role_id,
                    budget_micros,
                    new.review_channel_id,
                    new.vote_threshold,
                    new.max_pending_per_member,
                    new.default_dataset_id,
                    new.capture_depth,
                    new.trainer_role_id,
                    new.training_channel_id,
                    now,
                    now,
                ),
            )
        assert saved is not None
        return _settings(saved)

    async def delete(self, guild_id: int) -> bool:
        """Forget the guild's settings (back to defaults); True if there were any."""
        return await self._db.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,)) > 0

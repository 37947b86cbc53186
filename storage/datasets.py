"""Datasets: named collections of examples, one namespace per guild."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

from bot.dataset.policy import SystemPromptPolicy
from storage.db import Database, parse_timestamp
from storage.errors import DuplicateError
from storage.records import Dataset

_SELECT_ONE = (
    "SELECT id, guild_id, name, system_prompt, policy, base_model, created_at "
    "FROM datasets WHERE id = ? AND guild_id = ?"
)
_SELECT_BY_NAME = (
    "SELECT id, guild_id, name, system_prompt, policy, base_model, created_at "
    "FROM datasets WHERE guild_id = ? AND name = ?"
)
_SELECT_ALL = (
    "SELECT id, guild_id, name, system_prompt, policy, base_model, created_at "
    "FROM datasets WHERE guild_id = ? ORDER BY name, id"
)
_UPDATABLE = frozenset({"name", "system_prompt", "policy", "base_model"})


def _dataset(row: sqlite3.Row) -> Dataset:
    created_at = parse_timestamp(row["created_at"])
    assert created_at is not None
    return Dataset(
        id=row["id"],
        guild_id=row["guild_id"],
        name=row["name"],
        system_prompt=row["system_prompt"],
        policy=SystemPromptPolicy(row["policy"]),
        base_model=row["base_model"],
        created_at=created_at,
    )


def _check(name: str, policy: SystemPromptPolicy, system_prompt: str | None) -> None:
    if not name.strip():
        raise ValueError("a dataset needs a name")
    if policy is SystemPromptPolicy.INCLUDE and not (system_prompt and system_prompt.strip()):
        raise ValueError("policy 'include' needs a non-empty system prompt")


class DatasetRepository:
    """Create, find, change and delete a guild's datasets."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        guild_id: int,
        name: str,
        *,
        system_prompt: str | None = None,
        policy: SystemPromptPolicy | str = SystemPromptPolicy.AS_WRITTEN,
        base_model: str | None = None,
    ) -> Dataset:
        """A new dataset; raises :class:`DuplicateError` if the guild has one of that name.

        Names are unique per guild, ignoring ASCII case.
        """
        policy = SystemPromptPolicy(policy)
        _check(name, policy, system_prompt)
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "INSERT INTO datasets (guild_id, name, system_prompt, policy, base_model, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, name) DO NOTHING "
                "RETURNING id, guild_id, name, system_prompt, policy, base_model, created_at",
                (guild_id, name, system_prompt, policy.value, base_model, self._db.now_text()),
            )
            if row is None:
                existing = await tx.fetchval(
                    "SELECT id FROM datasets WHERE guild_id = ? AND name = ?", (guild_id, name)
                )
                raise DuplicateError(f"this server already has a dataset named {name!r}", existing)
        return _dataset(row)

    async def get(self, guild_id: int, dataset_id: int) -> Dataset | None:
        row = await self._db.fetchone(_SELECT_ONE, (dataset_id, guild_id))
        return None if row is None else _dataset(row)

    async def get_by_name(self, guild_id: int, name: str) -> Dataset | None:
        row = await self._db.fetchone(_SELECT_BY_NAME, (guild_id, name))
        return None if row is None else _dataset(row)

    async def list_all(self, guild_id: int) -> list[Dataset]:
        """The guild's datasets, by name."""
        return [_dataset(r) for r in await self._db.fetchall(_SELECT_ALL, (guild_id,))]

    async def update(self, guild_id: int, dataset_id: int, **changes: Any) -> Dataset | None:
        """Change ``name``, ``system_prompt``, ``policy`` and/or ``base_model``.

        Returns the updated dataset, ``None`` if the guild has no such dataset; raises
        :class:`DuplicateError` on a name clash.
        """
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise TypeError(f"cannot update dataset field(s): {', '.join(sorted(unknown))}")
        if "policy" in changes:
            changes["policy"] = SystemPromptPolicy(changes["policy"])
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_SELECT_ONE, (dataset_id, guild_id))
            if row is None:
                return None
            new = dataclasses.replace(_dataset(row), **changes)
            _check(new.name, new.policy, new.system_prompt)
            try:
                saved = await tx.fetchone(
                    "UPDATE datasets SET name = ?, system_prompt = ?, policy = ?, base_model = ? "
                    "WHERE id = ? AND guild_id = ? "
                    "RETURNING id, guild_id, name, system_prompt, policy, base_model, created_at",
                    (new.name, new.system_prompt, new.policy.value, new.base_model,
                     dataset_id, guild_id),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateError(
                    f"this server already has a dataset named {new.name!r}"
                ) from exc
        assert saved is not None
        return _dataset(saved)

    async def delete(self, guild_id: int, dataset_id: int) -> bool:
        """Delete the dataset and its examples (their votes and token counts too)."""
        deleted = await self._db.execute(
            "DELETE FROM datasets WHERE id = ? AND guild_id = ?", (dataset_id, guild_id)
        )
        return deleted > 0

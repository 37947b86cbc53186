"""Datasets: named collections of examples, one namespace per guild."""

from __future__ import annotations

import sqlite3

from bot.dataset.errors import InvalidInput
from bot.dataset.policy import SystemPromptPolicy
from storage.db import Database, parse_timestamp
from storage.errors import DuplicateError
from storage.records import Dataset
from storage.tables import Table
from storage.unset import UNSET, Unset, value_or

_DATASETS = Table(
    "datasets", "id", "guild_id", "name", "system_prompt", "policy", "base_model", "created_at"
)
_SELECT_ONE = _DATASETS.select("id = ? AND guild_id = ?")
_SELECT_BY_NAME = _DATASETS.select("guild_id = ? AND name = ?")
_SELECT_ALL = _DATASETS.select("guild_id = ?", order_by="name, id")
_INSERT = _DATASETS.returning(
    "INSERT INTO datasets (guild_id, name, system_prompt, policy, base_model, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, name) DO NOTHING"
)
_UPDATE = _DATASETS.returning(
    "UPDATE datasets SET name = ?, system_prompt = ?, policy = ?, base_model = ? "
    "WHERE id = ? AND guild_id = ?"
)


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


def _shown(text: str) -> str:
    """Member text quoted back in a message: one line, in backticks, never markdown."""
    text = " ".join(str(text).split()).replace("`", "'")
    return f"`{text[:60]}`"


def _policy(policy: SystemPromptPolicy | str) -> SystemPromptPolicy:
    try:
        return SystemPromptPolicy(policy)
    except ValueError:
        choices = ", ".join(f"`{p.value}`" for p in SystemPromptPolicy)
        raise InvalidInput(
            f"{_shown(policy)} is not a system prompt policy; choose one of {choices}."
        ) from None


def _name_taken(name: str) -> str:
    return f"This server already has a dataset named {_shown(name)}; choose another name."


def _check(name: str, policy: SystemPromptPolicy, system_prompt: str | None) -> None:
    """Raise :class:`InvalidInput` (shown to the member) if the dataset would be invalid."""
    if not name.strip():
        raise InvalidInput("A dataset needs a name.")
    if policy is SystemPromptPolicy.INCLUDE and not (system_prompt and system_prompt.strip()):
        raise InvalidInput(
            "The policy `include` puts the dataset's system prompt into every example: "
            "give the dataset a system prompt, or choose `omit` or `as_written`."
        )


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
        """A new dataset; raises :class:`DuplicateError` if the guild has one of that name,
        :class:`InvalidInput` if the name is empty or the policy lacks its system prompt.

        Names are unique per guild, ignoring ASCII case.
        """
        policy = _policy(policy)
        _check(name, policy, system_prompt)
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                _INSERT, (guild_id, name, system_prompt, policy.value, base_model, self._db.now_text())
            )
            if row is None:
                existing = await tx.fetchval(
                    "SELECT id FROM datasets WHERE guild_id = ? AND name = ?", (guild_id, name)
                )
                raise DuplicateError(_name_taken(name), existing)
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

    async def update(
        self,
        guild_id: int,
        dataset_id: int,
        *,
        name: str | Unset = UNSET,
        system_prompt: str | None | Unset = UNSET,
        policy: SystemPromptPolicy | str | Unset = UNSET,
        base_model: str | None | Unset = UNSET,
    ) -> Dataset | None:
        """Change the fields given; a field left out keeps its value, ``None`` clears
        ``system_prompt`` or ``base_model``.

        Returns the updated dataset, ``None`` if the guild has no such dataset; raises
        :class:`DuplicateError` on a name clash and :class:`InvalidInput` if the result
        would be invalid (an empty name, the ``include`` policy without a system prompt).
        """
        new_policy = UNSET if policy is UNSET else _policy(policy)
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_SELECT_ONE, (dataset_id, guild_id))
            if row is None:
                return None
            current = _dataset(row)
            new_name = value_or(name, current.name)
            new_system_prompt = value_or(system_prompt, current.system_prompt)
            final_policy = value_or(new_policy, current.policy)
            _check(new_name, final_policy, new_system_prompt)
            try:
                saved = await tx.fetchone(
                    _UPDATE,
                    (new_name, new_system_prompt, final_policy.value,
                     value_or(base_model, current.base_model), dataset_id, guild_id),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateError(_name_taken(new_name)) from exc
        assert saved is not None
        return _dataset(saved)

    async def delete(self, guild_id: int, dataset_id: int) -> bool:
        """Delete the dataset and its examples (their votes and token counts too)."""
        deleted = await self._db.execute(
            "DELETE FROM datasets WHERE id = ? AND guild_id = ?", (dataset_id, guild_id)
        )
        return deleted > 0

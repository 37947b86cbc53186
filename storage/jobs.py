"""Fine-tune jobs: what was asked of a provider, and what it answered."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from storage.db import Database, format_timestamp, parse_timestamp
from storage.records import (
    UNFINISHED_JOB_STATUSES,
    FineTuneJob,
    JobStatus,
    micros_to_usd,
    usd_to_micros,
)
from storage.tables import Table
from storage.unset import UNSET, Unset, value_or

_JOBS = Table(
    "fine_tune_jobs",
    "id",
    "guild_id",
    "dataset_id",
    "provider",
    "provider_job_id",
    "provider_file_id",
    "model",
    "hyperparameters",
    "status",
    "fine_tuned_model",
    "estimated_cost_micro_usd",
    "estimated_tokens",
    "trained_tokens",
    "event_cursor",
    "error",
    "requested_by",
    "created_at",
    "updated_at",
    "finished_at",
)
_SELECT_ONE = _JOBS.select("id = ? AND guild_id = ?")
_SELECT_BY_PROVIDER_ID = _JOBS.select("guild_id = ? AND provider = ? AND provider_job_id = ?")
_SELECT_RECENT = _JOBS.select("guild_id = ?", order_by="created_at DESC, id DESC", limit=True)
_SELECT_UNFINISHED = _JOBS.select(
    "guild_id = ? AND status IN (SELECT value FROM json_each(?))", order_by="id"
)
# The one deliberate cross-guild read (see JobRepository.unfinished_everywhere).
_SELECT_UNFINISHED_EVERYWHERE = _JOBS.select(
    "status IN (SELECT value FROM json_each(?))", order_by="id", every_guild=True
)
_INSERT = _JOBS.returning(
    "INSERT INTO fine_tune_jobs (guild_id, dataset_id, provider, model, hyperparameters, "
    "status, estimated_cost_micro_usd, estimated_tokens, requested_by, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE = _JOBS.returning(
    "UPDATE fine_tune_jobs SET provider_job_id = ?, provider_file_id = ?, status = ?, "
    "fine_tuned_model = ?, estimated_cost_micro_usd = ?, estimated_tokens = ?, "
    "trained_tokens = ?, event_cursor = ?, error = ?, hyperparameters = ?, "
    "updated_at = ?, finished_at = ? WHERE id = ? AND guild_id = ?"
)
_UNFINISHED_STATUSES = json.dumps([s.value for s in UNFINISHED_JOB_STATUSES])


def _job(row: sqlite3.Row) -> FineTuneJob:
    cost = row["estimated_cost_micro_usd"]
    created_at = parse_timestamp(row["created_at"])
    updated_at = parse_timestamp(row["updated_at"])
    assert created_at is not None and updated_at is not None
    return FineTuneJob(
        id=row["id"],
        guild_id=row["guild_id"],
        dataset_id=row["dataset_id"],
        provider=row["provider"],
        provider_job_id=row["provider_job_id"],
        provider_file_id=row["provider_file_id"],
        model=row["model"],
        hyperparameters=json.loads(row["hyperparameters"]),
        status=JobStatus(row["status"]),
        fine_tuned_model=row["fine_tuned_model"],
        estimated_cost_usd=None if cost is None else micros_to_usd(cost),
        estimated_tokens=row["estimated_tokens"],
        trained_tokens=row["trained_tokens"],
        event_cursor=row["event_cursor"],
        error=row["error"],
        requested_by=row["requested_by"],
        created_at=created_at,
        updated_at=updated_at,
        finished_at=parse_timestamp(row["finished_at"]),
    )


class JobRepository:
    """A guild's fine-tune jobs.

    Every method is scoped to one guild except :meth:`unfinished_everywhere`, the job
    follower's start-up read.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        guild_id: int,
        *,
        dataset_id: int | None,
        provider: str,
        model: str,
        hyperparameters: Mapping[str, Any] | None = None,
        status: JobStatus | str = JobStatus.PENDING,
        estimated_cost_usd: Decimal | None = None,
        estimated_tokens: int | None = None,
        requested_by: int | None = None,
    ) -> FineTuneJob | None:
        """Record a new job; ``None`` if ``dataset_id`` is not one of this guild's datasets."""
        now = self._db.now_text()
        cost = None if estimated_cost_usd is None else usd_to_micros(estimated_cost_usd)
        async with self._db.transaction() as tx:
            if dataset_id is not None and await tx.fetchval(
                "SELECT 1 FROM datasets WHERE id = ? AND guild_id = ?", (dataset_id, guild_id)
            ) is None:
                return None
            row = await tx.fetchone(
                _INSERT,
                (
                    guild_id,
                    dataset_id,
                    provider,
                    model,
                    json.dumps(dict(hyperparameters or {}), sort_keys=True),
                    JobStatus(status).value,
                    cost,
                    estimated_tokens,
                    requested_by,
                    now,
                    now,
                ),
            )
        assert row is not None
        return _job(row)

    async def get(self, guild_id: int, job_id: int) -> FineTuneJob | None:
        row = await self._db.fetchone(_SELECT_ONE, (job_id, guild_id))
        return None if row is None else _job(row)

    async def get_by_provider_id(
        self, guild_id: int, provider: str, provider_job_id: str
    ) -> FineTuneJob | None:
        row = await self._db.fetchone(_SELECT_BY_PROVIDER_ID, (guild_id, provider, provider_job_id))
        return None if row is None else _job(row)

    async def recent(self, guild_id: int, limit: int = 20) -> list[FineTuneJob]:
        """The guild's latest jobs, newest first."""
        return [_job(r) for r in await self._db.fetchall(_SELECT_RECENT, (guild_id, limit))]

    async def unfinished(self, guild_id: int) -> list[FineTuneJob]:
        """The guild's jobs not yet succeeded, failed or cancelled (to poll), oldest first."""
        rows = await self._db.fetchall(_SELECT_UNFINISHED, (guild_id, _UNFINISHED_STATUSES))
        return [_job(r) for r in rows]

    async def unfinished_everywhere(self) -> list[FineTuneJob]:
        """Every guild's unfinished jobs, by id: what the job follower resumes at start-up.

        This is the storage layer's one deliberate cross-guild read. The bot process follows
        every guild's jobs, so at start-up it needs them all; each returned job carries its
        ``guild_id``, and everything done with a job afterwards goes through the guild-scoped
        methods with that id. Do not use it to answer a member.
        """
        rows = await self._db.fetchall(_SELECT_UNFINISHED_EVERYWHERE, (_UNFINISHED_STATUSES,))
        return [_job(r) for r in rows]

    async def update(
        self,
        guild_id: int,
        job_id: int,
        *,
        provider_job_id: str | None | Unset = UNSET,
        provider_file_id: str | None | Unset = UNSET,
        status: JobStatus | str | Unset = UNSET,
        fine_tuned_model: str | None | Unset = UNSET,
        estimated_cost_usd: Decimal | None | Unset = UNSET,
        estimated_tokens: int | None | Unset = UNSET,
        trained_tokens: int | None | Unset = UNSET,
        event_cursor: str | None | Unset = UNSET,
        error: str | None | Unset = UNSET,
        hyperparameters: Mapping[str, Any] | Unset = UNSET,
    ) -> FineTuneJob | None:
        """Change the fields given (a field left out keeps its value, ``None`` clears it);
        ``None`` if the guild has no such job.

        ``updated_at`` is always set; ``finished_at`` is set when the status first becomes
        final and cleared if it becomes unfinished again.
        """
        new_status = UNSET if status is UNSET else JobStatus(status)
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_SELECT_ONE, (job_id, guild_id))
            if row is None:
                return None
            current = _job(row)
            final_status = value_or(new_status, current.status)
            now = self._db.now()
            finished_at = current.finished_at
            if not final_status.is_finished:
                finished_at = None
            elif finished_at is None:
                finished_at = now
            cost = value_or(estimated_cost_usd, current.estimated_cost_usd)
            saved = await tx.fetchone(
                _UPDATE,
                (
                    value_or(provider_job_id, current.provider_job_id),
                    value_or(provider_file_id, current.provider_file_id),
                    final_status.value,
                    value_or(fine_tuned_model, current.fine_tuned_model),
                    None if cost is None else usd_to_micros(cost),
                    value_or(estimated_tokens, current.estimated_tokens),
                    value_or(trained_tokens, current.trained_tokens),
                    value_or(event_cursor, current.event_cursor),
                    value_or(error, current.error),
                    json.dumps(dict(value_or(hyperparameters, current.hyperparameters)),
                               sort_keys=True),
                    format_timestamp(now),
                    None if finished_at is None else format_timestamp(finished_at),
                    job_id,
                    guild_id,
                ),
            )
        assert saved is not None
        return _job(saved)

    async def delete(self, guild_id: int, job_id: int) -> bool:
        """Forget a job (its spend entries stay, unlinked)."""
        removed = await self._db.execute(
            "DELETE FROM fine_tune_jobs WHERE id = ? AND guild_id = ?", (job_id, guild_id)
        )
        return removed > 0

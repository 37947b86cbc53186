"""Fine-tune jobs: what was asked of a provider, and what it answered."""

from __future__ import annotations

import dataclasses
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

_SELECT_ONE = (
    "SELECT id, guild_id, dataset_id, provider, provider_job_id, provider_file_id, model, "
    "hyperparameters, status, fine_tuned_model, estimated_cost_micro_usd, estimated_tokens, "
    "trained_tokens, event_cursor, error, requested_by, created_at, updated_at, finished_at "
    "FROM fine_tune_jobs WHERE id = ? AND guild_id = ?"
)
_SELECT_BY_PROVIDER_ID = (
    "SELECT id, guild_id, dataset_id, provider, provider_job_id, provider_file_id, model, "
    "hyperparameters, status, fine_tuned_model, estimated_cost_micro_usd, estimated_tokens, "
    "trained_tokens, event_cursor, error, requested_by, created_at, updated_at, finished_at "
    "FROM fine_tune_jobs WHERE guild_id = ? AND provider = ? AND provider_job_id = ?"
)
_SELECT_RECENT = (
    "SELECT id, guild_id, dataset_id, provider, provider_job_id, provider_file_id, model, "
    "hyperparameters, status, fine_tuned_model, estimated_cost_micro_usd, estimated_tokens, "
    "trained_tokens, event_cursor, error, requested_by, created_at, updated_at, finished_at "
    "FROM fine_tune_jobs WHERE guild_id = ? ORDER BY created_at DESC, id DESC LIMIT ?"
)
_SELECT_UNFINISHED = (
    "SELECT id, guild_id, dataset_id, provider, provider_job_id, provider_file_id, model, "
    "hyperparameters, status, fine_tuned_model, estimated_cost_micro_usd, estimated_tokens, "
    "trained_tokens, event_cursor, error, requested_by, created_at, updated_at, finished_at "
    "FROM fine_tune_jobs WHERE guild_id = ? AND status IN (SELECT value FROM json_each(?)) "
    "ORDER BY id"
)
_UPDATABLE = frozenset(
    {
        "provider_job_id",
        "provider_file_id",
        "status",
        "fine_tuned_model",
        "estimated_cost_usd",
        "estimated_tokens",
        "trained_tokens",
        "event_cursor",
        "error",
        "hyperparameters",
    }
)


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
    """A guild's fine-tune jobs."""

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
            job_id = await tx.insert(
                "INSERT INTO fine_tune_jobs (guild_id, dataset_id, provider, model, "
                "hyperparameters, status, estimated_cost_micro_usd, estimated_tokens, "
                "requested_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            row = await tx.fetchone(_SELECT_ONE, (job_id, guild_id))
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
        """Jobs not yet succeeded, failed or cancelled (to poll), oldest first."""
        statuses = json.dumps([s.value for s in UNFINISHED_JOB_STATUSES])
        return [_job(r) for r in await self._db.fetchall(_SELECT_UNFINISHED, (guild_id, statuses))]

    async def update(self, guild_id: int, job_id: int, **changes: Any) -> FineTuneJob | None:
        """Change some of the job's fields (see :class:`FineTuneJob`); ``None`` if the guild
        has no such job. ``finished_at`` is set when the status first becomes final."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise TypeError(f"cannot update job field(s): {', '.join(sorted(unknown))}")
        if "status" in changes:
            changes["status"] = JobStatus(changes["status"])
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_SELECT_ONE, (job_id, guild_id))
            if row is None:
                return None
            current = _job(row)
            new = dataclasses.replace(current, **changes)
            now = self._db.now()
            finished_at = current.finished_at
            if new.status.is_finished and finished_at is None:
                finished_at = now
            elif not new.status.is_finished:
                finished_at = None
            cost = new.estimated_cost_usd
            await tx.execute(
                "UPDATE fine_tune_jobs SET provider_job_id = ?, provider_file_id = ?, status = ?, "
                "fine_tuned_model = ?, estimated_cost_micro_usd = ?, estimated_tokens = ?, "
                "trained_tokens = ?, event_cursor = ?, error = ?, hyperparameters = ?, "
                "updated_at = ?, finished_at = ? WHERE id = ? AND guild_id = ?",
                (
                    new.provider_job_id,
                    new.provider_file_id,
                    new.status.value,
                    new.fine_tuned_model,
                    None if cost is None else usd_to_micros(cost),
                    new.estimated_tokens,
                    new.trained_tokens,
                    new.event_cursor,
                    new.error,
                    json.dumps(new.hyperparameters, sort_keys=True),
                    format_timestamp(now),
                    None if finished_at is None else format_timestamp(finished_at),
                    job_id,
                    guild_id,
                ),
            )
            saved = await tx.fetchone(_SELECT_ONE, (job_id, guild_id))
        assert saved is not None
        return _job(saved)

    async def delete(self, guild_id: int, job_id: int) -> bool:
        """Forget a job (its spend entries stay, unlinked)."""
        removed = await self._db.execute(
            "DELETE FROM fine_tune_jobs WHERE id = ? AND guild_id = ?", (job_id, guild_id)
        )
        return removed > 0

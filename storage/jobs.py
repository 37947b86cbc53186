"""Fine-tune jobs: what was asked of a provider, and what it answered."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from storage.db import Database, format_timestamp, parse_timestamp
from storage.errors import StorageError
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
    "channel_id",
    "validation_file_id",
)
_SELECT_ONE = _JOBS.select("id = ? AND guild_id = ?")
_SELECT_EXISTS = "SELECT 1 FROM fine_tune_jobs WHERE id = ? AND guild_id = ?"
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
    "status, estimated_cost_micro_usd, estimated_tokens, requested_by, created_at, updated_at, "
    "channel_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE = _JOBS.returning(
    "UPDATE fine_tune_jobs SET provider_job_id = ?, provider_file_id = ?, status = ?, "
    "fine_tuned_model = ?, estimated_cost_micro_usd = ?, estimated_tokens = ?, "
    "trained_tokens = ?, event_cursor = ?, error = ?, hyperparameters = ?, "
    "updated_at = ?, finished_at = ?, validation_file_id = ? WHERE id = ? AND guild_id = ?"
)
_UNFINISHED_STATUSES = json.dumps([s.value for s in UNFINISHED_JOB_STATUSES])
_SELECT_UNFINISHED_ID = (
    "SELECT id FROM fine_tune_jobs WHERE guild_id = ? AND dataset_id = ? "
    "AND status IN ('pending', 'validating_files', 'queued', 'running')"
)
_INSERT_POST = (
    "INSERT INTO job_posts (job_id, guild_id, kind, key, message_id, posted_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, kind, key) DO NOTHING"
)


class UnfinishedJobExists(StorageError):
    """The dataset has an unfinished job already (``job_id``)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} of this dataset is not finished")
        self.job_id = job_id


@dataclass(frozen=True)
class JobPostRecord:
    """What the job follower posted and how the job moves on with it, written at once."""

    kind: str
    """``status`` or ``event``."""
    keys: tuple[str, ...]
    """The statuses or event ids the message announced."""
    message_id: int | None
    event_cursor: str | None | Unset = UNSET
    status: JobStatus | str | Unset = UNSET
    fine_tuned_model: str | None | Unset = UNSET
    trained_tokens: int | None | Unset = UNSET
    error: str | None | Unset = UNSET
    spend: tuple[tuple[Decimal, str], ...] = ()
    """Ledger entries ``(amount, kind)`` written with the post (the actual cost)."""


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
        channel_id=row["channel_id"],
        validation_file_id=row["validation_file_id"],
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
        channel_id: int | None = None,
    ) -> FineTuneJob | None:
        """Record a new job; ``None`` if ``dataset_id`` is not one of this guild's datasets.

        Raises :class:`UnfinishedJobExists` when the dataset already has an unfinished job
        and this one would be unfinished too (one start per dataset at a time).
        """
        now = self._db.now_text()
        cost = None if estimated_cost_usd is None else usd_to_micros(estimated_cost_usd)
        async with self._db.transaction() as tx:
            if dataset_id is not None and await tx.fetchval(
                "SELECT 1 FROM datasets WHERE id = ? AND guild_id = ?", (dataset_id, guild_id)
            ) is None:
                return None
            if dataset_id is not None and not JobStatus(status).is_finished:
                existing = await tx.fetchval(_SELECT_UNFINISHED_ID, (guild_id, dataset_id))
                if existing is not None:
                    raise UnfinishedJobExists(existing)
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
                    channel_id,
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
        validation_file_id: str | None | Unset = UNSET,
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
                    value_or(validation_file_id, current.validation_file_id),
                    job_id,
                    guild_id,
                ),
            )
        assert saved is not None
        return _job(saved)

    async def posted_keys(self, guild_id: int, job_id: int) -> set[tuple[str, str]]:
        """``(kind, key)`` of everything already posted about the job."""
        rows = await self._db.fetchall(
            "SELECT kind, key FROM job_posts WHERE job_id = ? AND guild_id = ?", (job_id, guild_id)
        )
        return {(r["kind"], r["key"]) for r in rows}

    async def record_post(
        self, guild_id: int, job_id: int, post: JobPostRecord
    ) -> FineTuneJob | None:
        """Record a message sent about the job and, in the same transaction, move its
        cursor, status and results on (and write ``post.spend`` to the ledger); ``None`` if
        the guild has no such job."""
        now = self._db.now_text()
        async with self._db.transaction() as tx:
            if await tx.fetchval(_SELECT_EXISTS, (job_id, guild_id)) is None:
                return None
            await tx.executemany(
                _INSERT_POST,
                [(job_id, guild_id, post.kind, key, post.message_id, now) for key in post.keys],
            )
            for amount, kind in post.spend:
                await tx.execute(
                    "INSERT INTO spend_ledger (guild_id, job_id, amount_micro_usd, kind, note, "
                    "created_at) VALUES (?, ?, ?, ?, NULL, ?)",
                    (guild_id, job_id, usd_to_micros(amount), kind, now),
                )
            return await self.update(
                guild_id,
                job_id,
                event_cursor=post.event_cursor,
                status=post.status,
                fine_tuned_model=post.fine_tuned_model,
                trained_tokens=post.trained_tokens,
                error=post.error,
            )

    async def delete(self, guild_id: int, job_id: int) -> bool:
        """Forget a job (its spend entries stay, unlinked)."""
        removed = await self._db.execute(
            "DELETE FROM fine_tune_jobs WHERE id = ? AND guild_id = ?", (job_id, guild_id)
        )
        return removed > 0

"""Following fine-tune jobs: what to post about each, and recording that it was posted.

No Discord here. :meth:`JobFollower.updates` compares a job with the backend and returns the
posts to make, oldest first; the caller sends each one and then calls
:meth:`JobFollower.record` with the message id. ``record`` writes the post, the job's event
cursor, status and results (and the ledger entries) in ONE transaction, so a post is made
once however often the follower runs or restarts.

The one window left: the process dying after Discord accepted a message and before the
record committed (a few milliseconds). Each post carries a nonce derived from what it
announces (:attr:`JobUpdate.nonce`) with ``enforce_nonce``, so when the bot is back within
Discord's few minutes the repeated post returns the message already made; every other
crash point repeats nothing. Event ids already recorded are skipped even if the backend
forgets the cursor and lists every event again.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.dataset.pricing import PriceCatalogue
from bot.providers import Job, JobEvent, Provider, ProviderError
from bot.services.finetune import SPEND_ACTUAL, SPEND_RELEASE, FineTuneService
from storage.jobs import JobPostRecord
from storage.records import FineTuneJob, JobStatus
from storage.store import Storage

log = logging.getLogger(__name__)

METRIC_LINES = 5
"""About how many metrics lines a job's whole run is summarised in."""
NONCE_CHARS = 25
"""Discord's longest nonce."""
POST_TEXT_LIMIT = 1800
"""Characters of event lines per message (Discord's limit is 2,000)."""

ADVICE = {
    "invalid_n_examples": "Approve more examples (at least 10 for training) and start again.",
    "invalid_file_format": "Fix or reject the example the error names (`/dataset check`) "
    "and start again.",
    "invalid_training_file": "Check the dataset with `/dataset check` and start again.",
    "exceeded_quota": "The backend's account is out of quota: an operator must add credit.",
}
DEFAULT_ADVICE = "Fix what it names and start again with `/finetune start`."


@dataclass(frozen=True)
class CurvePoint:
    step: int
    train_loss: float | None
    valid_loss: float | None


@dataclass(frozen=True)
class Outcome:
    """How a job ended, for the final post."""

    status: JobStatus
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    actual_cost_usd: Decimal | None = None
    estimated_cost_usd: Decimal | None = None
    duration_seconds: int | None = None
    error: str | None = None
    advice: str | None = None
    curve: tuple[CurvePoint, ...] = ()


@dataclass(frozen=True)
class JobUpdate:
    """One post to make about ``job`` (``text`` ``None``: nothing to send, just record)."""

    job: FineTuneJob
    channel_id: int | None
    text: str | None
    record: JobPostRecord
    outcome: Outcome | None = None
    lines: tuple[str, ...] = field(default=())

    @property
    def nonce(self) -> str:
        """The same for the same post, whenever it is made: sent with Discord's
        ``enforce_nonce``, a post repeated within minutes returns the first message."""
        name = f"{self.job.guild_id}:{self.job.id}:{self.record.kind}:{','.join(self.record.keys)}"
        return hashlib.sha256(name.encode()).hexdigest()[:NONCE_CHARS]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def metrics_line(data: Mapping[str, Any]) -> str:
    step, total = data.get("step"), data.get("total_steps")
    parts = [f"step {step}/{total}" if total else f"step {step}"]
    for key, name in (("train_loss", "train loss"), ("valid_loss", "valid loss")):
        value = _number(data.get(key))
        if value is not None:
            parts.append(f"{name} {value:.4f}")
    return " · ".join(parts)


def _summarised(event: JobEvent) -> bool:
    """Whether a metrics event is one of the few a run is summarised in."""
    step, total = event.data.get("step"), event.data.get("total_steps")
    if not isinstance(step, int):
        return False
    if not isinstance(total, int) or total <= 0:
        return step == 1 or step % 10 == 0
    every = max(1, math.ceil(total / METRIC_LINES))
    return step == total or step % every == 0


def curve_points(events: Sequence[JobEvent]) -> list[CurvePoint]:
    """Train and validation loss by step, from a job's metrics events."""
    by_step: dict[int, CurvePoint] = {}
    for event in events:
        step = event.data.get("step") if event.type == "metrics" else None
        if not isinstance(step, int):
            continue
        by_step[step] = CurvePoint(
            step, _number(event.data.get("train_loss")), _number(event.data.get("valid_loss"))
        )
    return [by_step[s] for s in sorted(by_step)]


def _status(value: str) -> JobStatus | None:
    try:
        return JobStatus(value)
    except ValueError:
        return None  # a status tunecord does not track ("paused"): nothing to post


class JobFollower:
    """Compares our unfinished jobs with the backend and says what to post."""

    def __init__(
        self,
        storage: Storage,
        provider: Provider,
        catalogue: PriceCatalogue,
        finetunes: FineTuneService,
    ) -> None:
        self._storage = storage
        self._provider = provider
        self._catalogue = catalogue
        self._finetunes = finetunes

    async def unfinished(self) -> list[FineTuneJob]:
        """Every guild's unfinished jobs (each is then handled with its own guild id)."""
        return await self._storage.jobs.unfinished_everywhere()

    async def channel_for(self, job: FineTuneJob) -> int | None:
        settings = await self._storage.guilds.get(job.guild_id)
        return settings.training_channel_id or job.channel_id

    async def updates(self, job: FineTuneJob) -> list[JobUpdate]:
        """The posts to make about ``job`` now, in order (empty: nothing new)."""
        if job.provider_job_id is None:
            adopted = await self._finetunes.reconcile(job)
            if adopted is None or adopted.provider_job_id is None:
                if adopted is not None and adopted.status is JobStatus.FAILED:
                    return [await self._interrupted(adopted)]
                return []
            job = adopted
        assert job.provider_job_id is not None
        remote = await self._provider.get_job(job.provider_job_id)
        events = await self._provider.events_since(job.provider_job_id, job.event_cursor)
        channel = await self.channel_for(job)
        posted = await self._storage.jobs.posted_keys(job.guild_id, job.id)
        updates = self._event_updates(job, channel, events, posted)
        status = _status(remote.status)
        if status is not None and status is not job.status and ("status", status.value) not in posted:
            updates.append(await self._status_update(job, channel, remote, status))
        elif status is not None and status is not job.status:
            # posted before a crash but the job row never caught up: just catch up.
            updates.append(JobUpdate(job, channel, None, JobPostRecord(
                "status", (), None, status=status)))
        return updates

    def _event_updates(
        self,
        job: FineTuneJob,
        channel: int | None,
        events: Sequence[JobEvent],
        posted: set[tuple[str, str]],
    ) -> list[JobUpdate]:
        updates: list[JobUpdate] = []
        lines: list[str] = []
        keys: list[str] = []
        size = 0

        def flush(cursor: str) -> None:
            nonlocal size
            text = "\n".join(lines) if lines else None
            if text is not None:
                text = f"**Fine-tune #{job.id}**\n{text}"
            updates.append(JobUpdate(
                job, channel, text,
                JobPostRecord("event", tuple(keys), None, event_cursor=cursor),
                lines=tuple(lines),
            ))
            lines.clear()
            keys.clear()
            size = 0

        for event in events:
            if ("event", event.id) in posted:
                continue
            if event.type == "metrics":
                line = metrics_line(event.data) if _summarised(event) else None
            else:
                line = f"- {event.message[:300]}"
            if line is not None:
                if size + len(line) > POST_TEXT_LIMIT and lines:
                    flush(keys[-1])
                lines.append(line)
                keys.append(event.id)
                size += len(line) + 1
        if events and (lines or events[-1].id != job.event_cursor):
            flush(events[-1].id)
        return updates

    async def _status_update(
        self, job: FineTuneJob, channel: int | None, remote: Job, status: JobStatus
    ) -> JobUpdate:
        name = f"**Fine-tune #{job.id}**"
        if not status.is_finished:
            text = f"{name} is now **{status.value.replace('_', ' ')}**."
            return JobUpdate(job, channel, text,
                             JobPostRecord("status", (status.value,), None, status=status))
        release = -(job.estimated_cost_usd or Decimal(0))
        spend: list[tuple[Decimal, str]] = []
        if job.estimated_cost_usd:
            spend.append((release, SPEND_RELEASE))
        duration = (remote.finished_at - remote.created_at) if remote.finished_at else None
        if status is JobStatus.SUCCEEDED:
            price = self._catalogue.find(job.model)
            actual = None
            if price is not None and remote.trained_tokens is not None:
                actual = price.training_per_1m * Decimal(remote.trained_tokens) / 1_000_000
                spend.append((actual, SPEND_ACTUAL))
            outcome = Outcome(
                status, fine_tuned_model=remote.fine_tuned_model,
                trained_tokens=remote.trained_tokens, actual_cost_usd=actual,
                estimated_cost_usd=job.estimated_cost_usd, duration_seconds=duration,
                curve=tuple(await self._curve(remote.id)),
            )
            text = f"{name} succeeded: `{remote.fine_tuned_model}` is ready."
            record = JobPostRecord(
                "status", (status.value,), None, status=status,
                fine_tuned_model=remote.fine_tuned_model, trained_tokens=remote.trained_tokens,
                spend=tuple(spend),
            )
        elif status is JobStatus.FAILED:
            code = remote.error.code if remote.error else ""
            message = remote.error.message if remote.error else "The backend gave no reason."
            outcome = Outcome(status, error=message[:1000], advice=ADVICE.get(code, DEFAULT_ADVICE),
                              duration_seconds=duration)
            text = f"{name} failed."
            record = JobPostRecord("status", (status.value,), None, status=status,
                                   error=message[:1000], spend=tuple(spend))
        else:
            outcome = Outcome(status, duration_seconds=duration)
            text = f"{name} was cancelled."
            record = JobPostRecord("status", (status.value,), None, status=status,
                                   spend=tuple(spend))
        return JobUpdate(job, channel, text, record, outcome=outcome)

    async def _interrupted(self, job: FineTuneJob) -> JobUpdate:
        channel = await self.channel_for(job)
        error = job.error or "The start was interrupted."
        outcome = Outcome(JobStatus.FAILED, error=error,
                          advice="Start it again with `/finetune start`.")
        return JobUpdate(
            job, channel, f"**Fine-tune #{job.id}** failed.",
            JobPostRecord("status", (JobStatus.FAILED.value,), None), outcome=outcome,
        )

    async def _curve(self, provider_job_id: str) -> list[CurvePoint]:
        try:
            points = curve_points(await self._provider.events_since(provider_job_id, None))
            if points:
                return points
            return [
                CurvePoint(c.step, c.metrics.get("train_loss"),
                           c.metrics.get("valid_loss") or c.metrics.get("full_valid_loss"))
                for c in await self._provider.checkpoints(provider_job_id)
            ]
        except ProviderError as exc:
            log.info("no loss curve for %s: %s", provider_job_id, exc)
            return []

    async def record(self, update: JobUpdate, message_id: int | None) -> FineTuneJob | None:
        """Record ``update`` as posted (``message_id`` of the message sent, if any)."""
        post = update.record
        if message_id is not None:
            post = JobPostRecord(
                post.kind, post.keys, message_id, event_cursor=post.event_cursor,
                status=post.status, fine_tuned_model=post.fine_tuned_model,
                trained_tokens=post.trained_tokens, error=post.error, spend=post.spend,
            )
        return await self._storage.jobs.record_post(update.job.guild_id, update.job.id, post)


"""The frozen records repositories return, and the small enums they use."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from bot.dataset.examples import ChatExample
from bot.dataset.policy import SystemPromptPolicy

MICROS_PER_USD = 1_000_000


def usd_to_micros(amount: Decimal | int | str) -> int:
    """Dollars to integer micro-dollars (how money is stored), rounded half up."""
    value = Decimal(amount) * MICROS_PER_USD
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def micros_to_usd(micros: int) -> Decimal:
    """Stored micro-dollars back to dollars, exactly."""
    return Decimal(micros) / MICROS_PER_USD


class ExampleStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class ExampleSource(StrEnum):
    """Where an example came from."""

    MODAL = "modal"
    CAPTURE = "capture"
    IMPORT = "import"
    COMMAND = "command"
    OTHER = "other"


class JobStatus(StrEnum):
    """A fine-tune job's life: ``pending`` locally, then the provider's statuses."""

    PENDING = "pending"
    VALIDATING_FILES = "validating_files"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


UNFINISHED_JOB_STATUSES: tuple[JobStatus, ...] = tuple(s for s in JobStatus if not s.is_finished)


@dataclass(frozen=True)
class GuildSettings:
    """Per-guild settings; a guild never configured gets these defaults."""

    guild_id: int
    default_base_model: str | None = None
    provider: str | None = None
    chat_enabled: bool = False
    capture_enabled: bool = False
    admin_role_id: int | None = None
    curator_role_id: int | None = None
    monthly_budget_usd: Decimal | None = None
    review_channel_id: int | None = None
    vote_threshold: int = 3
    max_pending_per_member: int = 20
    default_dataset_id: int | None = None
    capture_depth: int = 6
    trainer_role_id: int | None = None
    training_channel_id: int | None = None
    """How many messages of a reply chain "Add to dataset" follows."""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Dataset:
    id: int
    guild_id: int
    name: str
    system_prompt: str | None
    policy: SystemPromptPolicy
    base_model: str | None
    created_at: datetime


@dataclass(frozen=True)
class ExampleRecord:
    """A stored example; ``example`` is parsed from its canonical JSON line."""

    id: int
    guild_id: int
    dataset_id: int
    example: ChatExample
    content_hash: str
    contributor_id: int | None
    status: ExampleStatus
    source: ExampleSource | str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StatusStats:
    """Counts for one status: examples, how many have a cached count, and their tokens."""

    examples: int = 0
    counted: int = 0
    tokens: int = 0
    billed_tokens: int = 0

    @property
    def uncounted(self) -> int:
        """Examples with no cached token count for the encoding: count and cache them."""
        return self.examples - self.counted


@dataclass(frozen=True)
class DatasetStats:
    """A dataset's counts and token totals by status, for one encoding."""

    dataset_id: int
    encoding: str
    pending: StatusStats
    approved: StatusStats
    rejected: StatusStats

    def for_status(self, status: ExampleStatus | str) -> StatusStats:
        return getattr(self, ExampleStatus(status).value)

    @property
    def total(self) -> StatusStats:
        parts = (self.pending, self.approved, self.rejected)
        return StatusStats(
            examples=sum(p.examples for p in parts),
            counted=sum(p.counted for p in parts),
            tokens=sum(p.tokens for p in parts),
            billed_tokens=sum(p.billed_tokens for p in parts),
        )

    @property
    def uncounted(self) -> int:
        return self.total.uncounted


@dataclass(frozen=True)
class VoteTally:
    example_id: int
    up: int
    down: int

    @property
    def score(self) -> int:
        return self.up - self.down


@dataclass(frozen=True)
class Vote:
    example_id: int
    user_id: int
    guild_id: int
    value: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Consent:
    guild_id: int
    user_id: int
    granted: bool
    granted_at: datetime | None
    revoked_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class FineTuneJob:
    id: int
    guild_id: int
    dataset_id: int | None
    provider: str
    provider_job_id: str | None
    provider_file_id: str | None
    model: str
    hyperparameters: dict[str, Any]
    status: JobStatus
    fine_tuned_model: str | None
    estimated_cost_usd: Decimal | None
    estimated_tokens: int | None
    trained_tokens: int | None
    event_cursor: str | None
    error: str | None
    requested_by: int | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    channel_id: int | None = None
    """The channel the job was started from (posts go there without a training channel)."""
    validation_file_id: str | None = None


@dataclass(frozen=True)
class ActiveModel:
    guild_id: int
    model: str
    system_prompt: str | None
    job_id: int | None
    activated_at: datetime


@dataclass(frozen=True)
class ChatChannel:
    guild_id: int
    channel_id: int
    added_by: int | None
    added_at: datetime


@dataclass(frozen=True)
class SpendEntry:
    id: int
    guild_id: int
    job_id: int | None
    amount_usd: Decimal
    kind: str
    note: str | None
    created_at: datetime


@dataclass(frozen=True)
class UserData:
    """Everything stored about one member in one guild (for a privacy request)."""

    guild_id: int
    user_id: int
    examples: tuple[ExampleRecord, ...]
    votes: tuple[Vote, ...]
    consent: Consent | None
    authored_turns: dict[int, tuple[int, ...]] = field(default_factory=dict)
    """Example id to the indexes of the turns the member wrote in examples captured by
    others (their own contributions' turns are theirs unless listed otherwise)."""


@dataclass(frozen=True)
class UserDeletion:
    """What a privacy deletion removed."""

    examples: int
    votes: int
    consents: int
    voted_examples: tuple[int, ...] = ()
    """Examples the deleted votes were on (those still there need their review post
    redrawn)."""
    review_posts: tuple[Any, ...] = ()
    """The review posts (:class:`storage.review_posts.ReviewPost`) of the deleted examples:
    the caller deletes those messages, so no copy of the text stays in Discord."""

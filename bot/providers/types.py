"""The records a provider returns: plain frozen dataclasses, independent of the SDK.

Field names follow OpenAI's API (which every backend speaks), times are Unix seconds, and
anything a backend may leave out is optional.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

FilePurpose = Literal["fine-tune", "batch", "user_data", "evals", "assistants", "vision"]
JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
FINISHED_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class ChatMessage(TypedDict):
    """One turn of a conversation sent to a chat model."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class RemoteFile:
    """A file stored at the backend (``purpose="fine-tune"`` for training data)."""

    id: str
    filename: str
    bytes: int
    purpose: str
    created_at: int
    status: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """What to fine-tune. ``None`` hyperparameters mean "the backend decides" (``auto``).

    ``metadata`` (at most 16 string pairs) comes back on the job and in job lists: put our
    own job id there, so a start can be reconciled (:meth:`Provider.find_jobs`).
    """

    model: str
    training_file: str
    validation_file: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def hyperparameters(self) -> dict[str, int | float]:
        """The hyperparameters that were set, under OpenAI's names."""
        values = {
            "n_epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate_multiplier": self.learning_rate_multiplier,
        }
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class JobError:
    """Why a job failed, in the backend's words."""

    code: str
    message: str
    param: str | None = None


@dataclass(frozen=True)
class Job:
    """A fine-tuning job as the backend sees it now."""

    id: str
    status: str
    model: str
    created_at: int
    training_file: str
    validation_file: str | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    estimated_finish: int | None = None
    trained_tokens: int | None = None
    error: JobError | None = None
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    """Resolved by the backend once the job runs (``n_epochs`` etc.; ``"auto"`` before)."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    result_files: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        """Succeeded, failed or cancelled: nothing more will happen to it."""
        return self.status in FINISHED_STATUSES


@dataclass(frozen=True)
class JobEvent:
    """One event of a job; ``type == "metrics"`` events carry ``data`` (step, losses)."""

    id: str
    created_at: int
    level: str
    message: str
    type: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """A model saved during a job (usable for chat like the final model)."""

    id: str
    created_at: int
    step: int
    model: str
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    """A model the backend serves; ``shutdown_date`` (``YYYY-MM-DD``) when it is retiring."""

    id: str
    created: int
    owned_by: str
    shutdown_date: str | None = None


@dataclass(frozen=True)
class Usage:
    """Tokens a chat completion used."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class ChatReply:
    """A whole (non-streamed) chat answer."""

    text: str
    model: str
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class Moderation:
    """The moderation verdict on one text; ``categories`` lists the flagged ones."""

    flagged: bool
    categories: tuple[str, ...] = ()

"""Wire objects of the fine-tuning API: ``fine_tuning.job``, its events and checkpoints.

The field sets and shapes follow the SDK types (``FineTuningJob``,
``FineTuningJobEvent``, ``FineTuningJobCheckpoint``) and the OpenAPI spec; the
training metrics are a deterministic, decreasing loss curve derived from the job seed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from .training_data import Example

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class JobEvent:
    """A ``fine_tuning.job.event``."""

    id: str
    created_at: int
    level: str
    message: str
    type: str = "message"
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The wire object."""
        return {
            "object": "fine_tuning.job.event",
            "id": self.id,
            "created_at": self.created_at,
            "level": self.level,
            "message": self.message,
            "data": self.data,
            "type": self.type,
        }


@dataclass
class Checkpoint:
    """A ``fine_tuning.job.checkpoint`` saved at the end of an epoch."""

    id: str
    created_at: int
    model: str
    job_id: str
    step: int
    metrics: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """The wire object."""
        return {
            "object": "fine_tuning.job.checkpoint",
            "id": self.id,
            "created_at": self.created_at,
            "fine_tuned_model_checkpoint": self.model,
            "fine_tuning_job_id": self.job_id,
            "step_number": self.step,
            "metrics": self.metrics,
        }


@dataclass
class Job:
    """One fine-tuning job and its schedule on the stand-in clock."""

    id: str
    created_at: int
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    metadata: dict[str, str] | None
    method_type: str
    requested: dict[str, Any]
    integrations: list[dict[str, Any]] | None
    organization_id: str
    ft_name: str
    status: str = "validating_files"
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None
    result_files: list[str] = field(default_factory=list)
    resolved: dict[str, Any] = field(default_factory=dict)
    events: list[JobEvent] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    validation_examples: list[Example] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    next_at: float | None = None
    run_anchor: float = 0.0
    rush_at: float | None = None
    paused_at: float | None = None
    total_steps: int = 0
    steps_done: int = 0
    steps_per_epoch: int = 1
    metric_rows: list[dict[str, float]] = field(default_factory=list)
    seconds_per_step: float = 1.0

    def hyperparameters(self) -> dict[str, Any]:
        """Requested values until validation resolves ``auto``, then the resolved ones."""
        keys = ["batch_size", "learning_rate_multiplier", "n_epochs"]
        if self.method_type == "dpo":
            keys.append("beta")
        return {k: self.resolved.get(k, self.requested.get(k, "auto")) for k in keys}

    def estimated_finish(self) -> int | None:
        """Unix time the job should finish; only while running."""
        if self.status != "running":
            return None
        return int(self.run_anchor + self.total_steps * self.seconds_per_step)

    def to_json(self) -> dict[str, Any]:
        """The ``fine_tuning.job`` object."""
        hyper = self.hyperparameters()
        supervised_keys = {k: v for k, v in hyper.items() if k != "beta"}
        return {
            "object": "fine_tuning.job",
            "id": self.id,
            "model": self.model,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "fine_tuned_model": self.fine_tuned_model,
            "organization_id": self.organization_id,
            "result_files": list(self.result_files),
            "status": self.status,
            "validation_file": self.validation_file,
            "training_file": self.training_file,
            "hyperparameters": supervised_keys,
            "trained_tokens": self.trained_tokens,
            "error": self.error,
            "integrations": self.integrations,
            "seed": self.seed,
            "estimated_finish": self.estimated_finish(),
            "method": {"type": self.method_type, self.method_type: {"hyperparameters": hyper}},
            "metadata": self.metadata,
        }


def _noise(seed: int, step: int, salt: str) -> float:
    digest = hashlib.sha256(f"{seed}:{step}:{salt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 * 2 - 1


def metrics_for(job: Job, step: int) -> dict[str, float]:
    """Deterministic, decreasing loss curve for ``step`` of ``job``."""
    progress = step / max(1, job.total_steps)
    train_loss = 0.15 + 2.2 * math.exp(-4 * progress) + 0.05 * _noise(job.seed, step, "t")
    data: dict[str, float] = {
        "step": step,
        "train_loss": round(train_loss, 6),
        "train_mean_token_accuracy": round(min(1.0, max(0.0, 1 - train_loss / 2.6)), 6),
    }
    if job.validation_file:
        valid_loss = train_loss + 0.12 + 0.05 * _noise(job.seed, step, "v")
        data["valid_loss"] = round(valid_loss, 6)
        data["valid_mean_token_accuracy"] = round(min(1.0, max(0.0, 1 - valid_loss / 2.6)), 6)
    return data

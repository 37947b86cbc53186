"""The contract between the HTTP server (``trainer.server`` and friends) and the ML core.

The server owns files, jobs, events, the queue and SQLite state; it never imports torch.
The ML core (``trainer.ml``) owns models, tokenizers, LoRA training and generation.
The server talks to the core only through :class:`Engine`, so either side can change
without touching the other, and the server's tests run against a real engine built on a
tiny, randomly initialised model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

Example = Mapping[str, Any]
"""One training example in OpenAI chat format: ``{"messages": [...], "tools"?: [...]}``."""


class TrainingCancelled(Exception):
    """Raised by :meth:`Engine.train` when ``callbacks.should_stop()`` returned True."""


class TrainingError(Exception):
    """A training failure worth showing to the user (bad data for this tokenizer, OOM...)."""

    def __init__(self, message: str, code: str = "training_failed") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Hyperparameters:
    """Resolved hyperparameters: no ``"auto"`` left."""

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float


@dataclass(frozen=True)
class StepMetrics:
    step: int
    total_steps: int
    epoch: int
    train_loss: float
    train_mean_token_accuracy: float
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    """On the whole validation file: set on the last step of each epoch (the final step too)."""
    full_valid_mean_token_accuracy: float | None = None


RESUME_STATE_FILE = "trainer_state.pt"
"""The file of a checkpoint directory that only resuming needs (optimizer, scheduler and RNG
state, about twice the adapter's size). An engine keeps it in the latest recorded checkpoint
while training; the server deletes it from every checkpoint once the job has finished."""


@dataclass(frozen=True)
class Checkpoint:
    """An end-of-epoch checkpoint: a loadable adapter plus what is needed to resume."""

    step: int
    epoch: int
    path: Path
    metrics: StepMetrics


@dataclass(frozen=True)
class TrainRequest:
    base_model: str
    train_examples: Sequence[Example]
    valid_examples: Sequence[Example] | None
    hyperparameters: Hyperparameters
    seed: int
    output_dir: Path
    """Where the final adapter and the per-epoch checkpoints are written."""
    resume_from: Path | None = None
    """A checkpoint directory this job wrote earlier; training continues after it."""


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    trained_tokens: int
    steps: int
    final_metrics: StepMetrics | None


class TrainCallbacks(Protocol):
    def on_start(self, total_steps: int, seconds_per_step: float | None) -> None: ...
    def on_step(self, metrics: StepMetrics) -> None: ...
    def on_checkpoint(self, checkpoint: Checkpoint) -> None: ...
    def should_stop(self) -> bool: ...


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: Sequence[str] = ()
    seed: int | None = None


@dataclass
class Generation:
    """Streamed output: iterate ``deltas`` for text pieces; the fields are final afterwards.

    :meth:`cancel` (from any thread) ends the generation before its next token: for a
    client that has gone away. Closing ``deltas`` (or dropping it) frees its memory too.
    """

    deltas: Iterator[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    extra: dict[str, Any] = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Stop generating: ``deltas`` ends (``finish_reason`` stays ``"length"``) before the next token."""
        self.cancelled.set()


class Engine(Protocol):
    def base_models(self) -> list[str]:
        """Ids of the base models this engine can train and serve."""
        ...

    def resolve_hyperparameters(self, n_examples: int, requested: Mapping[str, Any]) -> Hyperparameters:
        """Turn ``"auto"``/missing values into numbers (epochs: OpenAI's heuristic)."""
        ...

    def count_tokens(self, base_model: str, example: Example) -> int:
        """Tokens of one example as this model trains on it (its own tokenizer and template)."""
        ...

    def train(self, request: TrainRequest, callbacks: TrainCallbacks) -> TrainResult:
        """Blocking LoRA fine-tune; the server runs it in a worker thread."""
        ...

    def generate(
        self,
        base_model: str,
        adapter_dir: Path | None,
        messages: Sequence[Mapping[str, Any]],
        params: GenerationParams,
    ) -> Generation:
        """Chat completion through the model's chat template, optionally with a LoRA adapter.

        Message text is only ever text: markup of the tokenizer (``<|im_start|>``...) written
        in a message never becomes a control token. A prompt that leaves no room in the
        model's context raises a 400 :class:`trainer.errors.APIError`
        (``context_length_exceeded``); other bad input raises ``ValueError``.
        """
        ...

"""The one narrow interface through which the bot reaches any backend.

Everything the bot does with a model server goes through :class:`Provider`: files, jobs,
their events and checkpoints, models, chat and moderation. Every method raises only
:class:`~bot.providers.errors.ProviderError` subclasses, with messages safe to show.
Callers in interactions defer first: see :mod:`bot.providers.config` for the timeouts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

from bot.providers.types import (
    ChatMessage,
    ChatReply,
    Checkpoint,
    FilePurpose,
    Job,
    JobEvent,
    JobSpec,
    ModelInfo,
    Moderation,
    RemoteFile,
    Usage,
)


class ChatStream(Protocol):
    """A streamed chat answer: iterate for text deltas; afterwards ``usage`` and
    ``finish_reason`` are set (``usage`` when the backend reports it). Use it as
    ``async with``, so a stream left early is closed (and the backend stops generating)."""

    usage: Usage | None
    finish_reason: str | None

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def __aenter__(self) -> ChatStream: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    """A fine-tuning and chat backend (see the module docstring)."""

    label: str
    """How members are told which backend this is ("OpenAI", "the tunecord trainer")."""

    # -- files --------------------------------------------------------------------------
    async def upload_file(self, path: Path, *, purpose: FilePurpose = "fine-tune") -> RemoteFile:
        """Upload the file at ``path``, streamed from disk (never read whole into memory)."""
        ...

    async def delete_file(self, file_id: str) -> None:
        """Remove an uploaded file (a missing one is not an error)."""
        ...

    # -- jobs ---------------------------------------------------------------------------
    async def create_job(self, spec: JobSpec) -> Job:
        """Start a fine-tune. Retried only where the job provably was not created (429, a
        connection never made); an answer lost in flight raises
        :class:`~bot.providers.errors.Unavailable` with ``outcome_unknown=True``."""
        ...

    async def start_job_once(self, spec: JobSpec, identity: Mapping[str, str]) -> Job:
        """Start ``spec`` unless a job whose metadata contains ``identity`` exists already;
        an answer lost in flight is reconciled through the job list before any retry, so
        a retried, doubled or interrupted start makes one job. ``identity`` must be part
        of ``spec.metadata``."""
        ...

    async def get_job(self, job_id: str) -> Job:
        """The job now (:class:`~bot.providers.errors.NotFound` if the backend has none)."""
        ...

    async def find_jobs(self, metadata: Mapping[str, str], *, limit: int = 100) -> list[Job]:
        """Jobs whose metadata contains every pair of ``metadata``, newest first."""
        ...

    async def cancel_job(self, job_id: str) -> Job:
        """Ask the backend to stop the job; returns it (``cancelled`` once it stopped)."""
        ...

    async def events_since(self, job_id: str, cursor: str | None) -> list[JobEvent]:
        """The job's events after the event ``cursor`` (all of them for ``None``), oldest
        first. Store the last one's ``id`` as the next cursor. A cursor the backend no longer
        lists gives all events again: skip ids already posted."""
        ...

    async def checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The job's saved checkpoints, oldest first."""
        ...

    # -- models -------------------------------------------------------------------------
    async def list_models(self) -> list[ModelInfo]:
        """Every model the backend serves (base and fine-tuned)."""
        ...

    async def get_model(self, model_id: str) -> ModelInfo:
        """One model (:class:`~bot.providers.errors.ModelNotFound` if gone)."""
        ...

    async def delete_model(self, model_id: str) -> None:
        """Delete a fine-tuned model."""
        ...

    # -- chat ---------------------------------------------------------------------------
    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatReply:
        """A whole answer at once."""
        ...

    def stream_chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatStream:
        """An answer as it is generated; the request starts on ``async with`` or the first
        iteration. Opening the stream is retried like any call; a stream that breaks once
        open raises :class:`~bot.providers.errors.Unavailable` (the text received so far
        stays the caller's)."""
        ...

    # -- moderation ---------------------------------------------------------------------
    async def moderate(self, texts: Sequence[str]) -> list[Moderation] | None:
        """One verdict per text, or ``None`` when the backend has no moderation endpoint
        (found out once, on the first call)."""
        ...

    async def close(self) -> None:
        """Close the connections (idempotent)."""
        ...

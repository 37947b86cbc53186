"""The one :class:`~bot.providers.interface.Provider` implementation: the official async
``openai`` SDK against a configurable ``base_url``.

It serves the bundled trainer, OpenAI while an account may still train, and any
OpenAI-compatible server. One ``AsyncOpenAI`` client per provider holds the connection
pool, with the timeouts of :mod:`bot.providers.config`. The SDK's own retries are off
(``max_retries=0``): :meth:`OpenAICompatProvider._call` retries instead, so that

* a job creation is only repeated when it provably did not happen (a 429, a connection
  never made) and otherwise reconciled through the job list (:meth:`start_job_once`);
* a ``retry-after`` longer than :attr:`ProviderConfig.max_retry_wait` is reported at once
  instead of keeping a member waiting;
* every retry and every failure is logged once, with the operation, status, code and
  request id, and never the key.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx2
import openai
from openai import AsyncOpenAI, AsyncStream

from bot.providers import convert
from bot.providers.config import NO_KEY, ProviderConfig
from bot.providers.errors import (
    BadRequest,
    ContextTooLong,
    NotFound,
    ProviderError,
    RateLimited,
    Unavailable,
)
from bot.providers.translate import (
    TIMED_OUT,
    connection_never_made,
    response_headers,
    scrub,
    translate,
)
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

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BACKOFF = 8.0
MODERATION_BATCH = 32
"""Texts per moderation request."""
PAGE_LIMIT = 100
MAX_PAGES = 50
"""Pages read by one listing at most (5,000 events or jobs)."""
CHAT_PATH = "/chat/completions"
"""Chat completions, relative to the client's ``base_url``."""

_SDK_ERRORS = (openai.OpenAIError, httpx2.HTTPError)


class OpenAICompatProvider:
    """See the module docstring; construct with a :class:`ProviderConfig`."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.label = config.label
        self.client = AsyncOpenAI(
            api_key=config.api_key or NO_KEY,
            base_url=config.base_url,
            timeout=httpx2.Timeout(config.timeout, connect=config.connect_timeout),
            max_retries=0,
        )
        self._moderation: bool | None = None  # unknown until the first call
        self._closed = False

    def __repr__(self) -> str:
        return f"OpenAICompatProvider({self.label!r}, {self.config.base_url!r})"

    # -- the retry loop -------------------------------------------------------------------
    async def _call(
        self,
        operation: str,
        request: Callable[[], Awaitable[T]],
        *,
        subject: str | None = None,
        only_if_not_sent: bool = False,
    ) -> T:
        """``await request()``, retried per the config; SDK errors become ProviderErrors.

        ``only_if_not_sent``: retry only what provably did not reach the backend (429, a
        connection refused); any other failure is raised with ``outcome_unknown``.
        """
        attempt = 0
        while True:
            try:
                return await request()
            except _SDK_ERRORS as exc:
                error = self._translate(exc, operation, subject)
                wait = self._retry_wait(exc, error, attempt, only_if_not_sent)
                if wait is None:
                    if only_if_not_sent and self._maybe_sent(exc, error):
                        error.outcome_unknown = True
                    self._log_failure(operation, exc, error)
                    raise error from None
                attempt += 1
                log.warning(
                    "%s on %s: %s; retrying in %.1fs (retry %d of %d)",
                    operation, self.label, _status_text(exc), wait, attempt, self.config.max_retries,
                )  # fmt: skip
            await asyncio.sleep(wait)

    def _translate(self, exc: BaseException, operation: str, subject: str | None) -> ProviderError:
        return translate(exc, label=self.label, key_setting=self.config.key_setting,
                         operation=operation, subject=subject, secret=self.config.api_key)  # fmt: skip

    def _retry_wait(
        self, exc: BaseException, error: ProviderError, attempt: int, only_if_not_sent: bool
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up now."""
        if attempt >= self.config.max_retries:
            return None
        headers = response_headers(exc)
        advice = headers.get("x-should-retry") if headers is not None else None
        if advice == "false" or (not error.retryable and advice != "true"):
            return None
        if only_if_not_sent and self._maybe_sent(exc, error):
            return None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            if error.retry_after > self.config.max_retry_wait:
                return None
            return error.retry_after
        backoff = min(self.config.backoff * 2**attempt, MAX_BACKOFF)
        return backoff * (1 - 0.25 * random.random())  # noqa: S311 - jitter, not crypto

    @staticmethod
    def _maybe_sent(exc: BaseException, error: ProviderError) -> bool:
        """Whether the request may have taken effect although it failed."""
        if isinstance(error, RateLimited):
            return False
        if isinstance(error, Unavailable):
            return not connection_never_made(exc)
        return False

    def _log_failure(self, operation: str, exc: BaseException, error: ProviderError) -> None:
        """One line per failed call: WARNING when the backend is at fault or refuses, INFO for
        answers about the request itself (no such job, too long, bad value)."""
        request_id = getattr(exc, "request_id", None)
        quiet = isinstance(error, NotFound | ContextTooLong | BadRequest)
        log.log(
            logging.INFO if quiet else logging.WARNING,
            "%s on %s failed: %s (%s%s%s)",
            operation,
            self.label,
            scrub(str(error), self.config.api_key),
            _status_text(exc),
            f", code {error.code}" if error.code else "",
            f", request {request_id}" if request_id else "",
        )

    # -- files ----------------------------------------------------------------------------
    async def upload_file(self, path: Path, *, purpose: FilePurpose = "fine-tune") -> RemoteFile:
        path = Path(path)

        async def send() -> Any:
            with path.open("rb") as stream:  # httpx2 sends it in chunks; reopened per attempt
                return await self.client.files.create(
                    file=(path.name, stream, "application/jsonl"), purpose=purpose
                )

        return convert.remote_file(await self._call("upload_file", send, subject=path.name))

    async def delete_file(self, file_id: str) -> None:
        try:
            await self._call("delete_file", lambda: self.client.files.delete(file_id), subject=file_id)
        except ProviderError as exc:
            if exc.status != 404:
                raise

    # -- jobs -----------------------------------------------------------------------------
    async def create_job(self, spec: JobSpec) -> Job:
        body: dict[str, Any] = {"model": spec.model, "training_file": spec.training_file}
        if spec.validation_file:
            body["validation_file"] = spec.validation_file
        if spec.suffix:
            body["suffix"] = spec.suffix
        if spec.seed is not None:
            body["seed"] = spec.seed
        if spec.metadata:
            body["metadata"] = dict(spec.metadata)
        hyperparameters = spec.hyperparameters()
        if hyperparameters:
            body["method"] = {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}
        extra = dict(self.config.job_extra_body) or None
        created = await self._call(
            "create_job",
            lambda: self.client.fine_tuning.jobs.create(**body, extra_body=extra),
            subject=spec.model,
            only_if_not_sent=True,
        )
        log.info("%s started fine-tuning job %s of %s", self.label, created.id, spec.model)
        return convert.job(created)

    async def start_job_once(self, spec: JobSpec, identity: Mapping[str, str]) -> Job:
        if not identity or any(spec.metadata.get(k) != v for k, v in identity.items()):
            raise ValueError("identity must be a non-empty part of spec.metadata")
        unknown: ProviderError | None = None
        for _ in range(self.config.max_retries + 1):
            existing = await self._jobs_named(identity, unknown)
            if existing:
                if unknown is not None:
                    log.info("%s: the job for %s had started: %s", self.label, dict(identity), existing[0].id)
                return existing[0]
            if unknown is None or unknown.code != TIMED_OUT:
                try:
                    return await self.create_job(spec)
                except ProviderError as exc:
                    if not exc.outcome_unknown:
                        raise
                    unknown = exc
            # else a creation that timed out may still be applied: never send another,
            # only look for it again (the follower keeps looking after this start gives up)
            log.warning(
                "%s: no answer to starting a job for %s; checking the job list in %.1fs",
                self.label, dict(identity), self.config.reconcile_delay,
            )  # fmt: skip
            await asyncio.sleep(self.config.reconcile_delay)
        existing = await self._jobs_named(identity, unknown)
        if existing:
            return existing[0]
        assert unknown is not None
        raise unknown

    async def _jobs_named(
        self, identity: Mapping[str, str], unknown: ProviderError | None
    ) -> list[Job]:
        """The job named by ``identity``, if any; once a creation went unanswered, a list
        that fails leaves the outcome unknown (the job may exist) rather than failed."""
        try:
            return await self.find_jobs(identity, limit=1)
        except ProviderError:
            if unknown is None:
                raise
            raise unknown from None

    async def get_job(self, job_id: str) -> Job:
        found = await self._call(
            "get_job", lambda: self.client.fine_tuning.jobs.retrieve(job_id), subject=job_id
        )
        return convert.job(found)

    async def find_jobs(self, metadata: Mapping[str, str], *, limit: int = 100) -> list[Job]:
        wanted = dict(metadata)
        query: dict[str, Any] = {"metadata": wanted} if wanted else {}
        matches: list[Job] = []
        async with aclosing(self._items("find_jobs", self.client.fine_tuning.jobs.list, **query)) as items:
            async for item in items:  # filtered again: a server may ignore the metadata query
                if all((item.metadata or {}).get(k) == v for k, v in wanted.items()):
                    matches.append(convert.job(item))
                    if len(matches) >= limit:
                        break
        return matches

    async def cancel_job(self, job_id: str) -> Job:
        cancelled = await self._call(
            "cancel_job", lambda: self.client.fine_tuning.jobs.cancel(job_id), subject=job_id
        )
        log.info("%s: cancel requested for job %s", self.label, job_id)
        return convert.job(cancelled)

    async def events_since(self, job_id: str, cursor: str | None) -> list[JobEvent]:
        newest_first: list[JobEvent] = []
        list_events = self.client.fine_tuning.jobs.list_events
        async with aclosing(self._items("events_since", list_events, job_id, subject=job_id)) as items:
            async for item in items:
                if cursor is not None and item.id == cursor:
                    break
                newest_first.append(convert.event(item))
        return newest_first[::-1]

    async def checkpoints(self, job_id: str) -> list[Checkpoint]:
        found: list[Checkpoint] = []
        list_checkpoints = self.client.fine_tuning.jobs.checkpoints.list
        async with aclosing(self._items("checkpoints", list_checkpoints, job_id, subject=job_id)) as items:
            async for item in items:
                found.append(convert.checkpoint(item))
        return sorted(found, key=lambda c: (c.step, c.created_at))

    async def _items(
        self, operation: str, fetch: Callable[..., Awaitable[Any]], *args: Any,
        subject: str | None = None, **query: Any,
    ) -> AsyncGenerator[Any, None]:  # fmt: skip
        """Every item of a cursor-paged listing, page by page (at most :data:`MAX_PAGES`)."""
        after: str | None = None
        for _ in range(MAX_PAGES):
            cursor = {"after": after} if after else {}
            page = await self._call(
                operation, functools.partial(fetch, *args, limit=PAGE_LIMIT, **cursor, **query),
                subject=subject,
            )  # fmt: skip
            for item in page.data:
                yield item
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id

    # -- models ---------------------------------------------------------------------------
    async def list_models(self) -> list[ModelInfo]:
        page = await self._call("list_models", lambda: self.client.models.list())
        return [convert.model(item) for item in page.data]

    async def get_model(self, model_id: str) -> ModelInfo:
        found = await self._call(
            "get_model", lambda: self.client.models.retrieve(model_id), subject=model_id
        )
        return convert.model(found)

    async def delete_model(self, model_id: str) -> None:
        await self._call("delete_model", lambda: self.client.models.delete(model_id), subject=model_id)
        log.info("%s deleted model %s", self.label, model_id)

    # -- chat -----------------------------------------------------------------------------
    def _chat_body(
        self, model: str, messages: Sequence[ChatMessage], max_tokens: int | None,
        temperature: float | None,
    ) -> dict[str, Any]:  # fmt: skip
        """The request body as sent: chat goes through the SDK's own ``post`` (same client,
        key, retries and error classes) with the body as plain JSON and the answer as plain
        data, which skips the SDK's per-field transform of every message and its model
        construction of every streamed chunk: about 70% of a short answer's client time
        (``bench.bench_chat_overhead``). Extra fields are merged in, as ``extra_body`` is."""
        body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
        if max_tokens is not None:
            body["max_completion_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        if self.config.chat_extra_body:
            body.update(self.config.chat_extra_body)
        return body

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatReply:
        body = self._chat_body(model, messages, max_tokens, temperature)
        reply: object = await self._call(
            "chat",
            lambda: self.client.post(CHAT_PATH, body=body, cast_to=object),
            subject=model,
        )
        answer = reply if isinstance(reply, dict) else {}
        choices = answer.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = choice.get("message") or {}
        content = message.get("content") if isinstance(message, dict) else None
        return ChatReply(
            text=content if isinstance(content, str) else "",
            model=str(answer.get("model") or model),
            finish_reason=choice.get("finish_reason"),
            usage=_usage(answer.get("usage")),
        )

    def stream_chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> OpenAIChatStream:
        body = self._chat_body(model, messages, max_tokens, temperature)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return OpenAIChatStream(self, model, body)

    # -- moderation -----------------------------------------------------------------------
    async def moderate(self, texts: Sequence[str]) -> list[Moderation] | None:
        if self._moderation is False:
            return None
        verdicts: list[Moderation] = []
        for start in range(0, len(texts), MODERATION_BATCH):
            batch = list(texts[start : start + MODERATION_BATCH])
            try:
                answer = await self._call(
                    "moderate", lambda batch=batch: self.client.moderations.create(input=batch)  # type: ignore[misc]
                )
            except ProviderError as exc:
                if exc.status in (404, 405) and not verdicts:
                    self._moderation = False
                    log.info("%s has no moderation endpoint: texts are not screened", self.label)
                    return None
                raise
            self._moderation = True
            for result in answer.results:
                flags = result.categories.model_dump(by_alias=True)
                verdicts.append(Moderation(
                    flagged=bool(result.flagged),
                    categories=tuple(sorted(name for name, on in flags.items() if on)),
                ))  # fmt: skip
        return verdicts

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.client.close()


class OpenAIChatStream:
    """:class:`~bot.providers.interface.ChatStream` over the SDK's SSE stream."""

    def __init__(self, provider: OpenAICompatProvider, model: str, body: dict[str, Any]) -> None:
        self._provider = provider
        self._model = model
        self._body = body
        self._stream: AsyncStream[object] | None = None
        self._closed = False
        self.usage: Usage | None = None
        self.finish_reason: str | None = None

    async def _open(self) -> AsyncStream[object]:
        if self._stream is not None:
            return self._stream
        if self._closed:
            raise RuntimeError("the chat stream is closed")
        client = self._provider.client
        stream: AsyncStream[object] = await self._provider._call(
            "chat",
            lambda: client.post(
                CHAT_PATH, body=self._body, cast_to=object, stream=True,
                stream_cls=AsyncStream[object],
            ),  # fmt: skip
            subject=self._model,
        )
        self._stream = stream
        return stream

    async def __aenter__(self) -> OpenAIChatStream:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._deltas()

    async def _deltas(self) -> AsyncIterator[str]:
        stream = await self._open()
        try:
            async for chunk in stream:
                if not isinstance(chunk, dict):
                    continue
                usage = _usage(chunk.get("usage"))
                if usage is not None:
                    self.usage = usage
                for choice in chunk.get("choices") or ():
                    if not isinstance(choice, dict):
                        continue
                    if choice.get("finish_reason") is not None:
                        self.finish_reason = str(choice["finish_reason"])
                    delta = choice.get("delta")
                    content = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(content, str) and content:
                        yield content
        except _SDK_ERRORS as exc:
            error = self._provider._translate(exc, "chat", self._model)
            if isinstance(error, Unavailable):  # it had started: the answer broke off
                error = Unavailable(
                    f"{self._provider.label} stopped in the middle of the answer; try again in a "
                    "minute.", status=error.status, code=error.code,
                )  # fmt: skip
            self._provider._log_failure("chat stream", exc, error)
            raise error from None

    async def aclose(self) -> None:
        self._closed = True
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.close()


def _usage(value: object) -> Usage | None:
    """Token usage from a chat answer or chunk as plain data (None when absent)."""
    if not isinstance(value, dict):
        return None
    prompt, completion, total = (
        value.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
    )
    if not (isinstance(prompt, int) and isinstance(completion, int) and isinstance(total, int)):
        return None
    return Usage(prompt, completion, total)


def _status_text(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    if status is not None:
        return f"status {status}"
    cause = exc.__cause__ or exc.__context__
    return type(cause).__name__ if cause is not None else type(exc).__name__

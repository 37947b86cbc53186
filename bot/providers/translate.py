"""From the SDK's exceptions to :mod:`bot.providers.errors`, with messages for members.

:func:`translate` decides the class and writes the sentence; the backend's own words are
quoted only through :func:`backend_words`, which shortens them and removes anything shaped
like a key. :func:`retry_after` reads the backend's ``retry-after-ms``/``retry-after``.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx2
import openai

from bot.providers.errors import (
    TRAINING_ALTERNATIVES,
    AuthenticationFailed,
    BadRequest,
    ContextTooLong,
    ModelNotFound,
    NotFound,
    ProviderError,
    RateLimited,
    TrainingNotAvailable,
    Unavailable,
)

TIMED_OUT = "timed_out"
"""The ``code`` of an :class:`~bot.providers.errors.Unavailable` raised because no answer
came in time: the request may still be applied (a job creation must not be sent again)."""
MAX_QUOTED = 300
"""The most characters of a backend's message quoted to members."""

_KEYLIKE = re.compile(r"(?i)\b(?:sk|rk|pk|sess)[-_][A-Za-z0-9*_\-.]{6,}|bearer\s+\S+")
"""OpenAI-style keys (also masked ones such as ``sk-abc****wxyz``) and bearer headers."""


def backend_words(body: object, fallback: str, secret: str | None) -> str:
    """The backend's error message (from an OpenAI-shaped body), scrubbed and shortened."""
    text = ""
    if isinstance(body, Mapping):
        message = body.get("message")
        if message is None and isinstance(body.get("error"), Mapping):
            message = body["error"].get("message")
        if message is None and body.get("detail") is not None:
            message = body.get("detail")
        text = str(message) if message is not None else ""
    elif isinstance(body, str):
        text = body
    text = scrub(" ".join(text.split()), secret) or fallback
    if len(text) > MAX_QUOTED:
        text = text[: MAX_QUOTED - 1].rstrip() + "…"
    return text


def scrub(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` and without anything that looks like an API key."""
    if secret:
        text = text.replace(secret, "[key]")
    return _KEYLIKE.sub("[key]", text)


def retry_after(headers: Mapping[str, str] | httpx2.Headers | None) -> float | None:
    """Seconds the backend asked to wait (``retry-after-ms``, then ``retry-after`` as
    seconds or an HTTP date), or ``None``."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def _wait_words(seconds: float | None) -> str:
    if seconds is None:
        return "in a minute"
    if seconds < 1.5:
        return "in a moment"
    if seconds < 90:
        return f"in {round(seconds)} seconds"
    return f"in {round(seconds / 60)} minutes"


def translate(
    exc: BaseException,
    *,
    label: str,
    key_setting: str,
    operation: str,
    subject: str | None = None,
    secret: str | None = None,
) -> ProviderError:
    """The :class:`ProviderError` for ``exc`` raised by ``operation`` on ``subject``.

    ``operation`` is one of the provider's method names (``create_job``, ``chat``...):
    it decides what a 403 or a 404 means.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APIResponseValidationError):
        return Unavailable(f"{label} sent an answer tunecord could not read; try again later.")
    if isinstance(exc, openai.APITimeoutError) or isinstance(exc, httpx2.TimeoutException):
        return Unavailable(
            f"{label} did not answer in time; try again in a minute.", code=TIMED_OUT
        )
    if isinstance(exc, openai.APIConnectionError):
        if connection_never_made(exc):
            return Unavailable(f"Cannot reach {label} right now; try again in a minute.")
        return Unavailable(f"The connection to {label} broke off; try again in a minute.")
    if isinstance(exc, httpx2.TransportError):
        return Unavailable(f"The connection to {label} broke off; try again in a minute.")
    if isinstance(exc, openai.APIStatusError):
        return _from_status(exc, label, key_setting, operation, subject, secret)
    if isinstance(exc, openai.APIError):  # an error event inside a stream: no status
        words = backend_words(exc.body, "it stopped answering", secret)
        return Unavailable(f"{label} failed while answering ({words}); try again in a minute.")
    return Unavailable(f"{label} sent an answer tunecord could not read; try again later.")


def _from_status(
    exc: openai.APIStatusError,
    label: str,
    key_setting: str,
    operation: str,
    subject: str | None,
    secret: str | None,
) -> ProviderError:
    status, code = exc.status_code, exc.code
    words = backend_words(exc.body, f"status {status}", secret)
    if status == 401:
        return AuthenticationFailed(
            f"{label} refused tunecord's API key; the bot's operator needs to check {key_setting}.",
            status=status,
            code=code,
        )
    if operation == "create_job" and status in (403, 404, 405):
        reason = words if status == 403 else "it has no fine-tuning API"
        return TrainingNotAvailable(
            f"{label} will not start fine-tuning jobs ({reason}). {TRAINING_ALTERNATIVES}",
            status=status,
            code=code,
        )
    if status == 429:
        wait = retry_after(exc.response.headers)
        if code == "insufficient_quota":
            quota = RateLimited(
                f"{label} says its quota is used up ({words}); the bot's operator needs to "
                "check the account's billing.",
                code=code,
            )
            quota.retryable = False  # waiting will not help
            return quota
        return RateLimited(f"{label} is busy right now; try again {_wait_words(wait)}.",
                           retry_after=wait, code=code)  # fmt: skip
    if status >= 500 or status == 408:
        return Unavailable(
            f"{label} had a problem (error {status}); try again in a minute.", status=status, code=code
        )
    if code == "context_length_exceeded":
        return ContextTooLong(
            "This conversation is too long for the model: start a new thread or ask a shorter "
            "question.",
            status=status,
            code=code,
        )
    if code == "model_not_found" or (status == 404 and operation in MODEL_OPERATIONS):
        what = f"model `{subject}`" if subject else "such model"
        return ModelNotFound(
            f"{label} has no {what} (it may have been deleted or retired).", model=subject, code=code
        )
    if status == 404:
        what = f"`{subject}`" if subject else "what was asked for"
        return NotFound(f"{label} has no {what}.", status=status, code=code)
    return BadRequest(
        f"{label} refused the request: {words}", backend_message=words, status=status, code=code
    )


MODEL_OPERATIONS = frozenset({"chat", "get_model", "delete_model"})


def response_headers(exc: BaseException) -> httpx2.Headers | None:
    """The headers of the answer behind ``exc``, when there was one."""
    response: Any = getattr(exc, "response", None)
    return response.headers if isinstance(response, httpx2.Response) else None


def connection_never_made(exc: BaseException) -> bool:
    """True when the request cannot have reached the backend (refused or unreachable)."""
    cause = exc.__cause__ or exc.__context__
    return isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout) or isinstance(
        cause, httpx2.ConnectError | httpx2.ConnectTimeout
    )

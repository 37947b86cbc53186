"""Where a provider connects and how patiently: one :class:`ProviderConfig` per backend.

Timeouts and retries are chosen for Discord, not for batch jobs:

* **connect** (``TUNECORD_PROVIDER_CONNECT_TIMEOUT``, 5 s): a backend that does not accept
  the connection by then is reported unavailable instead of keeping a member waiting.
* **read/write** (``TUNECORD_PROVIDER_TIMEOUT``, 120 s): the longest silence allowed on an
  open connection. A streamed chat's first token, a whole non-streamed answer from a CPU
  trainer, or a large upload all fit; a wedged backend does not hang a command forever.
* No backend answers within Discord's 3 seconds reliably: every interaction that calls a
  provider must be **deferred first** (``interaction.response.defer``), after which the
  follow-up may come within 15 minutes. Chat in channels shows the typing indicator.
* **retries** (``TUNECORD_PROVIDER_MAX_RETRIES``, 2): after a 429, a 5xx, a timeout or a
  broken connection, with the backend's ``retry-after`` honoured up to
  :attr:`ProviderConfig.max_retry_wait` (longer waits are reported at once as
  :class:`~bot.providers.errors.RateLimited`, so a member is told instead of left waiting),
  otherwise exponential backoff from :attr:`ProviderConfig.backoff`. Worst case for a call:
  3 attempts x 120 s plus a few seconds of waiting, well inside a deferred interaction's
  15 minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bot.settings import Settings

OPENAI_URL = "https://api.openai.com/v1"
NO_KEY = "no-key"
"""Sent as the bearer key to a backend configured without one (the SDK requires a value;
never falling back to ``OPENAI_API_KEY`` from the environment keeps that key at OpenAI)."""


@dataclass(frozen=True)
class ProviderConfig:
    """Everything :class:`~bot.providers.openai_compat.OpenAICompatProvider` needs."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    label: str = "the model server"
    """How members are told which backend answered ("OpenAI", "the tunecord trainer")."""
    key_setting: str = "OPENAI_API_KEY"
    """The setting an operator fixes when the key is refused."""
    connect_timeout: float = 5.0
    timeout: float = 120.0
    max_retries: int = 2
    max_retry_wait: float = 20.0
    """The longest ``retry-after`` waited for inside one call."""
    backoff: float = 0.5
    """First wait before retrying without ``retry-after`` (doubles, up to 8 s, with jitter)."""
    reconcile_delay: float = 2.0
    """How long a job creation that got no answer is given to appear in the job list."""
    job_extra_body: Mapping[str, Any] = field(default_factory=dict, hash=False)
    chat_extra_body: Mapping[str, Any] = field(default_factory=dict, hash=False)


def backend_label(settings: Settings) -> str:
    """The backend's name for members: the trainer, OpenAI, or the other server's host."""
    if settings.backend == "trainer":
        return "the tunecord trainer"
    if not settings.openai_base_url:
        return "OpenAI"
    return f"the model server at {urlsplit(settings.openai_base_url).hostname or 'OPENAI_BASE_URL'}"


def provider_config(
    settings: Settings, base_url: str | None = None, api_key: str | None = None
) -> ProviderConfig:
    """The config for ``settings``' backend; ``base_url``/``api_key`` override them (the
    trainer the bot started listens where it was started, with the key it was given)."""
    if settings.backend == "trainer":
        url = base_url or settings.trainer_url
        key = api_key or settings.trainer_api_key
        key_setting = "TRAINER_API_KEY"
    else:
        url = base_url or settings.openai_base_url or OPENAI_URL
        key = api_key or settings.openai_api_key
        key_setting = "OPENAI_API_KEY"
    return ProviderConfig(
        base_url=url,
        api_key=key,
        label=backend_label(settings),
        key_setting=key_setting,
        connect_timeout=settings.provider_connect_timeout,
        timeout=settings.provider_timeout,
        max_retries=settings.provider_max_retries,
        job_extra_body=dict(settings.provider_extra_body.get("jobs", {})),
        chat_extra_body=dict(settings.provider_extra_body.get("chat", {})),
    )

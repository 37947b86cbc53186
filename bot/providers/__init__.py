"""How the bot reaches a fine-tuning and chat backend.

* :mod:`.interface`: :class:`Provider`, the one narrow interface (files, jobs, events,
  checkpoints, models, chat, moderation when offered);
* :mod:`.openai_compat`: its one implementation, the official async ``openai`` SDK with a
  configurable ``base_url`` (the bundled trainer, OpenAI, any compatible server);
* :mod:`.errors`: what can go wrong, as messages members can read;
* :mod:`.types`: the records returned; :mod:`.config`: timeouts, retries, extra fields.

The composition root calls :func:`build_provider` once; everything else receives the
provider (``bot.provider``).
"""

from __future__ import annotations

from bot.providers.config import ProviderConfig, provider_config
from bot.providers.errors import (
    AuthenticationFailed,
    BadRequest,
    Busy,
    ContextTooLong,
    ModelNotFound,
    NotFound,
    ProviderError,
    RateLimited,
    TrainingNotAvailable,
    Unavailable,
)
from bot.providers.interface import ChatStream, Provider
from bot.providers.openai_compat import OpenAICompatProvider
from bot.providers.types import (
    ChatMessage,
    ChatReply,
    Checkpoint,
    Job,
    JobError,
    JobEvent,
    JobSpec,
    ModelInfo,
    Moderation,
    RemoteFile,
    Usage,
)
from bot.settings import Settings

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "Busy",
    "ChatMessage",
    "ChatReply",
    "ChatStream",
    "Checkpoint",
    "ContextTooLong",
    "Job",
    "JobError",
    "JobEvent",
    "JobSpec",
    "ModelInfo",
    "ModelNotFound",
    "Moderation",
    "NotFound",
    "OpenAICompatProvider",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "RateLimited",
    "RemoteFile",
    "TrainingNotAvailable",
    "Unavailable",
    "Usage",
    "build_provider",
    "provider_config",
]


def build_provider(
    settings: Settings, *, base_url: str | None = None, api_key: str | None = None
) -> Provider:
    """The provider for ``settings``' backend; ``base_url``/``api_key`` point it at the
    trainer the bot started (see :mod:`bot.backend`)."""
    return OpenAICompatProvider(provider_config(settings, base_url, api_key))

"""A loopback stand-in for OpenAI's API (files, fine-tuning, models, chat, moderations).

Usage::

    from tests.standins.openai import OpenAIStandin

    async with OpenAIStandin() as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key=server.config.api_key)

See :mod:`tests.standins.openai.server` for the driver API and
:mod:`tests.standins.openai.fixtures` for the pytest fixtures.
"""

from .chat import ChatRecord, base_answer, system_tag
from .clock import FakeClock
from .errors import TRAINING_NOT_AVAILABLE_MESSAGE, APIErrorResponse
from .faults import Fault, FaultPlan
from .models import BaseModelInfo, FineTunedModel, default_catalogue
from .recording import Exchange
from .server import OpenAIStandin, StandinConfig
from .tokens import billable_tokens, count_messages, default_epochs, encoding_name_for

__all__ = [
    "APIErrorResponse",
    "BaseModelInfo",
    "ChatRecord",
    "Exchange",
    "FakeClock",
    "Fault",
    "FaultPlan",
    "FineTunedModel",
    "OpenAIStandin",
    "StandinConfig",
    "TRAINING_NOT_AVAILABLE_MESSAGE",
    "base_answer",
    "billable_tokens",
    "count_messages",
    "default_catalogue",
    "default_epochs",
    "encoding_name_for",
    "system_tag",
]

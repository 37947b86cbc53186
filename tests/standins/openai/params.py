"""Which body parameters each JSON endpoint accepts (OpenAI refuses the others).

OpenAI answers a body key it does not know with 400 ``invalid_request_error``,
``param: null``, ``code: null`` and the message ``Unrecognized request argument
supplied: foo`` (``arguments … foo, bar`` for several; see :func:`.errors.unrecognized_arguments`).
The sets below are the ``properties`` of the request schemas in the OpenAPI spec
(``CreateChatCompletionRequest`` including its ``allOf`` parts,
``CreateFineTuningJobRequest``, ``CreateModerationRequest``); the stand-in's own
tests check that they still match the spec.
"""

from __future__ import annotations

from typing import Any

from .errors import unrecognized_arguments

CHAT_COMPLETION_PARAMS = frozenset(
    {
        "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
        "max_completion_tokens", "max_tokens", "messages", "metadata", "modalities", "model",
        "moderation", "n", "parallel_tool_calls", "prediction", "presence_penalty",
        "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning_effort",
        "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
        "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
        "verbosity", "web_search_options",
    }
)  # fmt: skip

FINE_TUNING_JOB_PARAMS = frozenset(
    {
        "hyperparameters", "integrations", "metadata", "method", "model", "seed", "suffix",
        "training_file", "validation_file",
    }
)  # fmt: skip

MODERATION_PARAMS = frozenset({"input", "model"})

#: schema name in the spec -> the set the stand-in enforces
SPEC_SCHEMAS = {
    "CreateChatCompletionRequest": CHAT_COMPLETION_PARAMS,
    "CreateFineTuningJobRequest": FINE_TUNING_JOB_PARAMS,
    "CreateModerationRequest": MODERATION_PARAMS,
}


def check_known(body: Any, known: frozenset[str]) -> None:
    """400 ``Unrecognized request argument supplied: …`` for keys outside ``known``."""
    if isinstance(body, dict):
        unknown = [key for key in body if key not in known]
        if unknown:
            raise unrecognized_arguments(unknown)

"""The per-dataset system-prompt policy, the founding guide's choice made explicit.

A system prompt used in training must also be used when chatting with the model; the chat
side asks :func:`bot.services.chat.training_system_prompt` which prompt training used.
"""

from __future__ import annotations

from enum import StrEnum

from bot.dataset.errors import InvalidInput
from bot.dataset.examples import ChatExample


class SystemPromptPolicy(StrEnum):
    INCLUDE = "include"
    """The dataset's system prompt goes first in every exported example."""
    OMIT = "omit"
    """System messages are stripped from every exported example."""
    AS_WRITTEN = "as_written"
    """Examples are exported exactly as contributed."""


def apply_policy(
    example: ChatExample, policy: SystemPromptPolicy | str, system_prompt: str | None
) -> ChatExample:
    """The example as it is written to the training file under ``policy``."""
    policy = SystemPromptPolicy(policy)
    if policy is SystemPromptPolicy.INCLUDE:
        if not system_prompt or not system_prompt.strip():
            raise InvalidInput(
                "The policy `include` needs the dataset to have a system prompt."
            )
        return example.with_system(system_prompt)
    if policy is SystemPromptPolicy.OMIT:
        return example.without_system()
    return example

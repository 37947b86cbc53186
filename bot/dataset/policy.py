"""The per-dataset system-prompt policy, the founding guide's choice made explicit.

A system prompt used in training must also be used when chatting with the model; the
chat side reads :func:`chat_system_prompt` so the two can never drift apart.
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


def chat_system_prompt(policy: SystemPromptPolicy | str, system_prompt: str | None) -> str | None:
    """The system prompt to send when chatting with a model trained under ``policy``.

    ``as_written`` returns the dataset's prompt too: contributed examples normally carry
    it, and a model answers best with the prompt its examples were written under.
    """
    policy = SystemPromptPolicy(policy)
    if policy is SystemPromptPolicy.OMIT:
        return None
    return system_prompt or None

"""A conversation as a member types it: earlier turns as ``User:`` / ``Assistant:`` lines,
then the user message and the assistant reply.

:func:`conversation_from_text` turns the three fields of the contribution form into a
:class:`ChatExample`, or raises :class:`~bot.dataset.errors.InvalidInput` saying exactly
what to fix (which field, which line). :func:`conversation_to_text` is its inverse, for
pre-filling the form when an example is edited.
"""

from __future__ import annotations

import re
from typing import Any

from bot.dataset.errors import InvalidInput
from bot.dataset.examples import ChatExample

_SPEAKER = re.compile(r"^\s*(user|assistant)\s*:\s?(.*)$", re.IGNORECASE)
_ROLE_LABEL = {"user": "User", "assistant": "Assistant"}


def conversation_from_text(user: str, assistant: str, earlier: str = "") -> ChatExample:
    """The example a contributor typed (no system message: the dataset's policy adds one)."""
    user, assistant = user.strip(), assistant.strip()
    if not user:
        raise InvalidInput("The **User message** is empty: write what the user says.")
    if not assistant:
        raise InvalidInput("The **Assistant reply** is empty: write how the model should answer.")
    messages = parse_earlier_turns(earlier)
    if messages and messages[-1]["role"] == "user":
        raise InvalidInput(
            "**Earlier turns** must end with an `Assistant:` line: the **User message** "
            "comes right after it."
        )
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return ChatExample.from_messages(messages)


def parse_earlier_turns(text: str) -> list[dict[str, Any]]:
    """Messages from lines starting ``User:`` or ``Assistant:``; a line without a speaker
    continues the turn above it. Turns must alternate, starting with the user."""
    messages: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _SPEAKER.match(line)
        if match is None:
            if not line.strip():
                if messages:
                    messages[-1]["content"] += "\n"
                continue
            if not messages:
                raise InvalidInput(
                    f"**Earlier turns**, line {number}: start each turn with `User:` or "
                    "`Assistant:`."
                )
            messages[-1]["content"] += "\n" + line
            continue
        role = match.group(1).lower()
        expected = "user" if not messages or messages[-1]["role"] == "assistant" else "assistant"
        if role != expected:
            raise InvalidInput(
                f"**Earlier turns**, line {number}: expected a `{_ROLE_LABEL[expected]}:` "
                f"turn here; turns alternate, starting with `User:`."
            )
        messages.append({"role": role, "content": match.group(2)})
    for message in messages:
        message["content"] = message["content"].strip()
        if not message["content"]:
            raise InvalidInput(
                f"**Earlier turns**: a `{_ROLE_LABEL[message['role']]}:` turn is empty."
            )
    return messages


def conversation_to_text(example: ChatExample) -> tuple[str, str, str]:
    """(user message, assistant reply, earlier turns) of a plain text conversation, for
    pre-filling the form; system messages are left out (the dataset's policy owns them)."""
    turns = [
        m for m in example.messages
        if m.get("role") in _ROLE_LABEL and isinstance(m.get("content"), str)
    ]
    if len(turns) < 2 or turns[-1]["role"] != "assistant" or turns[-2]["role"] != "user":
        raise InvalidInput("This example is not a plain conversation, so it cannot be edited here.")
    earlier = "\n".join(f"{_ROLE_LABEL[m['role']]}: {m['content']}" for m in turns[:-2])
    return turns[-2]["content"], turns[-1]["content"], earlier

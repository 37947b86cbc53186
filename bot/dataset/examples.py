"""Chat examples in OpenAI's fine-tuning format: ``{"messages": [...]}``.

A :class:`ChatExample` is an immutable, already-parsed example. It does not validate:
:mod:`bot.dataset.validation` says whether an example is acceptable and why not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant", "tool", "function")


def canonical_json(obj: Any) -> str:
    """Compact JSON, UTF-8 text kept as is: the exact form written to training files."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class ChatExample:
    """One training conversation; messages are plain dicts in OpenAI's chat format."""

    messages: tuple[dict[str, Any], ...]
    tools: tuple[dict[str, Any], ...] | None = None
    parallel_tool_calls: bool | None = None
    functions: tuple[dict[str, Any], ...] | None = None
    """Legacy function definitions (deprecated by OpenAI in favour of ``tools``)."""

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> ChatExample:
        """Build from a decoded JSON line (``{"messages": [...], "tools"?: [...]}``)."""
        tools = obj.get("tools")
        functions = obj.get("functions")
        return cls(
            messages=tuple(dict(m) for m in obj["messages"]),
            tools=tuple(dict(t) for t in tools) if tools is not None else None,
            parallel_tool_calls=obj.get("parallel_tool_calls"),
            functions=tuple(dict(f) for f in functions) if functions is not None else None,
        )

    @classmethod
    def from_messages(cls, messages: Iterable[Mapping[str, Any]]) -> ChatExample:
        """Build from the founding guide's ``List[Dict]`` form."""
        return cls(messages=tuple(dict(m) for m in messages))

    @classmethod
    def from_json(cls, line: str) -> ChatExample:
        return cls.from_obj(json.loads(line))

    @classmethod
    def from_pairs(
        cls, pairs: Sequence[tuple[str, str]], system: str | None = None
    ) -> ChatExample:
        """A (multi-turn) conversation from (user, assistant) pairs, with an optional system prompt."""
        messages: list[dict[str, Any]] = []
        if system is not None:
            messages.append({"role": "system", "content": system})
        for user, assistant in pairs:
            messages.append({"role": "user", "content": user})
            messages.append({"role": "assistant", "content": assistant})
        return cls(messages=tuple(messages))

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"messages": [dict(m) for m in self.messages]}
        if self.tools is not None:
            obj["tools"] = [dict(t) for t in self.tools]
        if self.parallel_tool_calls is not None:
            obj["parallel_tool_calls"] = self.parallel_tool_calls
        if self.functions is not None:
            obj["functions"] = [dict(f) for f in self.functions]
        return obj

    def to_json(self) -> str:
        """The line an export writes for this example (no trailing newline)."""
        return canonical_json(self.to_obj())

    def content_hash(self) -> str:
        """Stable sha256 over the example's content, independent of key order."""
        text = json.dumps(self.to_obj(), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def system_prompt(self) -> str | None:
        """The content of the first system message, if the example starts with one."""
        for message in self.messages:
            if message.get("role") == "system":
                content = message.get("content")
                return content if isinstance(content, str) else None
        return None

    def without_system(self) -> ChatExample:
        return ChatExample(
            messages=tuple(m for m in self.messages if m.get("role") != "system"),
            tools=self.tools,
            parallel_tool_calls=self.parallel_tool_calls,
            functions=self.functions,
        )

    def with_system(self, system_prompt: str) -> ChatExample:
        """This example with ``system_prompt`` first, replacing any system message."""
        rest = self.without_system().messages
        return ChatExample(
            messages=({"role": "system", "content": system_prompt}, *rest),
            tools=self.tools,
            parallel_tool_calls=self.parallel_tool_calls,
            functions=self.functions,
        )

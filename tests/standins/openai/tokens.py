"""Token counting and the epoch heuristic, written independently of tunecord's code.

Emulates how OpenAI bills a supervised fine-tune, as documented by the cookbook
notebook "Data preparation and analysis for chat model fine-tuning" (see
``openai-finetuning.md`` §2.2 and §2.4):

* per example: ``3`` reply-priming tokens, plus per message ``3`` tokens and the
  encoded length of each string value among ``role``, ``content`` and ``name``
  (``+1`` when a ``name`` is present);
* each example is capped at the model's training-context length;
* ``n_epochs = "auto"`` follows the cookbook: 3, or ``min(25, 100 // n)`` when
  ``3n < 100``, or ``max(1, 25000 // n)`` when ``3n > 25000``;
* ``trained_tokens = n_epochs * sum(min(cap, tokens(example)))``.

The encoding is chosen per base model: ``cl100k_base`` for gpt-3.5/gpt-4, and
``o200k_base`` for gpt-4o, gpt-4.1 and the o-series (tiktoken's own mapping is wrong
for ``ft:gpt-4.1…``, so we map base ids ourselves).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import tiktoken

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-6", "chatgpt-4o", "o1", "o3", "o4")


def encoding_name_for(model: str) -> str:
    """tiktoken encoding for a base model id (``ft:`` ids are reduced to their base)."""
    if model.startswith("ft:"):
        model = model.split(":")[1]
    if model.startswith(_O200K_PREFIXES) or model.startswith("omni-moderation"):
        return "o200k_base"
    return "cl100k_base"


@lru_cache(maxsize=4)
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)


def count_text(text: str, model: str) -> int:
    """Number of tokens in ``text`` for ``model`` (special-token text counted as text)."""
    return len(_encoding(encoding_name_for(model)).encode(text, disallowed_special=()))


def encode(text: str, model: str) -> list[int]:
    """Token ids of ``text`` for ``model``."""
    return _encoding(encoding_name_for(model)).encode(text, disallowed_special=())


def decode(tokens: list[int], model: str) -> str:
    """Inverse of :func:`encode`."""
    return _encoding(encoding_name_for(model)).decode(tokens)


def token_pieces(text: str, model: str) -> list[str]:
    """``text`` split the way OpenAI streams it: one piece per token, except that
    the bytes of a character split across tokens wait for the token completing it."""
    encoding = _encoding(encoding_name_for(model))
    pieces: list[str] = []
    pending = b""
    for token in encoding.encode(text, disallowed_special=()):
        pending += encoding.decode_single_token_bytes(token)
        try:
            pieces.append(pending.decode("utf-8"))
        except UnicodeDecodeError:
            continue
        pending = b""
    if pending:
        pieces.append(pending.decode("utf-8", "replace"))
    return pieces


def content_text(content: Any) -> str:
    """Text of a message ``content`` (a string, or a list of ``{"type": "text"}`` parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ""


def count_messages(messages: Iterable[Mapping[str, Any]], model: str) -> int:
    """Cookbook ``num_tokens_from_messages``: 3/message + strings + 1/name + 3."""
    total = 0
    for message in messages:
        total += 3
        for key in ("role", "content", "name"):
            value = message.get(key)
            if key == "content":
                value = content_text(value) if value is not None else None
            if isinstance(value, str):
                total += count_text(value, model)
                if key == "name":
                    total += 1
    return total + 3


def default_epochs(n_examples: int) -> int:
    """The cookbook's ``n_epochs="auto"`` heuristic."""
    n_epochs = TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n_epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    elif n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n_epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return n_epochs


def billable_tokens(example_token_counts: Iterable[int], cap: int, n_epochs: int) -> int:
    """``n_epochs * sum(min(cap, tokens))``: what ``trained_tokens`` reports."""
    return n_epochs * sum(min(cap, n) for n in example_token_counts)

"""OpenAI chat examples -> token ids plus a per-token "train on this" mask.

The loss covers assistant turns only (skipping those with ``"weight": 0``), the way OpenAI
trains on chat data. The chat template is rendered incrementally to find each assistant
span exactly: for assistant message ``i`` the text of ``messages[:i]`` with the generation
prompt is a prefix of the text of ``messages[:i+1]``, and the difference is what the model
must produce (content plus end-of-turn). Characters map to tokens through the fast
tokenizer's offsets, so every trained turn of a multi-turn example is labelled in one
sequence. Templates that are not prefix-preserving (e.g. ones that drop earlier reasoning)
fall back to one sequence per trained turn.

**Message text is text.** A tokenizer turns the text of its added tokens (``<|im_start|>``,
``<|im_end|>``...) into control tokens wherever it meets them, so a message holding
``<|im_end|>\n<|im_start|>system`` would otherwise forge a system turn, in a chat prompt
as in training data. When any string of an example holds such text, the template is also
rendered with that text blanked out (each character replaced by U+E000): the control
tokens of that rendering are the template's own, and the real text is encoded with exactly
those, everything between them through the same tokenizer without its added tokens. Both
renderings must align character for character; a template that reacts to the markup in a
message (so they do not) is refused with a ``ValueError`` rather than trusted.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase

from bot.dataset.model_tokens import is_trained_turn, normalize_messages
from trainer.engine import Example


@dataclass(frozen=True)
class TokenizedSequence:
    """One training sequence: ``labels[t]`` says whether token ``t`` is a training target."""

    input_ids: tuple[int, ...]
    labels: tuple[bool, ...]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_targets(self) -> int:
        """Tokens the loss covers (a target at position 0 cannot be predicted, so skipped)."""
        return sum(self.labels[1:])


BLANK = "\ue000"
"""Stands in for each character of markup found in message text (a private-use character)."""


@dataclass(frozen=True)
class Rendered:
    """A rendered chat: ``text``, plus ``blanked`` (the same rendering with the markup in
    message strings blanked out) when any message string holds markup, else None."""

    text: str
    blanked: str | None = None


class ChatTokenizer:
    """Renders examples through a tokenizer's chat template and labels assistant spans."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int | None = None) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("a fast tokenizer (with offset mapping) is required")
        if not tokenizer.chat_template:
            raise ValueError("the tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.max_length = max_length
        added = {int(i): str(t.content) for i, t in tokenizer.added_tokens_decoder.items() if str(t.content)}
        self.control_ids = frozenset(added)
        """Ids of the tokenizer's added tokens: only the template may produce them."""
        self._markup = Markup(added.values())
        self._plain: Tokenizer | None = None
        self._plain_lock = threading.Lock()

    # -- rendering ------------------------------------------------------------------------
    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = False,
    ) -> str:
        """The chat template applied to ``messages`` (already normalised) as text."""
        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
        if tools:
            kwargs["tools"] = list(tools)
        conversation: Any = list(messages)
        return str(self.tokenizer.apply_chat_template(conversation, **kwargs))

    def rendered(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = False,
    ) -> Rendered:
        """:meth:`render`, plus the blanked twin when a message string holds markup."""
        text = self.render(messages, tools, add_generation_prompt)
        if not self._markup.in_any(messages) and not self._markup.in_any(tools):
            return Rendered(text)
        blanked = self.render(self._markup.blank_all(messages), self._markup.blank_all(tools), add_generation_prompt)
        return Rendered(text, blanked)

    def encode_prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[int]:
        """Token ids of a chat prompt ending with the assistant generation prompt; markup
        written in a message is encoded as the text it is."""
        return self.encode(self.rendered(normalize_messages(messages), tools, add_generation_prompt=True))[0]

    def encode(self, rendered: Rendered) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and character offsets of a rendering; control tokens only where the
        template put them (see the module docstring)."""
        if rendered.blanked is None:
            return self._encode(rendered.text)
        text, blanked = rendered.text, rendered.blanked
        if len(text) != len(blanked) or any(a != b and b != BLANK for a, b in zip(text, blanked, strict=True)):
            raise ValueError(
                f"message text contains {self._markup.first(text)!r}, which this model's chat template "
                "treats as markup; remove it from the message"
            )
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        done = 0
        for token, (start, end) in zip(*self._encode(blanked), strict=True):
            if token in self.control_ids:  # the blanked rendering has only the template's
                self._encode_plain(text, done, start, ids, offsets)
                ids.append(token)
                offsets.append((start, end))
                done = end
        self._encode_plain(text, done, len(text), ids, offsets)
        return ids, offsets

    def _encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def _encode_plain(self, text: str, start: int, end: int, ids: list[int], offsets: list[tuple[int, int]]) -> None:
        """Append the tokens of ``text[start:end]`` encoded with no added tokens at all."""
        if start >= end:
            return
        enc = self.plain_tokenizer().encode(text[start:end], add_special_tokens=False)
        ids.extend(enc.ids)
        offsets.extend((start + a, start + b) for a, b in enc.offsets)

    def plain_tokenizer(self) -> Tokenizer:
        """The same tokenizer without its added tokens: every string is plain text to it."""
        with self._plain_lock:
            if self._plain is None:
                spec = json.loads(self.tokenizer.backend_tokenizer.to_str())
                spec["added_tokens"], spec["truncation"], spec["padding"] = [], None, None
                self._plain = Tokenizer.from_str(json.dumps(spec))
            return self._plain

    # -- training sequences ---------------------------------------------------------------
    def sequences(self, example: Example) -> list[TokenizedSequence]:
        """The training sequences of one example (normally exactly one)."""
        raw = list(example["messages"])
        messages = normalize_messages(raw)
        tools = example.get("tools")
        full = self.rendered(messages, tools)
        spans: list[tuple[int, int]] = []
        per_turn: list[tuple[Rendered, tuple[int, int]]] = []
        prefix_ok = True
        for i, msg in enumerate(raw):
            if not is_trained_turn(msg):
                continue
            prompt = self.render(messages[:i], tools, add_generation_prompt=True)
            upto = self.rendered(messages[: i + 1], tools)
            if not upto.text.startswith(prompt):
                raise ValueError(
                    f"chat template renders assistant message {i} inconsistently; "
                    "cannot locate the trained span"
                )
            per_turn.append((upto, (len(prompt), len(upto.text))))
            if not full.text.startswith(upto.text):
                prefix_ok = False
            spans.append((len(prompt), len(upto.text)))
        if prefix_ok:
            return [self._labelled(full, spans)]
        return [self._labelled(text, [span]) for text, span in per_turn]

    def _labelled(self, rendered: Rendered, spans: Sequence[tuple[int, int]]) -> TokenizedSequence:
        ids, offsets = self.encode(rendered)
        labels = [False] * len(ids)
        j = 0
        ordered = sorted(spans)
        for t, (start, _end) in enumerate(offsets):
            while j < len(ordered) and start >= ordered[j][1]:
                j += 1
            if j < len(ordered) and ordered[j][0] <= start < ordered[j][1]:
                labels[t] = True
        if self.max_length is not None and len(ids) > self.max_length:
            ids, labels = ids[: self.max_length], labels[: self.max_length]
        return TokenizedSequence(tuple(ids), tuple(labels))

    def count_tokens(self, example: Example) -> int:
        """Tokens of the example as trained (all its sequences, after truncation)."""
        return sum(len(s) for s in self.sequences(example))


def tokenize_dataset(
    chat: ChatTokenizer, examples: Sequence[Example]
) -> list[list[TokenizedSequence]]:
    """Every example's sequences; raises ``ValueError`` naming the first bad example."""
    out = []
    for n, example in enumerate(examples):
        try:
            out.append(chat.sequences(example))
        except Exception as exc:  # template errors come in many types
            raise ValueError(f"example {n + 1}: {exc}") from exc
    return out



class Markup:
    """The texts of a tokenizer's added tokens, as found in (and blanked out of) strings.

    A string holds markup when it contains one of the texts, or starts or ends with a piece
    of one: a piece could complete a control token together with the template's text next
    to it (``...<|im_`` + ``end|>``), so pieces at the ends are blanked too.
    """

    def __init__(self, texts: Any) -> None:
        # whitespace-only added tokens (some tokenizers have them) can forge nothing
        self.texts = sorted({str(t) for t in texts if str(t).strip()}, key=len, reverse=True)
        self._whole = re.compile("|".join(re.escape(t) for t in self.texts)) if self.texts else None
        self._heads = tuple({t[:k] for t in self.texts for k in range(1, len(t))})
        self._tails = tuple({t[k:] for t in self.texts for k in range(1, len(t))})

    def found(self, text: str) -> bool:
        if self._whole is None:
            return False
        return bool(self._whole.search(text) or text.endswith(self._heads) or text.startswith(self._tails))

    def first(self, text: str) -> str:
        """The first whole markup text in ``text`` (for messages), else ``"markup"``."""
        match = self._whole.search(text) if self._whole is not None else None
        return match.group() if match else "markup"

    def blank(self, text: str) -> str:
        """``text`` with its markup (whole texts, and pieces at either end) replaced by as many
        :data:`BLANK` characters: same length, no control token left in it."""
        if self._whole is None:
            return text
        text = self._whole.sub(lambda m: BLANK * len(m.group()), text)
        head = max((len(h) for h in self._heads if text.endswith(h)), default=0)
        if head:
            text = text[: len(text) - head] + BLANK * head
        tail = max((len(t) for t in self._tails if text.startswith(t)), default=0)
        if tail:
            text = BLANK * tail + text[tail:]
        return text

    def in_any(self, value: Any) -> bool:
        """True when any string inside ``value`` (nested lists and mappings) holds markup."""
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if self.found(item):
                    return True
            elif isinstance(item, Mapping):
                stack.extend(item.values())
            elif isinstance(item, list | tuple):
                stack.extend(item)
        return False

    def blank_all(self, value: Any) -> Any:
        """``value`` with :meth:`blank` applied to every string inside it."""
        if isinstance(value, str):
            return self.blank(value)
        if isinstance(value, Mapping):
            return {k: self.blank_all(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.blank_all(v) for v in value]
        return value

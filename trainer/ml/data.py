"""OpenAI chat examples -> token ids plus a per-token "train on this" mask.

The loss covers assistant turns only (skipping those with ``"weight": 0``), the way OpenAI
trains on chat data. The chat template is rendered incrementally to find each assistant
span exactly: for assistant message ``i`` the text of ``messages[:i]`` with the generation
prompt is a prefix of the text of ``messages[:i+1]``, and the difference is what the model
must produce (content plus end-of-turn). Characters map to tokens through the fast
tokenizer's offsets, so every trained turn of a multi-turn example is labelled in one
sequence. Templates that are not prefix-preserving (e.g. ones that drop earlier reasoning)
fall back to one sequence per trained turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


class ChatTokenizer:
    """Renders examples through a tokenizer's chat template and labels assistant spans."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int | None = None) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("a fast tokenizer (with offset mapping) is required")
        if not tokenizer.chat_template:
            raise ValueError("the tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.max_length = max_length

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

    def encode_prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[int]:
        """Token ids of a chat prompt ending with the assistant generation prompt."""
        text = self.render(normalize_messages(messages), tools, add_generation_prompt=True)
        return self._encode(text)[0]

    def _encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    # -- training sequences ---------------------------------------------------------------
    def sequences(self, example: Example) -> list[TokenizedSequence]:
        """The training sequences of one example (normally exactly one)."""
        raw = list(example["messages"])
        messages = normalize_messages(raw)
        tools = example.get("tools")
        full = self.render(messages, tools)
        spans: list[tuple[int, int]] = []
        per_turn: list[tuple[str, tuple[int, int]]] = []
        prefix_ok = True
        for i, msg in enumerate(raw):
            if not is_trained_turn(msg):
                continue
            prompt = self.render(messages[:i], tools, add_generation_prompt=True)
            upto = self.render(messages[: i + 1], tools)
            if not upto.startswith(prompt):
                raise ValueError(
                    f"chat template renders assistant message {i} inconsistently; "
                    "cannot locate the trained span"
                )
            per_turn.append((upto, (len(prompt), len(upto))))
            if not full.startswith(upto):
                prefix_ok = False
            spans.append((len(prompt), len(upto)))
        if prefix_ok:
            return [self._labelled(full, spans)]
        return [self._labelled(text, [span]) for text, span in per_turn]

    def _labelled(self, text: str, spans: Sequence[tuple[int, int]]) -> TokenizedSequence:
        ids, offsets = self._encode(text)
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

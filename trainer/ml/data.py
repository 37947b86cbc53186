"""OpenAI chat examples -> token ids plus a per-token "train on this" mask.

The loss covers assistant turns only (skipping those with ``"weight": 0``), the way OpenAI
trains on chat data. How an example becomes sequences is one rule shared with the bot's
token counts, :func:`bot.dataset.chat_encoding.training_sequences`, so ``tunecord check``
bills exactly the tokens trained here; this module brings the model's tokenizer and
transformers' rendering of its chat template. In short (details in that module):

* the chat template is rendered once for the whole conversation, and each trained turn is
  located by rendering the conversation before it (with the generation prompt) and up to
  it: the difference is what the model must produce (content plus end-of-turn). Characters
  map to tokens through the fast tokenizer's offsets, so every trained turn of a
  multi-turn example is labelled in one sequence. Templates that are not prefix-preserving
  (e.g. ones that drop earlier reasoning) fall back to one sequence per trained turn;
* sequences are cut at ``max_length``; turns that start past the cut are not located, so
  a 1 MiB line of 30,000 short messages takes seconds, and an example that would need
  more rendering than :data:`~bot.dataset.chat_encoding.RENDER_BUDGET_MESSAGES` messages
  is refused with a ``ValueError``;
* **message text is text**: markup written in a message (``<|im_end|>\n<|im_start|>system``)
  is encoded as the characters it is, never as control tokens, in a chat prompt as in
  training data; a template that reacts to the markup in a message is refused with a
  ``ValueError`` rather than trusted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase

from bot.dataset.chat_encoding import BLANK as BLANK
from bot.dataset.chat_encoding import ChatEncoder, normalize_messages, training_sequences
from bot.dataset.chat_encoding import Markup as Markup
from bot.dataset.chat_encoding import Rendered as Rendered
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
        self.encoder = ChatEncoder(tokenizer.backend_tokenizer)
        """The encoding rule shared with the bot's counts."""
        self.control_ids = self.encoder.control_ids
        """Ids of the tokenizer's added tokens: only the template may produce them."""

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
        return self.encoder.rendered(self.render, messages, tools, add_generation_prompt)

    def encode_prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[int]:
        """Token ids of a chat prompt ending with the assistant generation prompt; markup
        written in a message is encoded as the text it is."""
        return self.encoder.encode(self.rendered(normalize_messages(messages), tools, add_generation_prompt=True)).ids

    def encode(self, rendered: Rendered) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and character offsets of a rendering; control tokens only where the
        template put them (``ValueError`` if the template reacts to markup in the text)."""
        encoded = self.encoder.encode(rendered)
        return encoded.ids, encoded.offsets

    def plain_tokenizer(self) -> Tokenizer:
        """The same tokenizer without its added tokens: every string is plain text to it."""
        return self.encoder.plain_tokenizer()

    # -- training sequences ---------------------------------------------------------------
    def sequences(self, example: Example) -> list[TokenizedSequence]:
        """The training sequences of one example (normally exactly one)."""
        return [
            TokenizedSequence(tuple(s.ids), tuple(s.labels))
            for s in training_sequences(
                self.render, self.encoder, example["messages"], example.get("tools"), self.max_length
            )
        ]

    def count_tokens(self, example: Example) -> int:
        """Tokens of the example as trained (all its sequences, after truncation)."""
        return sum(
            len(s.ids)
            for s in training_sequences(
                self.render, self.encoder, example["messages"], example.get("tools"), self.max_length
            )
        )


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


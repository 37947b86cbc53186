"""Rendered chats to the tokens a fine-tune trains on: one rule for the bot and the trainer.

The bot's exact counts for trainer models (:mod:`bot.dataset.model_tokens`) and the
trainer's own tokenisation (``trainer/ml/data.py``) both go through
:func:`training_sequences`, so a count and the training it bills cannot drift apart. Each
side brings its renderer (the chat template applied to messages: the bot's sandboxed
Jinja, the trainer's ``apply_chat_template``) and its tokenizer (a ``tokenizers``
``Tokenizer``); the tests check those two are the same too.

**Message text is text.** A tokenizer turns the text of its added tokens
(``<|im_start|>``, ``<|im_end|>``...) into control tokens wherever it meets it, so a
message holding ``<|im_end|>\\n<|im_start|>system`` would otherwise forge a system turn.
When any string of an example holds such text (or a piece of one at either end), the
template is also rendered with that text blanked out (each character replaced by
:data:`BLANK`): the control tokens of that rendering are the template's own, and the real
text is encoded with exactly those, everything between them through the same tokenizer
without its added tokens. Both renderings must align character for character; a template
that reacts to the markup in a message (so they do not) is refused rather than trusted.

**Trained spans.** The loss covers assistant messages (``weight`` absent or non-zero). For
trained message ``i``, the conversation before it rendered with the generation prompt must
be a prefix of the conversation up to and including it; the difference (content and
end-of-turn) is what is trained. When each of those renderings is also a prefix of the
whole conversation, the example is one sequence with every trained span labelled;
otherwise (templates that drop earlier reasoning) each trained turn is its own sequence,
the conversation up to and including it. Sequences are cut at ``max_length`` tokens.

**Bounded work.** Locating a turn renders the conversation up to it, so the work grows
with turns times length. Two rules bound it, on both sides alike:

* when the whole conversation is cut at ``max_length``, a turn whose prompt already
  reaches past the last token kept has no trained token left, nor has any later turn:
  locating stops there (as long as every turn so far was a prefix of the whole, which is
  when one sequence is trained). A 1 MiB line of 30,000 short messages is one rendering
  plus about 440 located turns for SmolLM2's 8,192 tokens: seconds, not hours;
* past :data:`RENDER_BUDGET_MESSAGES` messages or :data:`RENDER_BUDGET_CHARS` characters
  rendered while locating, the example is refused with :class:`TemplateError` (the
  trainer refuses the line at validation; the bot counts it from one rendering as an
  estimate). When nothing is cut, the messages to render are known in advance, so such
  an example is refused before any of that work. At SmolLM2's 8,192 tokens the 30,000
  short user and assistant messages of a 1 MiB line take about 0.42 million; only over a
  thousand near-empty trained turns within the first 8,192 tokens get past it.

Nothing here imports torch or transformers; ``tokenizers`` is imported only when an
encoder is built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.dataset.nested import strings_in

if TYPE_CHECKING:
    from tokenizers import Tokenizer

BLANK = "\ue000"
"""Stands in for each character of markup found in message text (a private-use character)."""
RENDER_BUDGET_MESSAGES = 1_000_000
"""The most messages rendered, all prefix renderings together, to locate one example's
trained turns (about 15 s of the trainer's rendering with SmolLM2's template)."""
RENDER_BUDGET_CHARS = 256 * 1024 * 1024
"""The most characters rendered, all prefix renderings together, to locate one example's
trained turns (each rendering is at most one conversation, so memory stays that of one)."""

ENCODE_PIECE_CHARS = 1 << 16
"""A long rendering is encoded this many characters at a time, or so (see :class:`ChatEncoder`)."""

Render = Callable[[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]] | None, bool], str]
"""``render(messages, tools, add_generation_prompt)``: the chat template applied to
normalised messages, as text."""


class TemplateError(ValueError):
    """The chat template cannot render an example the way training needs: the trainer
    refuses such an example, and the bot's count of it is only an estimate."""


# -- messages as the template sees them ---------------------------------------------------------
def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Plain-dict copies with text content (``None`` -> "", content parts -> their text
    joined), without OpenAI's training-only ``weight`` key."""
    out = []
    for m in messages:
        d = {k: v for k, v in m.items() if k != "weight"}
        d["content"] = _text_of(m.get("content"))
        out.append(d)
    return out


def is_trained_turn(message: Mapping[str, Any]) -> bool:
    """True for an assistant message the loss covers (``weight`` absent or non-zero)."""
    return message.get("role") == "assistant" and message.get("weight", 1) != 0


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(str(p.get("text", "")) if isinstance(p, Mapping) else str(p) for p in content)
    return str(content)


# -- results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rendered:
    """A rendered chat: ``text``, plus ``blanked`` (the same rendering with the markup in
    message strings blanked out) when any message string holds markup, else None."""

    text: str
    blanked: str | None = None


@dataclass(frozen=True)
class Encoded:
    """Token ids of a rendering and each token's ``(start, end)`` character offsets, for
    its first ``keep`` tokens when the encoding was asked to keep only those; ``length``
    counts them all."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    length: int


@dataclass(frozen=True)
class TrainingSequence:
    """One sequence as trained: ``ids`` and ``labels`` (True where the loss covers the
    token) cut at the maximum length; ``length`` is the length before the cut."""

    ids: list[int]
    labels: list[bool]
    length: int

    @property
    def truncated(self) -> bool:
        return self.length > len(self.ids)


# -- markup ---------------------------------------------------------------------------------------
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
        return any(self.found(text) for text in strings_in(value))

    def blank_all(self, value: Any) -> Any:
        """``value`` with :meth:`blank` applied to every string inside it (values are
        nested at most a hundred levels deep: validation refuses deeper ones)."""
        if isinstance(value, str):
            return self.blank(value)
        if isinstance(value, Mapping):
            return {k: self.blank_all(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.blank_all(v) for v in value]
        return value


# -- the encoder ----------------------------------------------------------------------------------
class ChatEncoder:
    """A tokenizer that encodes renderings by the rule above: control tokens only where
    the template put them, message text as the text it is. Safe to share between threads.

    A tokenizer splits a text at its added tokens and encodes the pieces between them on
    their own; this does the same, which keeps memory to that of the longest piece rather
    than the whole conversation:

    * where the added tokens are plain strings (not normalised, never stripping the text
      around them, not encoded as text: SmolLM2's and most chat models'), the tokenizer
      finds them leftmost-longest, as a regular expression of their texts does, so they
      are found that way (and a blanked rendering is searched, not encoded);
    * with GPT-2's byte-level split (SmolLM2's: no normaliser, no prefix space), a piece of
      text longer than :data:`ENCODE_PIECE_CHARS` is encoded in parts cut only where that
      split always cuts (between ASCII characters of different kinds, or before a space
      that follows a non-space), so the tokens are the same.

    Measured with SmolLM2's tokenizer: encoding a 1 MiB line peaks at about 10 MiB above
    the rendering, unless it holds one unbroken run of letters that long (about +120 MB
    for a 340,000-character run of Chinese). Encoded whole, 1 MiB of one-character tokens
    took +380 MB; a tokenizer that fits neither case above is still encoded that way.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        from tokenizers import Tokenizer

        spec = json.loads(tokenizer.to_str())
        spec["truncation"] = spec["padding"] = None  # never cut or pad what is counted
        if tokenizer.truncation is not None or tokenizer.padding is not None:
            tokenizer = Tokenizer.from_str(json.dumps(spec))
        self.tokenizer = tokenizer
        found = {int(i): t for i, t in tokenizer.get_added_tokens_decoder().items() if str(t.content)}
        self.control_ids = frozenset(found)
        """Ids of the tokenizer's added tokens: only the template may produce them."""
        self.markup = Markup(str(t.content) for t in found.values())
        plain_strings = not getattr(tokenizer, "encode_special_tokens", False) and not any(
            t.lstrip or t.rstrip or t.single_word or t.normalized for t in found.values()
        )
        self._ids = {str(t.content): i for i, t in sorted(found.items(), reverse=True)}
        texts = sorted(self._ids, key=len, reverse=True)  # longest first: leftmost-longest
        self._cuts = re.compile("|".join(re.escape(t) for t in texts)) if texts and plain_strings else None
        self._gpt2_split = spec.get("normalizer") is None and _is_gpt2_byte_level(spec.get("pre_tokenizer"))
        spec["added_tokens"] = []
        self._plain: Tokenizer = Tokenizer.from_str(json.dumps(spec))

    def plain_tokenizer(self) -> Tokenizer:
        """The same tokenizer without its added tokens: every string is plain text to it."""
        return self._plain

    # -- encoding -------------------------------------------------------------------------------
    def encode_text(self, text: str, keep: int | None = None) -> Encoded:
        """``text`` encoded with every added-token text in it taken as markup (a rendering
        whose messages hold none); no special tokens added around it. Ids and offsets of
        the first ``keep`` tokens only, when given (no list of a long text's every token)."""
        if self._cuts is None:
            out = _Building(keep)
            out.add(self.tokenizer.encode(text, add_special_tokens=False), 0)
            return out.encoded()
        return self._encode_around(text, self._controls(text), keep)

    def encode(self, rendered: Rendered, keep: int | None = None) -> Encoded:
        """Token ids and offsets of a rendering (of its first ``keep`` tokens, when given);
        control tokens only where the template put them. :class:`TemplateError` if the
        template reacts to markup in the text."""
        if rendered.blanked is None:
            return self.encode_text(rendered.text, keep)
        text, blanked = rendered.text, rendered.blanked
        if len(text) != len(blanked) or any(a != b and b != BLANK for a, b in zip(text, blanked, strict=True)):
            raise TemplateError(
                f"message text contains {self.markup.first(text)!r}, which this model's chat template "
                "treats as markup; remove it from the message"
            )
        # the blanked rendering has only the template's control tokens
        return self._encode_around(text, self._controls(blanked), keep)

    def count(self, rendered: Rendered) -> int:
        """Tokens of a rendering by :meth:`encode`'s rule, without listing them."""
        return self.encode(rendered, keep=0).length

    def count_plain(self, text: str) -> int:
        """Tokens of ``text`` as message text: markup in it is plain characters."""
        out = _Building(0)
        self._encode_plain(text, 0, len(text), out)
        return out.length

    def rendered(
        self,
        render: Render,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = False,
        marked: bool | None = None,
    ) -> Rendered:
        """``render``'s text, plus the blanked twin when a message or tool string holds
        markup (``marked`` says so when the caller already knows)."""
        text = render(messages, tools, add_generation_prompt)
        if marked is None:
            marked = self.markup.in_any(messages) or self.markup.in_any(tools)
        if not marked:
            return Rendered(text)
        blanked_tools = self.markup.blank_all(tools) if tools else tools
        return Rendered(text, render(self.markup.blank_all(messages), blanked_tools, add_generation_prompt))

    # -- pieces ---------------------------------------------------------------------------------
    def _controls(self, text: str) -> Iterator[tuple[int, int, int]]:
        """``(id, start, end)`` of each added token the tokenizer finds in ``text``."""
        if self._cuts is not None:
            ids = self._ids
            return ((ids[m.group()], m.start(), m.end()) for m in self._cuts.finditer(text))
        enc = self.tokenizer.encode(text, add_special_tokens=False)
        return iter([(token, *_chars(enc, t)) for t, token in enumerate(enc.ids) if token in self.control_ids])

    def _encode_around(self, text: str, controls: Iterator[tuple[int, int, int]], keep: int | None) -> Encoded:
        """``text`` as these control tokens, and the text between them as plain text."""
        out = _Building(keep)
        done = 0
        for token, start, end in controls:
            self._encode_plain(text, done, start, out)
            out.add_token(token, start, end)
            done = end
        self._encode_plain(text, done, len(text), out)
        return out.encoded()

    def _encode_plain(self, text: str, start: int, end: int, out: _Building) -> None:
        """Add the tokens of ``text[start:end]`` encoded with no added tokens at all."""
        plain = self.plain_tokenizer()
        while start < end:
            cut = end
            if self._gpt2_split and end - start > ENCODE_PIECE_CHARS:
                found = _GPT2_CUT.search(text, start + ENCODE_PIECE_CHARS, end)
                cut = found.start() if found else end
            out.add(plain.encode(text[start:cut], add_special_tokens=False), start)
            start = cut


_ASCII_LETTERS = "".join(chr(c) for c in range(128) if chr(c).isalpha())
_ASCII_DIGITS = "0123456789"
_ASCII_MARKS = "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum())
_GPT2_CUT = re.compile(
    "|".join(
        f"(?<=[{re.escape(before)}])(?=[{re.escape(after)}])"
        for before, after in [
            (_ASCII_LETTERS, _ASCII_DIGITS + _ASCII_MARKS + " "),
            (_ASCII_DIGITS, _ASCII_LETTERS + _ASCII_MARKS + " "),
            (_ASCII_MARKS.replace("'", ""), _ASCII_LETTERS + _ASCII_DIGITS + " "),
            ("'", _ASCII_DIGITS + " "),  # not before a letter: ``'s`` is one piece
        ]
    )
)
"""Where GPT-2's split (``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``)
always cuts: after a letter, digit or mark, before a character of another kind or a space
(a space only ever starts a piece). ASCII only, so every regex engine agrees on the kinds."""


def _is_gpt2_byte_level(pre_tokenizer: Any) -> bool:
    """True for GPT-2's byte-level split with no prefix space (alone, or the only step)."""
    if isinstance(pre_tokenizer, Mapping) and pre_tokenizer.get("type") == "Sequence":
        steps = pre_tokenizer.get("pretokenizers") or []
        return len(steps) == 1 and _is_gpt2_byte_level(steps[0])
    return (
        isinstance(pre_tokenizer, Mapping)
        and pre_tokenizer.get("type") == "ByteLevel"
        and pre_tokenizer.get("add_prefix_space") is False
        and pre_tokenizer.get("use_regex", True) is True
    )


class _Building:
    """Ids and offsets gathered up to ``keep`` tokens; past it, only counted."""

    def __init__(self, keep: int | None) -> None:
        self.keep = keep
        self.ids: list[int] = []
        self.offsets: list[tuple[int, int]] = []
        self.length = 0

    def room(self, n: int) -> int:
        return n if self.keep is None else max(0, min(n, self.keep - self.length))

    def add(self, encoding: Any, shift: int) -> None:
        """Add a ``tokenizers`` encoding of the text from character ``shift`` on."""
        n = len(encoding)
        room = self.room(n)
        if room == n:
            self.ids.extend(encoding.ids)
            self.offsets.extend((shift + a, shift + b) for a, b in encoding.offsets)
        elif room:  # a few of many: not the lists of every token
            self.ids.extend(encoding.ids[:room])
            self.offsets.extend((shift + a, shift + b) for a, b in (_chars(encoding, t) for t in range(room)))
        self.length += n

    def add_token(self, token: int, start: int, end: int) -> None:
        if self.room(1):
            self.ids.append(token)
            self.offsets.append((start, end))
        self.length += 1

    def encoded(self) -> Encoded:
        return Encoded(self.ids, self.offsets, self.length)


def _chars(encoding: Any, token: int) -> tuple[int, int]:
    """Character offsets of one token of an encoding of text (every token has some)."""
    found = encoding.token_to_chars(token)
    if found is None:
        raise TemplateError(f"the tokenizer placed token {token} nowhere in the text")
    return int(found[0]), int(found[1])


# -- training sequences ---------------------------------------------------------------------------
def training_sequences(
    render: Render,
    encoder: ChatEncoder,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    max_length: int | None = None,
) -> Iterator[TrainingSequence]:
    """The sequences one example is trained as (normally exactly one), by the rule in the
    module docstring. Locating the trained turns happens now and raises
    :class:`TemplateError` (or the renderer's own error) for an example training cannot
    use; with a template that is not prefix-preserving, each turn's sequence is rendered
    and encoded as the iterator reaches it (so it may raise then too)."""
    raw = list(messages)
    normal = normalize_messages(raw)
    tool_list = list(tools) if tools else None
    marked = encoder.markup.in_any(normal) or encoder.markup.in_any(tool_list)
    full = encoder.rendered(render, normal, tool_list, marked=marked)
    if max_length is not None and max_length < 1:
        raise ValueError("max_length must be at least 1")
    encoded = encoder.encode(full, max_length)
    # the start of the last token kept: a span starting after it has no token left
    reach = encoded.offsets[-1][0] if max_length is not None and encoded.length > max_length else None
    trained = [i for i, message in enumerate(raw) if is_trained_turn(message)]
    if trained and trained[0] == 0:
        raise TemplateError(
            "the first message is a trained assistant message: there is no prompt before it "
            "to learn an answer to (start with a system or user message, or give it weight 0)"
        )
    if reach is None and sum(2 * i + 1 for i in trained) > RENDER_BUDGET_MESSAGES:
        raise _over_budget(raw, len(trained))  # nothing is cut, so every turn would be located
    spans: list[tuple[int, int, int]] = []
    single = True
    rendered_messages = rendered_chars = 0
    for i in trained:
        rendered_messages += 2 * i + 1
        if rendered_messages > RENDER_BUDGET_MESSAGES:
            raise _over_budget(raw, len(trained))
        prompt = render(normal[:i], tool_list, True)
        if single and reach is not None and len(prompt) > reach:
            break  # this turn and every later one lie in the part cut off
        upto = render(normal[: i + 1], tool_list, False)
        rendered_chars += len(prompt) + len(upto)
        if rendered_chars > RENDER_BUDGET_CHARS:
            raise _over_budget(raw, len(trained))
        if not upto.startswith(prompt):
            raise TemplateError(
                f"chat template renders assistant message {i} inconsistently; cannot locate the trained span"
            )
        if not full.text.startswith(upto):
            single = False
        spans.append((i, len(prompt), len(upto)))
    if single:
        return iter([_labelled(encoded, [(s, e) for _, s, e in spans])])
    del encoded, full  # each turn is its own sequence: one rendering in memory at a time
    return (
        _labelled(
            encoder.encode(encoder.rendered(render, normal[: i + 1], tool_list, marked=marked), max_length),
            [(s, e)],
        )
        for i, s, e in spans
    )


def _over_budget(raw: Sequence[Mapping[str, Any]], trained: int) -> TemplateError:
    return TemplateError(
        f"{trained:,} trained assistant messages in a conversation of {len(raw):,} messages: locating each "
        f"one would render more than {RENDER_BUDGET_MESSAGES:,} messages ({RENDER_BUDGET_CHARS:,} "
        "characters) in all; split the conversation into shorter examples"
    )


def _labelled(encoded: Encoded, spans: Sequence[tuple[int, int]]) -> TrainingSequence:
    """The sequence as encoded (already cut at the maximum length); a token is trained when
    its first character lies in a span."""
    labels = [False] * len(encoded.ids)
    ordered = sorted(spans)
    j = 0
    for t, (start, _end) in enumerate(encoded.offsets):
        while j < len(ordered) and start >= ordered[j][1]:
            j += 1
        if j < len(ordered) and ordered[j][0] <= start:
            labels[t] = True
    return TrainingSequence(encoded.ids, labels, encoded.length)

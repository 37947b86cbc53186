"""Splitting a model's answer into Discord messages without breaking code blocks or words.

Discord refuses message content over 2,000 characters, and parses each message's Markdown
on its own: a code block cut across two messages would show its second half as plain text
and the first half's fence as literal backticks. :func:`split_message` therefore:

* cuts at a paragraph boundary (a blank line, or the line break before a code block opens
  or after one closes), else at a line break, else between words, preferring the latest
  boundary of the best kind that keeps the part at least half full; a single word longer
  than the limit is cut hard;
* closes a code block that runs past a cut at the end of one part (a ```` ``` ```` line)
  and reopens it, with the same language tag, at the start of the next one, and closes a
  block the text leaves open at its very end;
* drops only whitespace at the cuts (a line's indentation is kept), never produces an empty
  part, and returns short, balanced text unchanged.

Fences are line-based: a line whose first characters (after spaces or tabs) are three
backticks opens a code block, and the next such line closes it; the language tag is the
first word after the backticks when it looks like one (``python``, ``c++``, ``objective-c``).
Every part is a slice of the text plus, at most, a reopening line whose tag is such a word
and a closing line, so splitting can never create a mention (``@everyone``, ``<@&id>``)
that the text did not hold; who is pinged is still decided by ``allowed_mentions``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MESSAGE_LIMIT = 2000
"""Discord's limit on a message's content, in characters."""

FENCE = "```"
CLOSE = "\n" + FENCE
"""What ends a part whose code block continues in the next one."""

_TAG = re.compile(r"[A-Za-z0-9_+\-.#]{1,32}")
"""A language tag safe to repeat: letters, digits and ``_+-.#`` only (no ``@``, ``<``)."""
_MIN_LIMIT = 64
"""Room for a reopening line, a closing line and some text."""


@dataclass(frozen=True)
class Part:
    """One message of a split answer."""

    body: str
    """The text's own characters (a slice of it, whitespace at the cuts dropped)."""
    start: int
    """Where ``body`` starts in the text."""
    resume_at: int
    """Where the next part starts reading the text (after the whitespace at the cut)."""
    reopens: str | None
    """The tag of a code block continued from the previous part ("" for none), or None."""
    open_after: str | None
    """The tag of the code block left open at the end of ``body`` (closed by this part), or None."""

    @property
    def text(self) -> str:
        """The message content: reopening line, body, closing line."""
        head = "" if self.reopens is None else f"{FENCE}{self.reopens}\n"
        tail = "" if self.open_after is None else CLOSE
        return head + self.body + tail


def fence_tag(line: str) -> str | None:
    """The language tag ("" when none) if ``line`` is a fence line, else None."""
    stripped = line.lstrip(" \t")
    if not stripped.startswith(FENCE):
        return None
    words = stripped.lstrip("`").split(maxsplit=1)
    return words[0] if words and _TAG.fullmatch(words[0]) else ""


def fence_state(text: str, state: str | None = None) -> str | None:
    """The code block open at the end of ``text`` (its tag), starting from ``state``; None if closed."""
    if FENCE not in text:
        return state
    for line in text.split("\n"):
        tag = fence_tag(line)
        if tag is not None:
            state = tag if state is None else None
    return state


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """``text`` as message contents of at most ``limit`` characters each (none when blank)."""
    return [part.text for part in plan_parts(text, limit)]


def plan_parts(
    text: str, limit: int = MESSAGE_LIMIT, *, start: int = 0, state: str | None = None
) -> list[Part]:
    """The parts of ``text[start:]``, the first continuing code block ``state`` if not None.

    ``start`` and ``state`` let a caller keep parts it has already sent: splitting again from
    a part's ``resume_at`` and ``open_after`` gives the parts that follow it.
    """
    if limit < _MIN_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_LIMIT} characters, not {limit}")
    end = len(text.rstrip())
    pos = _skip_blank(text, start, end, keep_indent=True)
    parts: list[Part] = []
    while pos < end:
        head = 0 if state is None else len(FENCE) + len(state) + 1
        if head + (end - pos) <= limit:
            rest = text[pos:end]
            after = fence_state(rest, state)
            if head + len(rest) + (0 if after is None else len(CLOSE)) <= limit:
                parts.append(Part(rest, pos, end, state, after))
                break
        cut = _choose_cut(text, pos, end, state, limit - head - len(CLOSE))
        body = text[pos:cut].rstrip()
        resume = _skip_blank(text, cut, end)
        if body:  # empty only when a line's indentation alone is longer than a part
            after = fence_state(body, state)
            parts.append(Part(body, pos, resume, state, after))
            state = after
        pos = resume
    return parts


def _skip_blank(text: str, pos: int, end: int, *, keep_indent: bool = False) -> int:
    """Past the whitespace at ``pos`` (a cut between words), or past its blank lines only,
    keeping the indentation of the line it reaches (a line break, the start of the text)."""
    stop = pos
    while stop < end and text[stop].isspace():
        stop += 1
    newline = text.rfind("\n", pos, stop)
    if newline != -1:
        return newline + 1
    return pos if keep_indent else stop


def _choose_cut(text: str, pos: int, end: int, state: str | None, budget: int) -> int:
    """Where to end the part starting at ``pos``: the body is ``text[pos:cut]``, at most ``budget``."""
    last = min(pos + budget, end)  # the body may end at most here
    paragraph = line = word = None  # the latest cut of each kind
    line_start, has_text, open_tag = pos, False, state
    while line_start <= last:
        newline = text.find("\n", line_start, last + 1)
        line_end = last if newline == -1 else newline
        current = text[line_start:line_end]
        tag = fence_tag(current)
        closes_block = tag is not None and open_tag is not None
        if tag is None:
            spot = _word_cut(text, line_start, line_end, has_text)
            word = spot if spot is not None else word
            has_text = has_text or bool(current.strip())
        else:
            open_tag = None if closes_block else tag
        if newline == -1:
            break
        following = _line_at(text, newline + 1)
        next_is_fence = fence_tag(following) is not None
        # a part must hold some text, and never end just before its block's closing line
        if has_text and not (open_tag is not None and next_is_fence):
            opens_next = open_tag is None and next_is_fence
            if closes_block or opens_next or not following.strip():
                paragraph = newline
            else:
                line = newline
        line_start = newline + 1
    half = pos + budget // 2
    for candidate in (paragraph, line, word):
        if candidate is not None and candidate >= half:
            return candidate
    for candidate in (paragraph, line, word):
        if candidate is not None:
            return candidate
    return _hard_cut(text, pos, last)


def _line_at(text: str, pos: int) -> str:
    newline = text.find("\n", pos)
    return text[pos:] if newline == -1 else text[pos:newline]


def _word_cut(text: str, line_start: int, line_end: int, has_text: bool) -> int | None:
    """The last space or tab of the line that leaves text before it and no fence after it."""
    spot = line_end
    while True:
        spot = max(text.rfind(" ", line_start, spot), text.rfind("\t", line_start, spot))
        if spot <= line_start:
            return None
        before = text[line_start:spot]
        if not (has_text or before.strip()):
            return None
        resume = spot
        while resume < len(text) and text[resume] in " \t":
            resume += 1
        if not text.startswith(FENCE, resume):
            return spot


def _hard_cut(text: str, pos: int, last: int) -> int:
    """Cut a word longer than the part: not before backticks (the next part would open a
    fence) nor before a combining mark or joiner (it belongs to the character before)."""
    cut = last
    while cut > pos + 1 and (
        text[cut] == "`" or unicodedata.combining(text[cut]) or text[cut] in "\u200d\ufe0f"
    ):
        cut -= 1
    return cut if cut > pos + 1 else last

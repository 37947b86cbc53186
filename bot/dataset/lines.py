"""The one per-line check of a JSONL training file, shared by ``tunecord check``, the bot's
JSONL import and the trainer's file validation.

Reading (:func:`read_lines`): BOM on the first line and CRLF endings accepted; a line
longer than :data:`MAX_LINE_BYTES` is skipped in reads of at most that many bytes and
reported as ``line_too_long``; bytes that are not UTF-8 are ``invalid_encoding``. Lines
holding only JSON whitespace are skipped. Checking (:func:`check_line`): strict JSON
decoding (:func:`bot.dataset.validation.parse_line`: no NaN, Infinity or lone surrogate,
big integers exact, nesting past :data:`~bot.dataset.validation.MAX_DEPTH` refused
without recursion), then every rule of :mod:`bot.dataset.validation`, then the
special-token warning. The three callers add what only they can know (duplicates against a
database, token counts for a model), but a line that one of them refuses, all of them
refuse, with the same code and message, whatever thread or stack depth they run it in.

Bounds per line: at most :data:`MAX_LINE_BYTES` read; the text decoded from it (at most
about 1 MiB in memory) and its parsed form; at most
:data:`~bot.dataset.validation.MAX_PROBLEMS_PER_EXAMPLE` problems, each quoting at most
:data:`~bot.dataset.validation.MAX_QUOTED` characters of the user's values.

:class:`ProblemLog` decides which problems a report lists: counts for all of them, and
the first :data:`MAX_LISTED` of each severity by line (file-wide problems always).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Final

from bot.dataset.validation import (
    Problem,
    parse_line,
    problem,
    special_token_warning,
    validate_example,
)

MAX_LINE_BYTES: Final = 1 << 20
"""The longest line accepted (1 MiB). No training example is this long: the largest
training context, 65,536 tokens, is about 260 KB of text."""
MAX_LISTED: Final = 1000
"""Problems beyond this many (per severity) are counted by code but not listed."""


class _Fault(str):
    """A line that could not be read as text; compared by identity, so no real line's
    text can be mistaken for it."""

    __slots__ = ()


NOT_UTF8: Final = _Fault("not UTF-8")
"""What :func:`read_lines` yields for a line whose bytes are not UTF-8."""


def read_lines(
    stream: IO[bytes], max_bytes: int = MAX_LINE_BYTES, *, first_line: int = 1, end: int | None = None
) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line; ``None`` for a line too long, :data:`NOT_UTF8` (test
    with ``is``) for one that is not UTF-8. With ``end``, stops at the first line starting
    at or after that byte offset."""
    number = first_line - 1
    while end is None or stream.tell() < end:
        raw = stream.readline(max_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(max_bytes + 1)
            yield number, None
            continue
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield number, raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            yield number, NOT_UTF8


def is_blank(text: str) -> bool:
    """A line with nothing to check: empty, or only JSON whitespace (space, tab, CR, LF).
    Other blank-looking characters (form feed, NBSP, U+2028...) are not JSON: such a line
    is checked, and refused as ``invalid_json``."""
    return not text or not text.strip(" \t\r\n")


def read_problem(number: int, text: str | None) -> Problem | None:
    """The problem of a line that could not be read (too long, not UTF-8), else None."""
    if text is None:
        return problem(
            "line_too_long", f"longer than {MAX_LINE_BYTES:,} bytes (1 MiB), the longest line accepted",
            line=number,
        )
    if text is NOT_UTF8:
        return problem("invalid_encoding", "not valid UTF-8", line=number)
    return None


def example_problems(obj: Any, number: int, text: str) -> list[Problem]:
    """Every rule for a decoded line: validation, then the special-token warning."""
    found = validate_example(obj, line=number)
    if "<|" in text and not any(p.is_error for p in found):
        warning = special_token_warning(text, line=number)
        if warning is not None:
            found.append(warning)
    return found


@dataclass(frozen=True, slots=True)
class LineCheck:
    """What one line holds: the decoded example when it can be used, and its problems."""

    number: int
    example: Any
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return self.example is not None


def check_line(number: int, text: str | None) -> LineCheck | None:
    """Check one line as :func:`read_lines` gave it; None for a blank line."""
    unreadable = read_problem(number, text)
    if unreadable is not None:
        return LineCheck(number, None, [unreadable])
    assert text is not None
    if is_blank(text):
        return None
    obj, found = parse_line(text, number)
    if found:
        return LineCheck(number, None, found)
    found = example_problems(obj, number, text)
    usable = not any(p.is_error for p in found)
    return LineCheck(number, obj if usable else None, found)


@dataclass
class ProblemLog:
    """Counts every problem by severity and code and lists the first :data:`MAX_LISTED` of
    each severity by line; problems with no line (about the whole file) are always listed."""

    error_counts: Counter[str] = field(default_factory=Counter)
    warning_counts: Counter[str] = field(default_factory=Counter)
    _kept: dict[bool, list[tuple[int, int, Problem]]] = field(
        default_factory=lambda: {True: [], False: []}, repr=False, compare=False
    )
    _order: int = field(default=0, repr=False, compare=False)

    def add(self, found: Problem) -> None:
        """Count ``found`` and keep it listed if it is among the first by line."""
        counts = self.error_counts if found.is_error else self.warning_counts
        counts[found.code] += 1
        self.keep(found)

    def keep(self, found: Problem) -> None:
        """List ``found`` (without counting it) while it is among the first by line."""
        heap = self._kept[found.is_error]
        self._order += 1
        item = (-(found.line or 0), -self._order, found)  # file-wide problems are always kept
        if len(heap) < MAX_LISTED:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)

    def listed(self) -> list[Problem]:
        """The kept problems of both severities, by line (then in the order found), with
        file-wide problems last."""
        items = self._kept[True] + self._kept[False]
        items.sort(key=lambda item: (item[2].line is None, -item[0], -item[1]))
        return [found for _, _, found in items]

    def merge(self, other: ProblemLog) -> None:
        """Add another log's counts and listed problems (a part of the same file)."""
        self.error_counts.update(other.error_counts)
        self.warning_counts.update(other.warning_counts)
        for found in other.listed():
            self.keep(found)

    @property
    def error_count(self) -> int:
        return sum(self.error_counts.values())

    @property
    def warning_count(self) -> int:
        return sum(self.warning_counts.values())

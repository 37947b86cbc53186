"""Reading and validating a fine-tuning JSONL file with tunecord's shared validation.

Each line goes through :func:`bot.dataset.lines.check_line`, the one per-line check that
``tunecord check`` and the bot's import use too, so the trainer refuses exactly the lines
they refuse, with the same codes and messages (``line 7: ...``). Blank lines are skipped.
Warnings are returned for the job's event log; errors make the file unusable.

Three readers, all streaming (one line in memory at a time, a line being at most
:data:`bot.dataset.lines.MAX_LINE_BYTES`), all opening the file with
:func:`bot.dataset.files.open_regular`: a path that names a named pipe, a device or a
folder is refused at once (:class:`~bot.dataset.files.NotARegularFile`), never waited on:

* :func:`check_upload` decides an uploaded file's ``status``: an empty file, or one whose
  first :data:`PROBE_LINES` non-blank lines hold no usable example (binary data, another
  format), is ``error`` with the reason; anything else is ``processed``;
* :class:`Tally` counts what a scan found in bounded memory (the first problems, counts of
  the rest), so a job's validation holds no example;
* :func:`load_examples` keeps the examples too: what a training run needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from bot.dataset.files import NotARegularFile, open_regular
from bot.dataset.lines import LineCheck, check_line, read_lines
from bot.dataset.validation import MIN_EXAMPLES, Problem

MAX_LISTED_ERRORS = 3
"""How many bad lines a failure message names before summarising the rest."""
MAX_KEPT_WARNINGS = 20
"""How many warnings a scan keeps (the rest are counted)."""
PROBE_LINES = 1000
"""How many non-blank lines :func:`check_upload` reads at most looking for a usable example."""


class DataFileError(Exception):
    """The file cannot be trained on; ``code``/``param`` go into the job's ``error``."""

    def __init__(self, message: str, *, code: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


def checked_lines(path: Path) -> Iterator[LineCheck]:
    """The check of every non-blank line of ``path``, in order, reading one line at a time.
    :class:`~bot.dataset.files.NotARegularFile` (a ``ValueError`` whose message names the
    file by its last component) if ``path`` is not a regular file."""
    with open_regular(path) as stream:
        yield from _checked(stream)


def _checked(stream: BinaryIO) -> Iterator[LineCheck]:
    for number, text in read_lines(stream):
        checked = check_line(number, text)
        if checked is not None:
            yield checked


@dataclass
class Tally:
    """What a scan of one file found, in memory bounded by :data:`MAX_LISTED_ERRORS` and
    ``max_warnings`` problems whatever the file's size."""

    param: str
    """``training_file`` or ``validation_file``."""
    max_warnings: int = MAX_KEPT_WARNINGS
    examples: int = 0
    error_lines: int = 0
    error_count: int = 0
    errors: list[Problem] = field(default_factory=list)
    warning_count: int = 0
    warnings: list[Problem] = field(default_factory=list)

    def add(self, checked: LineCheck) -> bool:
        """Count one checked line; True if it is a usable example."""
        if not checked.ok:
            found = [p for p in checked.problems if p.is_error]
            self.error_lines += 1
            self.error_count += len(found)
            self.errors.extend(found[: max(0, MAX_LISTED_ERRORS - len(self.errors))])
            return False
        self.examples += 1
        self.warning_count += len(checked.problems)
        self.warnings.extend(checked.problems[: max(0, self.max_warnings - len(self.warnings))])
        return True

    def failure(self, min_examples: int) -> DataFileError | None:
        """Why the file cannot be used (bad lines first, then too few examples), or None."""
        if self.error_lines:
            return DataFileError(self._describe(), code=f"invalid_{self.param}", param=self.param)
        if self.examples < min_examples:
            noun = "Training" if self.param == "training_file" else "Validation"
            return DataFileError(
                f"{noun} file has {self.examples} example(s), but must have at least {min_examples} examples",
                code="invalid_n_examples",
                param=self.param,
            )
        return None

    def _describe(self) -> str:
        noun = "training" if self.param == "training_file" else "validation"
        shown = "; ".join(p.message for p in self.errors)
        more = self.error_count - len(self.errors)
        tail = f" (and {more} more problem(s))" if more > 0 else ""
        return (
            f"Invalid file format in the {noun} file: {self.error_lines} line(s) cannot be used. "
            f"{shown[:1].upper()}{shown[1:]}{tail}."
        )


@dataclass
class DataFile:
    """The usable examples of a file plus the first warnings worth showing."""

    examples: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    warning_count: int = 0


def load_examples(path: Path, *, param: str, min_examples: int = MIN_EXAMPLES) -> DataFile:
    """Parse and validate ``path``; raise :class:`DataFileError` if it cannot be used.

    ``param`` is ``training_file`` or ``validation_file``. A file with any invalid line
    fails with ``invalid_{param}`` naming the first lines; a valid file with fewer than
    ``min_examples`` examples fails with ``invalid_n_examples`` (OpenAI's code and wording).
    """
    tally = Tally(param)
    examples: list[dict[str, Any]] = []
    try:
        for checked in checked_lines(path):
            usable = tally.add(checked)
            if tally.error_lines:
                examples.clear()  # the file fails: only its problems are counted from here
            elif usable:
                examples.append(checked.example)
    except NotARegularFile as exc:
        noun = "training" if param == "training_file" else "validation"
        raise DataFileError(f"The {noun} file cannot be read: {exc}.", code=f"invalid_{param}", param=param) from None
    failure = tally.failure(min_examples)
    if failure is not None:
        raise failure
    return DataFile(examples, tally.warnings, tally.warning_count)


def check_upload(path: Path) -> str | None:
    """Why an uploaded ``fine-tune`` file cannot be a training file, or None if it may be.

    Reads at most :data:`PROBE_LINES` non-blank lines (stopping at the first usable
    example), so the cost is bounded whatever the file holds; the full check runs when a
    job uses the file.
    """
    first: Problem | None = None
    seen = 0
    try:
        stream = open_regular(path)
    except NotARegularFile as exc:
        return f"The file cannot be read: {exc}."
    with stream:
        if os.fstat(stream.fileno()).st_size == 0:
            return "The file is empty: a fine-tuning file has one JSON training example per line."
        for checked in _checked(stream):
            if checked.ok:
                return None
            if first is None:
                first = next((p for p in checked.problems if p.is_error), None)
            seen += 1
            if seen >= PROBE_LINES:
                break
    if first is None:
        return "The file has only blank lines: a fine-tuning file has one JSON training example per line."
    scope = f"none of its first {PROBE_LINES:,} lines is" if seen >= PROBE_LINES else "no line of the file is"
    return f"The file cannot be used for fine-tuning: {scope} a valid training example (first problem: {first.message})."

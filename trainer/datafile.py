"""Reading and validating a fine-tuning JSONL file with tunecord's shared validation.

Lines are decoded by :func:`bot.dataset.checker.read_lines` (BOM, CRLF, UTF-8) and checked by
:mod:`bot.dataset.validation`, so the trainer reports the same codes and messages (``line 7:
...``) as the bot's own file checker. Blank lines are skipped. Warnings are returned for
the job's event log; errors make the file unusable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.dataset.checker import read_lines
from bot.dataset.validation import (
    MIN_EXAMPLES,
    Problem,
    parse_line,
    problem,
    special_token_warning,
    validate_example,
)

MAX_LISTED_ERRORS = 3
"""How many bad lines a failure message names before summarising the rest."""


class DataFileError(Exception):
    """The file cannot be trained on; ``code``/``param`` go into the job's ``error``."""

    def __init__(self, message: str, *, code: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


@dataclass
class DataFile:
    """The usable examples of a file plus the warnings worth showing."""

    examples: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def load_examples(path: Path, *, param: str, min_examples: int = MIN_EXAMPLES) -> DataFile:
    """Parse and validate ``path``; raise :class:`DataFileError` if it cannot be used.

    ``param`` is ``training_file`` or ``validation_file``. A file with any invalid line
    fails with ``invalid_{param}`` naming the first lines; a valid file with fewer than
    ``min_examples`` examples fails with ``invalid_n_examples`` (OpenAI's code and wording).
    """
    loaded = DataFile()
    errors: list[Problem] = []
    with open(path, "rb") as stream:
        for number, text in read_lines(stream):
            if text is not None and not text.strip():
                continue
            found, obj = _check_line(number, text)
            bad = [p for p in found if p.is_error]
            if bad:
                errors.extend(bad)
                continue
            loaded.warnings.extend(found)
            loaded.examples.append(obj)
    if errors:
        raise DataFileError(_describe(errors, param), code=f"invalid_{param}", param=param)
    n = len(loaded.examples)
    if n < min_examples:
        noun = "Training" if param == "training_file" else "Validation"
        raise DataFileError(
            f"{noun} file has {n} example(s), but must have at least {min_examples} examples",
            code="invalid_n_examples",
            param=param,
        )
    return loaded


def _check_line(number: int, text: str | None) -> tuple[list[Problem], Any]:
    if text is None:
        return [problem("line_too_long", "the line is too long", line=number)], None
    if text == "\x00not-utf8":
        return [problem("invalid_encoding", "not valid UTF-8", line=number)], None
    obj, found = parse_line(text, number)
    if found:
        return found, None
    found = validate_example(obj, line=number)
    if not any(p.is_error for p in found):
        warning = special_token_warning(text, line=number)
        if warning is not None:
            found.append(warning)
    return found, obj


def _describe(errors: list[Problem], param: str) -> str:
    noun = "training" if param == "training_file" else "validation"
    lines = sorted({p.line for p in errors if p.line is not None})
    shown = "; ".join(p.message for p in errors[:MAX_LISTED_ERRORS])
    more = len(errors) - MAX_LISTED_ERRORS
    tail = f" (and {more} more problem(s))" if more > 0 else ""
    return (
        f"Invalid file format in the {noun} file: {len(lines)} line(s) cannot be used. "
        f"{shown[:1].upper()}{shown[1:]}{tail}."
    )

"""Reading and validating a fine-tuning JSONL file with tunecord's shared validation.

Each line goes through :func:`bot.dataset.lines.check_line`, the one per-line check that
``tunecord check`` and the bot's import use too, so the trainer refuses exactly the lines
they refuse, with the same codes and messages (``line 7: ...``). Blank lines are skipped.
Warnings are returned for the job's event log; errors make the file unusable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.dataset.lines import check_line, read_lines
from bot.dataset.validation import MIN_EXAMPLES, Problem

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
            checked = check_line(number, text)
            if checked is None:
                continue
            if not checked.ok:
                errors.extend(p for p in checked.problems if p.is_error)
                continue
            loaded.warnings.extend(checked.problems)
            loaded.examples.append(checked.example)
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

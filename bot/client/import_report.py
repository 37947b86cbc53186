"""What ``/example import`` answers: the counts, then every rejected line by number.

The reply says how many lines were accepted, skipped as duplicates and rejected, and
lists each rejected line with its reason (``line 3: ...``, the messages of the one line
check) and any warnings. When that list is long (more than :data:`INLINE_LINES` lines or
:data:`INLINE_CHARS` characters) the reply keeps the counts and the whole list comes as
``import-report.txt``, which also lists the duplicates and the example each repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

from discord.utils import escape_markdown

from bot.dataset.validation import Problem
from bot.services.imports import ImportReport

REPORT_FILENAME = "import-report.txt"
INLINE_LINES = 15
"""Listed problems beyond this many go to the report file."""
INLINE_CHARS = 1800
"""A reply longer than this puts its list in the report file (Discord allows 2,000)."""


@dataclass(frozen=True)
class ImportReply:
    """The reply's text and, for a long report, the file's bytes (UTF-8)."""

    content: str
    report_file: bytes | None = None


def rejected_lines(report: ImportReport) -> int:
    """Lines refused: every non-blank line was imported, a duplicate, or refused."""
    return report.lines - report.imported - report.duplicate_count


def summary(report: ImportReport, dataset_name: str, status: str, *, bold: str = "**") -> str:
    """One sentence of counts (``bold=""`` for plain text)."""
    duplicates = report.duplicate_count
    rejected = rejected_lines(report)
    return (
        f"Imported into {bold}{dataset_name}{bold} as {status}: {bold}{report.imported:,}{bold} "
        f"accepted ({report.imported_tokens:,} tokens), {bold}{duplicates:,}{bold} "
        f"{'duplicate' if duplicates == 1 else 'duplicates'} skipped, "
        f"{bold}{rejected:,}{bold} rejected."
    )


def _unlisted(count: int, listed: int, what: str) -> list[str]:
    more = count - listed
    return [f"... and {more:,} more {what} not listed"] if more > 0 else []


def problem_lines(report: ImportReport) -> list[str]:
    """Rejected lines' reasons, then warnings, by line."""
    errors = [_one_line(p) for p in report.errors]
    errors += _unlisted(report.error_count, len(report.errors), "problems")
    warnings = [f"warning: {_one_line(p)}" for p in report.warnings]
    warnings += _unlisted(report.warning_count, len(report.warnings), "warnings")
    return errors + warnings


def report_text(report: ImportReport, dataset_name: str, status: str) -> str:
    """The whole report, as the attached file holds it."""
    parts = [summary(report, dataset_name, status, bold="")]
    if report.errors or report.error_count:
        parts += ["", "Rejected lines:"]
        parts += [_one_line(p) for p in report.errors]
        parts += _unlisted(report.error_count, len(report.errors), "problems")
    if report.warnings or report.warning_count:
        parts += ["", "Warnings (imported anyway):"]
        parts += [_one_line(p) for p in report.warnings]
        parts += _unlisted(report.warning_count, len(report.warnings), "warnings")
    if report.duplicate_count:
        parts += ["", "Duplicates (skipped):"]
        parts += [
            f"line {d.line}: already in the dataset as example #{d.example_id}"
            for d in report.duplicates
        ]
        parts += _unlisted(report.duplicate_count, len(report.duplicates), "duplicates")
    return "\n".join(parts) + "\n"


def render_import_report(report: ImportReport, dataset_name: str, status: str) -> ImportReply:
    """The reply to an import: inline when short, with the report file when long."""
    head = summary(report, escape_markdown(dataset_name), status)
    listed = problem_lines(report)
    if not listed:
        return ImportReply(head)
    inline = f"{head}\n```\n" + "\n".join(_fenced(line) for line in listed) + "\n```"
    if len(listed) <= INLINE_LINES and len(inline) <= INLINE_CHARS:
        return ImportReply(inline)
    content = f"{head}\nEvery rejected line, with its reason, is in `{REPORT_FILENAME}`."
    return ImportReply(content, report_text(report, dataset_name, status).encode("utf-8"))


def _one_line(found: Problem) -> str:
    return " ".join(found.message.split())


def _fenced(line: str) -> str:
    """A line safe inside a code block (it cannot close the block)."""
    return line.replace("```", "'''")

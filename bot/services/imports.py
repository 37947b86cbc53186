"""JSONL import into a dataset, and export of a dataset as the file a fine-tune uploads.

Import streams the file a batch of lines at a time through the one per-line check that
``tunecord check`` and the trainer use (:func:`bot.dataset.lines.check_line`), so a line
is refused here exactly when it is refused there, with the same code and message. It
then skips content the dataset already has (earlier in the file included), counts tokens
for the dataset's encoding and inserts each batch in one transaction with its counts.
Parsing and tokenising run in a worker thread so the bot's event loop stays responsive;
the write lock is held only while a batch is inserted.

Bounds: a path is read only if it names a regular file (a FIFO, a device or a folder is
refused with :class:`~bot.dataset.files.NotARegularFile`, never waited on); a line is at
most :data:`~bot.dataset.lines.MAX_LINE_BYTES` (longer ones are skipped in bounded reads
and reported); a batch ends at :data:`BATCH_SIZE` lines or once the examples it holds
take :data:`BATCH_TEXT_BYTES` of text, whichever comes first, so a batch holds at most
``BATCH_TEXT_BYTES`` plus one line of text (with its decoded form and canonical JSON, a
few times that in memory); problems and duplicates listed are capped at
:data:`~bot.dataset.lines.MAX_LISTED`; the token counter's cache is bounded in bytes
(:data:`~bot.dataset.tokens.TOKEN_CACHE_BYTES`). Export writes chunks of at most
:data:`BATCH_SIZE` lines or :data:`BATCH_TEXT_BYTES` bytes.

Export writes the approved examples in id order, the dataset's system-prompt policy
applied, one ``ChatExample.to_json()`` per line with ``\\n`` endings, UTF-8, no BOM: the
bytes a fine-tune uploads. Importing a file of canonical lines, approving everything and
exporting under ``as_written`` gives back the same bytes.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bot.dataset.examples import ChatExample
from bot.dataset.files import open_regular
from bot.dataset.lines import MAX_LISTED, ProblemLog, check_line, read_lines
from bot.dataset.policy import apply_policy
from bot.dataset.pricing import PriceCatalogue
from bot.dataset.tokens import count_examples
from bot.dataset.validation import (
    Problem,
    problem,
)
from bot.services.counting import Counting, counting_for_dataset
from storage.datasets import DatasetRepository
from storage.db import Database
from storage.errors import NotFoundError
from storage.examples import ExampleRepository, PreparedExample
from storage.records import Dataset, ExampleSource, ExampleStatus

BATCH_SIZE = 500
"""The most lines checked, counted and inserted together."""
BATCH_TEXT_BYTES = 4 * 1024 * 1024
"""A batch ends once the canonical JSON of the examples it holds takes this much memory
(4 MiB, ``sys.getsizeof``); with one line of at most 1 MiB past it, a batch holds at most
5 MiB of example text."""

Source = str | os.PathLike[str] | IO[bytes]


@dataclass(frozen=True)
class DuplicateLine:
    """A skipped line whose content the dataset already holds as ``example_id``."""

    line: int
    example_id: int


@dataclass
class ImportReport:
    """What an import did, line by line (problems listed as :class:`ProblemLog` lists them;
    duplicates beyond :data:`MAX_LISTED` are counted, not listed)."""

    dataset_id: int
    encoding: str
    lines: int = 0
    """Non-blank lines read."""
    imported: int = 0
    imported_tokens: int = 0
    duplicates: list[DuplicateLine] = field(default_factory=list)
    duplicate_count: int = 0
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    log: ProblemLog = field(default_factory=ProblemLog, repr=False, compare=False)

    @property
    def error_counts(self) -> Counter[str]:
        return self.log.error_counts

    @property
    def warning_counts(self) -> Counter[str]:
        return self.log.warning_counts

    @property
    def error_count(self) -> int:
        return self.log.error_count

    @property
    def warning_count(self) -> int:
        return self.log.warning_count

    def add(self, found: Problem) -> None:
        self.log.add(found)

    def add_duplicate(self, line: int, example_id: int) -> None:
        self.duplicate_count += 1
        if len(self.duplicates) < MAX_LISTED:
            self.duplicates.append(DuplicateLine(line, example_id))

    def finish(self) -> None:
        """List the kept problems and duplicates by line."""
        listed = self.log.listed()
        self.errors = [p for p in listed if p.is_error]
        self.warnings = [p for p in listed if not p.is_error]
        self.duplicates.sort(key=lambda d: d.line)


@dataclass(frozen=True)
class ExportReport:
    examples: int
    bytes: int


@dataclass(frozen=True)
class _Candidate:
    line: int
    example: ChatExample
    example_json: str
    content_hash: str


@dataclass
class _Batch:
    candidates: list[_Candidate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    lines: int = 0
    done: bool = False


def _read_batch(
    lines: Iterator[tuple[int, str | None]], size: int, max_bytes: int = BATCH_TEXT_BYTES
) -> _Batch:
    """Check up to ``size`` non-blank lines, fewer once the examples kept take
    ``max_bytes`` of text (runs in a worker thread)."""
    batch = _Batch()
    held = 0
    while batch.lines < size and held < max_bytes:
        item = next(lines, None)
        if item is None:
            batch.done = True
            break
        checked = check_line(*item)
        if checked is None:
            continue
        batch.lines += 1
        batch.problems.extend(checked.problems)
        if checked.ok:
            example = ChatExample.from_obj(checked.example)
            example_json = example.to_json()
            held += sys.getsizeof(example_json)
            batch.candidates.append(
                _Candidate(checked.number, example, example_json, example.content_hash())
            )
    return batch


def _count(candidates: list[_Candidate], counting: Counting) -> list[int]:
    trained = [counting.trained(c.example) for c in candidates]
    return [c.tokens for c in count_examples(trained, counting.encoding)]


async def import_jsonl(
    db: Database,
    guild_id: int,
    dataset_id: int,
    source: Source,
    *,
    contributor_id: int | None = None,
    status: ExampleStatus | str = ExampleStatus.PENDING,
    origin: ExampleSource | str = ExampleSource.IMPORT,
    counting: Counting,
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    """Import a JSONL file (a path or a binary file object) into one of the guild's datasets.

    Invalid lines are reported with their line numbers and skipped; the rest are imported
    with ``status``. Token counts are cached for ``counting`` (the dataset's model, see
    :func:`bot.services.counting.counting_for_dataset`). Raises :class:`NotFoundError` if the
    guild has no such dataset.
    """
    dataset = await DatasetRepository(db).get(guild_id, dataset_id)
    if dataset is None:
        raise NotFoundError(f"no dataset {dataset_id} in this server")
    examples = ExampleRepository(db)
    report = ImportReport(dataset_id=dataset_id, encoding=counting.encoding)
    with ExitStack() as stack:
        stream = _open_binary(source, stack)
        lines = read_lines(stream)
        done = False
        while not done:
            batch = await asyncio.to_thread(_read_batch, lines, batch_size)
            done = batch.done
            report.lines += batch.lines
            for found in batch.problems:
                report.add(found)
            if batch.candidates:
                await _store_batch(
                    examples, guild_id, dataset_id, batch.candidates, counting, report,
                    contributor_id=contributor_id, status=status, origin=origin,
                )
    report.finish()
    return report


async def _store_batch(
    examples: ExampleRepository,
    guild_id: int,
    dataset_id: int,
    candidates: list[_Candidate],
    counting: Counting,
    report: ImportReport,
    *,
    contributor_id: int | None,
    status: ExampleStatus | str,
    origin: ExampleSource | str,
) -> None:
    existing = await examples.existing_hashes(
        guild_id, dataset_id, list({c.content_hash for c in candidates})
    )
    first_in_batch: dict[str, _Candidate] = {}
    fresh: list[_Candidate] = []
    repeats: list[_Candidate] = []
    for candidate in candidates:
        if candidate.content_hash in existing:
            report.add_duplicate(candidate.line, existing[candidate.content_hash])
        elif candidate.content_hash in first_in_batch:
            repeats.append(candidate)
        else:
            first_in_batch[candidate.content_hash] = candidate
            fresh.append(candidate)
    tokens = await asyncio.to_thread(_count, fresh, counting)
    prepared = [
        PreparedExample(
            c.example_json, c.content_hash, ((counting.key, n, min(n, counting.billed_cap)),)
        )
        for c, n in zip(fresh, tokens, strict=True)
    ]
    ids = await examples.add_prepared(
        guild_id, dataset_id, prepared, contributor_id=contributor_id, source=origin, status=status
    )
    stored: dict[str, int] = {}
    for candidate, n, new_id in zip(fresh, tokens, ids, strict=True):
        if new_id is None:  # stored by someone else since we looked
            record = await examples.find_by_hash(guild_id, dataset_id, candidate.content_hash)
            assert record is not None
            stored[candidate.content_hash] = record.id
            report.add_duplicate(candidate.line, record.id)
            continue
        stored[candidate.content_hash] = new_id
        report.imported += 1
        report.imported_tokens += n
        if n > counting.billed_cap:
            report.add(
                problem(
                    "example_too_long",
                    f"{n} tokens, over the model's {counting.billed_cap}-token training "
                    "context; it will be truncated and billed at the cap",
                    line=candidate.line,
                    severity="warning",
                )
            )
    for candidate in repeats:
        report.add_duplicate(candidate.line, stored[candidate.content_hash])


def _open_binary(source: Source, stack: ExitStack) -> IO[bytes]:
    if isinstance(source, str | os.PathLike):
        return stack.enter_context(open_regular(source))
    if not isinstance(source.read(0), bytes):
        raise TypeError("import needs a binary file object (open the file with 'rb')")
    return source


# -- export -------------------------------------------------------------------------------

EXPORT_PAGE_ROWS = 64
"""Examples the export reads from the database at a time: with lines of up to 1 MiB, a page
holds at most 64 MiB of text whatever the dataset's size (its chunks are bounded by
:data:`BATCH_TEXT_BYTES`)."""


async def iter_export_lines(
    db: Database, guild_id: int, dataset_id: int, *, batch_size: int = BATCH_SIZE
) -> AsyncIterator[bytes]:
    """The training file, a batch of encoded lines at a time.

    Run it inside ``async with db.snapshot():`` for a consistent file (:func:`export_jsonl`
    does). Raises :class:`NotFoundError` if the guild has no such dataset, ``ValueError`` if
    the dataset's policy is ``include`` and it has no system prompt.
    """
    dataset = await DatasetRepository(db).get(guild_id, dataset_id)
    if dataset is None:
        raise NotFoundError(f"no dataset {dataset_id} in this server")
    examples = ExampleRepository(db)
    chunk: list[bytes] = []
    held = 0
    async for record in examples.iterate(
        guild_id, dataset_id, status=ExampleStatus.APPROVED, batch_size=EXPORT_PAGE_ROWS
    ):
        example = apply_policy(record.example, dataset.policy, dataset.system_prompt)
        line = example.to_json().encode("utf-8") + b"\n"
        chunk.append(line)
        held += len(line)
        if len(chunk) >= batch_size or held >= BATCH_TEXT_BYTES:
            yield b"".join(chunk)
            chunk.clear()
            held = 0
    if chunk:
        yield b"".join(chunk)


async def export_jsonl(
    db: Database, guild_id: int, dataset_id: int, dest: str | os.PathLike[str] | IO[bytes]
) -> ExportReport:
    """Write the dataset's training file to ``dest`` (a path, replaced atomically, or a
    binary file object) from one consistent snapshot."""
    if isinstance(dest, str | os.PathLike):
        target = Path(dest)
        fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                report = await export_jsonl(db, guild_id, dataset_id, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return report
    lines = written = 0
    async with db.snapshot():
        async for chunk in iter_export_lines(db, guild_id, dataset_id):
            await asyncio.to_thread(dest.write, chunk)
            lines += chunk.count(b"\n")
            written += len(chunk)
    return ExportReport(examples=lines, bytes=written)


class DatasetFileService:
    """Import a member's JSONL file into a dataset, export its training file: the use cases
    behind ``/example import`` and ``/dataset export``."""

    def __init__(self, db: Database, catalogue: PriceCatalogue) -> None:
        self._db = db
        self._catalogue = catalogue

    async def import_file(
        self,
        dataset: Dataset,
        source: Source,
        *,
        contributor_id: int | None,
        status: ExampleStatus | str = ExampleStatus.PENDING,
    ) -> ImportReport:
        """Import ``source`` into ``dataset`` with ``status``; token counts are cached for
        the dataset's base model and policy, as stats read them."""
        return await import_jsonl(
            self._db,
            dataset.guild_id,
            dataset.id,
            source,
            contributor_id=contributor_id,
            status=status,
            counting=counting_for_dataset(dataset, self._catalogue),
        )

    async def export(
        self, dataset: Dataset, dest: str | os.PathLike[str] | IO[bytes]
    ) -> ExportReport:
        """The approved examples, policy applied: the bytes a fine-tune uploads."""
        return await export_jsonl(self._db, dataset.guild_id, dataset.id, dest)

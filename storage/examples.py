"""Examples, their cached token counts, and dataset statistics.

Statistics never re-tokenise and never scan the examples: triggers (migration 2) keep
per-dataset totals by status and by encoding in the same transaction as every insert,
delete, status change and cached count, so :meth:`ExampleRepository.stats` reads at most
six rows whatever the dataset's size. :meth:`ExampleRepository.stats_from_rows` computes
the same numbers by aggregating the rows themselves (for checks and benchmarks) and
:meth:`ExampleRepository.rebuild_stats` rewrites the totals from the rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.dataset.errors import InvalidInput
from bot.dataset.examples import ChatExample
from storage.db import Database, Reader, Transaction, parse_timestamp
from storage.errors import DuplicateError, NotFoundError
from storage.records import (
    DatasetStats,
    ExampleRecord,
    ExampleSource,
    ExampleStatus,
    StatusStats,
)
from storage.tables import Table

_NO_DATASET = "That dataset does not exist in this server."

DEFAULT_BILLED_CAP = 16_385
"""Tokens billed per example at most when the model's training context is unknown
(OpenAI cookbook ``MAX_TOKENS_PER_EXAMPLE``); longer examples are truncated in training."""

_EXAMPLES = Table(
    "examples",
    "id",
    "guild_id",
    "dataset_id",
    "example_json",
    "content_hash",
    "contributor_id",
    "status",
    "source",
    "created_at",
    "updated_at",
)
_SELECT_ONE = _EXAMPLES.select("id = ? AND guild_id = ?")
_SELECT_BY_HASH = _EXAMPLES.select("guild_id = ? AND dataset_id = ? AND content_hash = ?")
_SELECT_PAGE = _EXAMPLES.select(
    "guild_id = ? AND dataset_id = ? AND id > ?", order_by="id", limit=True
)
_SELECT_PAGE_BY_STATUS = _EXAMPLES.select(
    "guild_id = ? AND dataset_id = ? AND status = ? AND id > ?", order_by="id", limit=True
)
_SELECT_BY_CONTRIBUTOR = _EXAMPLES.select("guild_id = ? AND contributor_id = ?", order_by="id")
_SELECT_PAGE_BY_CONTRIBUTOR = _EXAMPLES.select(
    "guild_id = ? AND dataset_id = ? AND contributor_id = ? AND id > ? "
    "AND (? IS NULL OR status = ?)",
    order_by="id",
    limit=True,
)
_SELECT_INVOLVING = _EXAMPLES.select(
    "guild_id = ? AND (contributor_id = ? OR id IN "
    "(SELECT example_id FROM example_authors WHERE guild_id = ? AND user_id = ?))",
    order_by="id",
)
_SELECT_UNCOUNTED = _EXAMPLES.select(
    "e.guild_id = ? AND e.dataset_id = ? AND e.id > ? AND NOT EXISTS "
    "(SELECT 1 FROM example_tokens AS t WHERE t.example_id = e.id AND t.encoding = ?)",
    alias="e",
    order_by="e.id",
    limit=True,
)
_UPDATE_CONTENT = _EXAMPLES.returning(
    "UPDATE examples SET example_json = ?, content_hash = ?, updated_at = ? "
    "WHERE id = ? AND guild_id = ?"
)
# The dataset must be the guild's; a content hash already in the dataset inserts nothing.
_INSERT = (
    "INSERT INTO examples (guild_id, dataset_id, example_json, content_hash, contributor_id, "
    "status, source, created_at, updated_at) "
    "SELECT d.guild_id, d.id, ?, ?, ?, ?, ?, ?, ? FROM datasets AS d "
    "WHERE d.id = ? AND d.guild_id = ? "
    "ON CONFLICT (dataset_id, content_hash) DO NOTHING"
)
# CROSS JOIN keeps json_each outermost: one index lookup per hash.
_IDS_BY_HASH = (
    "SELECT e.content_hash, e.id FROM json_each(?) AS j CROSS JOIN examples AS e "
    "WHERE e.dataset_id = ? AND e.content_hash = j.value AND e.guild_id = ?"
)
# dataset_id and status come from the example row itself (and the composite foreign key
# would refuse anything else); the guild filter keeps counts inside the caller's guild.
_INSERT_TOKENS = (
    "INSERT INTO example_tokens (example_id, encoding, tokens, billed_tokens, dataset_id, status) "
    "SELECT e.id, ?, ?, ?, e.dataset_id, e.status FROM examples AS e "
    "WHERE e.id = ? AND e.guild_id = ? "
    "ON CONFLICT (example_id, encoding) DO UPDATE SET "
    "tokens = excluded.tokens, billed_tokens = excluded.billed_tokens"
)
_STATS = (
    "SELECT s.status AS status, s.examples AS examples, t.examples AS counted, "
    "t.tokens AS tokens, t.billed_tokens AS billed_tokens "
    "FROM datasets AS d "
    "LEFT JOIN dataset_status_counts AS s ON s.dataset_id = d.id "
    "LEFT JOIN dataset_token_totals AS t "
    "ON t.dataset_id = s.dataset_id AND t.status = s.status AND t.encoding = ? "
    "WHERE d.id = ? AND d.guild_id = ?"
)
_STATS_FROM_ROWS = (
    "SELECT e.status AS status, count(*) AS examples, count(t.example_id) AS counted, "
    "sum(t.tokens) AS tokens, sum(t.billed_tokens) AS billed_tokens "
    "FROM examples AS e "
    "LEFT JOIN example_tokens AS t ON t.example_id = e.id AND t.encoding = ? "
    "WHERE e.dataset_id = ? AND e.guild_id = ? GROUP BY e.status"
)


@dataclass(frozen=True)
class PreparedExample:
    """An example ready to insert: its canonical line, hash and token counts by encoding."""

    example_json: str
    content_hash: str
    token_counts: tuple[tuple[str, int, int], ...] = ()
    """(encoding, tokens, billed_tokens) triples to cache with it."""

    @classmethod
    def of(
        cls,
        example: ChatExample,
        token_counts: Mapping[str, int] | None = None,
        *,
        billed_cap: int = DEFAULT_BILLED_CAP,
    ) -> PreparedExample:
        """Prepare ``example``; raises :class:`InvalidInput` (a ``ValueError``) if its text
        cannot be stored as UTF-8."""
        line = example.to_json()
        try:
            line.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                "This conversation contains a broken character (text that is not valid "
                "Unicode); remove it and try again."
            ) from exc
        counts = tuple(
            (encoding, tokens, min(tokens, billed_cap))
            for encoding, tokens in (token_counts or {}).items()
        )
        return cls(line, example.content_hash(), counts)


async def _require_dataset(reader: Reader, guild_id: int, dataset_id: int) -> None:
    """Raise :class:`NotFoundError` unless the guild has the dataset."""
    found = await reader.fetchval(
        "SELECT 1 FROM datasets WHERE id = ? AND guild_id = ?", (dataset_id, guild_id)
    )
    if found is None:
        raise NotFoundError(_NO_DATASET)


def _token_rows(
    item: PreparedExample, example_id: int, guild_id: int
) -> list[tuple[str, int, int, int, int]]:
    """Parameter rows of :data:`_INSERT_TOKENS` for one example's counts."""
    return [(enc, tokens, billed, example_id, guild_id) for enc, tokens, billed in item.token_counts]


def _record(row: sqlite3.Row) -> ExampleRecord:
    source = row["source"]
    try:
        source = ExampleSource(source)
    except ValueError:
        pass
    created_at = parse_timestamp(row["created_at"])
    updated_at = parse_timestamp(row["updated_at"])
    assert created_at is not None and updated_at is not None
    return ExampleRecord(
        id=row["id"],
        guild_id=row["guild_id"],
        dataset_id=row["dataset_id"],
        example=ChatExample.from_json(row["example_json"]),
        content_hash=row["content_hash"],
        contributor_id=row["contributor_id"],
        status=ExampleStatus(row["status"]),
        source=source,
        created_at=created_at,
        updated_at=updated_at,
    )


def _stats(dataset_id: int, encoding: str, rows: Iterable[sqlite3.Row]) -> DatasetStats:
    by_status: dict[str, StatusStats] = {}
    for row in rows:
        if row["status"] is None:  # the dataset exists but has never had an example
            continue
        by_status[row["status"]] = StatusStats(
            examples=row["examples"] or 0,
            counted=row["counted"] or 0,
            tokens=row["tokens"] or 0,
            billed_tokens=row["billed_tokens"] or 0,
        )
    empty = StatusStats()
    return DatasetStats(
        dataset_id=dataset_id,
        encoding=encoding,
        pending=by_status.get(ExampleStatus.PENDING, empty),
        approved=by_status.get(ExampleStatus.APPROVED, empty),
        rejected=by_status.get(ExampleStatus.REJECTED, empty),
    )


class ExampleRepository:
    """A guild's examples: add, curate, page through, count tokens, summarise."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- adding -------------------------------------------------------------------------

    async def add(
        self,
        guild_id: int,
        dataset_id: int,
        example: ChatExample,
        *,
        contributor_id: int | None = None,
        source: ExampleSource | str = ExampleSource.OTHER,
        status: ExampleStatus | str = ExampleStatus.PENDING,
        token_counts: Mapping[str, int] | None = None,
        billed_cap: int = DEFAULT_BILLED_CAP,
        authors: Mapping[int, int] | None = None,
    ) -> ExampleRecord:
        """Store one example (with any token counts already known, by encoding).

        ``authors`` maps a message's index in the conversation to the member who wrote it
        (a capture of a reply chain); turns not listed are the contributor's own words.

        Raises :class:`DuplicateError` (with the existing id) if the dataset already holds
        the same content, :class:`NotFoundError` if the guild has no such dataset.
        """
        prepared = PreparedExample.of(example, token_counts, billed_cap=billed_cap)
        async with self._db.transaction() as tx:
            [new_id] = await self._insert(
                tx, guild_id, dataset_id, [prepared], contributor_id, source, status
            )
            if new_id is None:
                existing = await self._ids_by_hash(tx, guild_id, dataset_id, [prepared.content_hash])
                existing_id = existing[prepared.content_hash]
                raise DuplicateError(
                    f"The dataset already has this conversation (example #{existing_id}).",
                    existing_id,
                )
            if authors:
                await tx.executemany(
                    "INSERT INTO example_authors (example_id, turn, user_id, guild_id) "
                    "VALUES (?, ?, ?, ?)",
                    [(new_id, turn, user_id, guild_id) for turn, user_id in authors.items()],
                )
            row = await tx.fetchone(_SELECT_ONE, (new_id, guild_id))
        assert row is not None
        return _record(row)

    async def add_prepared(
        self,
        guild_id: int,
        dataset_id: int,
        items: Sequence[PreparedExample],
        *,
        contributor_id: int | None = None,
        source: ExampleSource | str = ExampleSource.IMPORT,
        status: ExampleStatus | str = ExampleStatus.PENDING,
    ) -> list[int | None]:
        """Insert a batch in one transaction; per item the new id, or ``None`` for a
        duplicate (of a stored example or of an earlier item).

        Raises :class:`NotFoundError` if the guild has no such dataset.
        """
        async with self._db.transaction() as tx:
            return await self._insert(
                tx, guild_id, dataset_id, items, contributor_id, source, status
            )

    async def _insert(
        self,
        tx: Transaction,
        guild_id: int,
        dataset_id: int,
        items: Sequence[PreparedExample],
        contributor_id: int | None,
        source: ExampleSource | str,
        status: ExampleStatus | str,
    ) -> list[int | None]:
        """Insert examples with their counts in a few statements, whatever their number.

        The write lock is held, so the hashes present before the insert are exactly the
        duplicates; the lookup after it gives the new ids.
        """
        await _require_dataset(tx, guild_id, dataset_id)
        hashes = list({item.content_hash: None for item in items})
        before = await self._ids_by_hash(tx, guild_id, dataset_id, hashes)
        now = self._db.now_text()
        status_value, source_value = ExampleStatus(status).value, str(source)
        await tx.executemany(
            _INSERT,
            [
                (item.example_json, item.content_hash, contributor_id, status_value,
                 source_value, now, now, dataset_id, guild_id)
                for item in items
                if item.content_hash not in before
            ],
        )
        after = await self._ids_by_hash(tx, guild_id, dataset_id, hashes)
        ids: list[int | None] = []
        token_rows: list[tuple[str, int, int, int, int]] = []
        taken: set[str] = set(before)
        for item in items:
            if item.content_hash in taken:
                ids.append(None)
                continue
            taken.add(item.content_hash)
            new_id = after[item.content_hash]
            ids.append(new_id)
            token_rows += _token_rows(item, new_id, guild_id)
        if token_rows:
            await tx.executemany(_INSERT_TOKENS, token_rows)
        return ids

    @staticmethod
    async def _ids_by_hash(
        reader: Reader, guild_id: int, dataset_id: int, hashes: Sequence[str]
    ) -> dict[str, int]:
        if not hashes:
            return {}
        rows = await reader.fetchall(_IDS_BY_HASH, (json.dumps(list(hashes)), dataset_id, guild_id))
        return {r["content_hash"]: r["id"] for r in rows}

    # -- reading ------------------------------------------------------------------------

    async def get(self, guild_id: int, example_id: int) -> ExampleRecord | None:
        row = await self._db.fetchone(_SELECT_ONE, (example_id, guild_id))
        return None if row is None else _record(row)

    async def find_by_hash(
        self, guild_id: int, dataset_id: int, content_hash: str
    ) -> ExampleRecord | None:
        row = await self._db.fetchone(_SELECT_BY_HASH, (guild_id, dataset_id, content_hash))
        return None if row is None else _record(row)

    async def existing_hashes(
        self, guild_id: int, dataset_id: int, hashes: Sequence[str]
    ) -> dict[str, int]:
        """Which of ``hashes`` the dataset already holds, mapped to their example ids."""
        async with self._db.reading() as reader:
            return await self._ids_by_hash(reader, guild_id, dataset_id, hashes)

    async def page(
        self,
        guild_id: int,
        dataset_id: int,
        *,
        status: ExampleStatus | str | None = None,
        after_id: int = 0,
        limit: int = 50,
    ) -> list[ExampleRecord]:
        """A page of examples in id order; pass the last id as ``after_id`` for the next."""
        if status is None:
            rows = await self._db.fetchall(_SELECT_PAGE, (guild_id, dataset_id, after_id, limit))
        else:
            rows = await self._db.fetchall(
                _SELECT_PAGE_BY_STATUS,
                (guild_id, dataset_id, ExampleStatus(status).value, after_id, limit),
            )
        return [_record(r) for r in rows]

    async def iterate(
        self,
        guild_id: int,
        dataset_id: int,
        *,
        status: ExampleStatus | str | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[ExampleRecord]:
        """Every matching example in id order, a page at a time.

        Pages are separate reads; iterate inside ``async with db.snapshot():`` to see one
        consistent moment (the exporter does).
        """
        after_id = 0
        while True:
            page = await self.page(
                guild_id, dataset_id, status=status, after_id=after_id, limit=batch_size
            )
            for record in page:
                yield record
            if len(page) < batch_size:
                return
            after_id = page[-1].id

    async def page_by_contributor(
        self,
        guild_id: int,
        dataset_id: int,
        contributor_id: int,
        *,
        status: ExampleStatus | str | None = None,
        after_id: int = 0,
        limit: int = 50,
    ) -> list[ExampleRecord]:
        """A page of one member's examples in the dataset, in id order."""
        value = None if status is None else ExampleStatus(status).value
        rows = await self._db.fetchall(
            _SELECT_PAGE_BY_CONTRIBUTOR,
            (guild_id, dataset_id, contributor_id, after_id, value, value, limit),
        )
        return [_record(r) for r in rows]

    async def authors(self, guild_id: int, example_id: int) -> dict[int, int]:
        """Who wrote which turn (message index to user id), for captured turns."""
        rows = await self._db.fetchall(
            "SELECT turn, user_id FROM example_authors WHERE example_id = ? AND guild_id = ? "
            "ORDER BY turn",
            (example_id, guild_id),
        )
        return {r["turn"]: r["user_id"] for r in rows}

    async def list_involving(self, guild_id: int, user_id: int) -> list[ExampleRecord]:
        """Every example of the guild that ``user_id`` contributed or wrote a turn of."""
        rows = await self._db.fetchall(_SELECT_INVOLVING, (guild_id, user_id, guild_id, user_id))
        return [_record(r) for r in rows]

    async def contributor_count(
        self, guild_id: int, dataset_id: int, contributor_id: int, status: ExampleStatus | str
    ) -> int:
        """How many of the dataset's examples in ``status`` the member contributed."""
        value = await self._db.fetchval(
            "SELECT c.examples FROM dataset_contributor_counts AS c "
            "JOIN datasets AS d ON d.id = c.dataset_id "
            "WHERE c.dataset_id = ? AND d.guild_id = ? AND c.contributor_id = ? AND c.status = ?",
            (dataset_id, guild_id, contributor_id, ExampleStatus(status).value),
        )
        return int(value or 0)

    async def top_contributors(
        self,
        guild_id: int,
        dataset_id: int,
        *,
        status: ExampleStatus | str = ExampleStatus.APPROVED,
        limit: int = 5,
    ) -> list[tuple[int, int]]:
        """``(user_id, examples)`` of the members with the most examples in ``status``,
        most first (ties by user id), from the maintained counts."""
        rows = await self._db.fetchall(
            "SELECT c.contributor_id, c.examples FROM dataset_contributor_counts AS c "
            "JOIN datasets AS d ON d.id = c.dataset_id "
            "WHERE c.dataset_id = ? AND d.guild_id = ? AND c.status = ? AND c.examples > 0 "
            "ORDER BY c.examples DESC, c.contributor_id LIMIT ?",
            (dataset_id, guild_id, ExampleStatus(status).value, limit),
        )
        return [(r["contributor_id"], r["examples"]) for r in rows]

    async def system_prompts(
        self,
        guild_id: int,
        dataset_id: int,
        *,
        status: ExampleStatus | str = ExampleStatus.APPROVED,
        limit: int = 10,
    ) -> list[tuple[str, int]]:
        """``(system prompt, examples)`` among the dataset's examples in ``status``, most
        used first; ``""`` stands for examples without a system message. From the
        maintained counts."""
        rows = await self._db.fetchall(
            "SELECT p.prompt, p.examples FROM dataset_system_prompts AS p "
            "JOIN datasets AS d ON d.id = p.dataset_id "
            "WHERE p.dataset_id = ? AND d.guild_id = ? AND p.status = ? AND p.examples > 0 "
            "ORDER BY p.examples DESC, p.prompt LIMIT ?",
            (dataset_id, guild_id, ExampleStatus(status).value, limit),
        )
        return [(r["prompt"], r["examples"]) for r in rows]

    async def list_by_contributor(self, guild_id: int, user_id: int) -> list[ExampleRecord]:
        """Every example ``user_id`` contributed in this guild, in any dataset."""
        rows = await self._db.fetchall(_SELECT_BY_CONTRIBUTOR, (guild_id, user_id))
        return [_record(r) for r in rows]

    # -- curating -----------------------------------------------------------------------

    async def set_status(
        self, guild_id: int, example_id: int, status: ExampleStatus | str
    ) -> bool:
        """Approve, reject or reopen one example; False if the guild has no such example."""
        return await self.set_status_many(guild_id, [example_id], status) > 0

    async def set_status_many(
        self, guild_id: int, example_ids: Iterable[int], status: ExampleStatus | str
    ) -> int:
        """Set the status of several examples at once; returns how many changed."""
        ids = [int(i) for i in example_ids]
        if not ids:
            return 0
        return await self._db.execute(
            # "+guild_id" keeps the planner on the id lookups instead of the guild index.
            "UPDATE examples SET status = ?, updated_at = ? "
            "WHERE id IN (SELECT value FROM json_each(?)) AND +guild_id = ? AND status <> ?",
            (
                ExampleStatus(status).value,
                self._db.now_text(),
                json.dumps(ids),
                guild_id,
                ExampleStatus(status).value,
            ),
        )

    async def update_content(
        self,
        guild_id: int,
        example_id: int,
        example: ChatExample,
        *,
        token_counts: Mapping[str, int] | None = None,
        billed_cap: int = DEFAULT_BILLED_CAP,
    ) -> ExampleRecord | None:
        """Replace an example's conversation (an edit); its cached token counts are dropped
        and replaced by ``token_counts``. ``None`` if the guild has no such example; raises
        :class:`DuplicateError` if the new content already exists in the dataset."""
        prepared = PreparedExample.of(example, token_counts, billed_cap=billed_cap)
        async with self._db.transaction() as tx:
            try:
                row = await tx.fetchone(
                    _UPDATE_CONTENT,
                    (prepared.example_json, prepared.content_hash, self._db.now_text(),
                     example_id, guild_id),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateError("The dataset already has this conversation.") from exc
            if row is None:
                return None
            await tx.execute(
                "DELETE FROM example_tokens WHERE example_id IN "
                "(SELECT id FROM examples WHERE id = ? AND guild_id = ?)",
                (example_id, guild_id),
            )
            await tx.executemany(_INSERT_TOKENS, _token_rows(prepared, example_id, guild_id))
        return _record(row)

    async def delete(self, guild_id: int, example_id: int) -> bool:
        """Delete one example (its votes and token counts go with it)."""
        deleted = await self._db.execute(
            "DELETE FROM examples WHERE id = ? AND guild_id = ?", (example_id, guild_id)
        )
        return deleted > 0

    # -- token counts and statistics ----------------------------------------------------

    async def uncounted(
        self,
        guild_id: int,
        dataset_id: int,
        encoding: str,
        *,
        after_id: int = 0,
        limit: int = 500,
    ) -> list[ExampleRecord]:
        """A batch of examples with no cached count for ``encoding`` (in id order)."""
        rows = await self._db.fetchall(
            _SELECT_UNCOUNTED, (guild_id, dataset_id, after_id, encoding, limit)
        )
        return [_record(r) for r in rows]

    async def store_token_counts(
        self,
        guild_id: int,
        encoding: str,
        counts: Iterable[tuple[int, int]],
        *,
        billed_cap: int = DEFAULT_BILLED_CAP,
    ) -> int:
        """Cache ``(example_id, tokens)`` counts for ``encoding``; ids outside the guild are
        ignored. Billed tokens are the count capped at ``billed_cap`` (the model's training
        context). Returns how many counts were stored."""
        rows = [
            (encoding, tokens, min(tokens, billed_cap), example_id, guild_id)
            for example_id, tokens in counts
        ]
        if not rows:
            return 0
        async with self._db.transaction() as tx:
            return await tx.executemany(_INSERT_TOKENS, rows)

    async def token_counts(self, guild_id: int, example_id: int) -> dict[str, int]:
        """The cached counts of one example, by encoding."""
        rows = await self._db.fetchall(
            "SELECT t.encoding, t.tokens FROM example_tokens AS t "
            "JOIN examples AS e ON e.id = t.example_id "
            "WHERE t.example_id = ? AND e.guild_id = ?",
            (example_id, guild_id),
        )
        return {r["encoding"]: r["tokens"] for r in rows}

    async def stats(self, guild_id: int, dataset_id: int, encoding: str) -> DatasetStats:
        """Counts and token totals by status for ``encoding``, from the maintained totals.

        Raises :class:`NotFoundError` if the guild has no such dataset.
        """
        rows = await self._db.fetchall(_STATS, (encoding, dataset_id, guild_id))
        if not rows:
            raise NotFoundError(_NO_DATASET)
        return _stats(dataset_id, encoding, rows)

    async def stats_from_rows(
        self, guild_id: int, dataset_id: int, encoding: str
    ) -> DatasetStats:
        """The same as :meth:`stats`, aggregated over every example row (slow: O(n))."""
        async with self._db.reading() as reader:
            await _require_dataset(reader, guild_id, dataset_id)
            rows = await reader.fetchall(_STATS_FROM_ROWS, (encoding, dataset_id, guild_id))
        return _stats(dataset_id, encoding, rows)

    async def rebuild_stats(self, guild_id: int, dataset_id: int) -> None:
        """Recompute the dataset's maintained totals from its rows (a repair tool)."""
        async with self._db.transaction() as tx:
            await _require_dataset(tx, guild_id, dataset_id)
            await tx.execute(
                "DELETE FROM dataset_status_counts WHERE dataset_id IN "
                "(SELECT id FROM datasets WHERE id = ? AND guild_id = ?)",
                (dataset_id, guild_id),
            )
            await tx.execute(
                "DELETE FROM dataset_token_totals WHERE dataset_id IN "
                "(SELECT id FROM datasets WHERE id = ? AND guild_id = ?)",
                (dataset_id, guild_id),
            )
            await tx.execute(
                "INSERT INTO dataset_status_counts (dataset_id, status, examples) "
                "SELECT dataset_id, status, count(*) FROM examples "
                "WHERE dataset_id = ? AND guild_id = ? GROUP BY status",
                (dataset_id, guild_id),
            )
            await tx.execute(
                "INSERT INTO dataset_token_totals "
                "(dataset_id, encoding, status, examples, tokens, billed_tokens) "
                "SELECT t.dataset_id, t.encoding, t.status, count(*), sum(t.tokens), "
                "sum(t.billed_tokens) FROM example_tokens AS t "
                "JOIN datasets AS d ON d.id = t.dataset_id "
                "WHERE t.dataset_id = ? AND d.guild_id = ? GROUP BY t.encoding, t.status",
                (dataset_id, guild_id),
            )

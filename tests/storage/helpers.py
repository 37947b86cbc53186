"""Helpers for the storage tests, and the crash-test writer process.

``python -m tests.storage.helpers crash-writer DB FIRST COUNT`` inserts examples FIRST,
FIRST+1, ... (COUNT of them), one transaction each, printing each new id (flushed) only
after its insert returned.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from bot.dataset.examples import ChatExample
from storage.store import Storage

GUILD_A = 111_111_111_111_111_111
GUILD_B = 222_222_222_222_222_222
ALICE = 900_000_000_000_000_001
BOB = 900_000_000_000_000_002


def example(n: int, *, system: str | None = None, turns: int = 1) -> ChatExample:
    """A distinct small conversation numbered ``n``."""
    pairs = [(f"question {n}.{t}: what is {n} + {t}?", f"{n + t}, matey") for t in range(turns)]
    return ChatExample.from_pairs(pairs, system=system)


def schema(path: str | Path) -> list[tuple[str, str, str, str]]:
    """The database's schema as (type, name, table, sql) rows, sorted, via plain sqlite3."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()
    return [tuple(r) for r in rows]


async def _crash_writer(path: str, first: int, count: int) -> None:
    storage = await Storage.open(path)
    dataset = await storage.datasets.get_by_name(GUILD_A, "crash")
    if dataset is None:
        dataset = await storage.datasets.create(GUILD_A, "crash")
    print("ready", flush=True)
    for n in range(first, first + count):
        record = await storage.examples.add(
            GUILD_A, dataset.id, example(n, turns=3), contributor_id=ALICE,
            token_counts={"o200k_base": 40 + n % 7},
        )
        sys.stdout.write(f"{record.id}\n")
        sys.stdout.flush()
    await storage.close()


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "crash-writer":
        asyncio.run(_crash_writer(argv[1], int(argv[2]), int(argv[3])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

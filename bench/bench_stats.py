"""Benchmark: dataset statistics at 100k and 1M examples.

    python -m bench.bench_stats [--sizes 100000,1000000] [--reps 1000] [--dir /tmp]

For each size it builds a temporary SQLite file through the real schema (migrations,
triggers, foreign keys on), bulk-inserts synthetic examples with ``executemany`` (70 %
approved, 20 % pending, 10 % rejected; 95 % with a cached o200k_base count) next to a
noise dataset in another guild, then times, in the same run:

* ``stats``: :meth:`storage.examples.ExampleRepository.stats`, the production path (reads
  the trigger-maintained totals), through the async wrapper, many repetitions;
* ``aggregate``: :meth:`~storage.examples.ExampleRepository.stats_from_rows`, the same
  numbers by SQL aggregation over every row (covering indexes, no totals table);
* ``naive``: fetch every row's status and cached counts and sum them in Python;
* ``retokenise``: tiktoken over a sample of the examples, extrapolated to the dataset.

It prints p50/p99 in milliseconds and each method's p50 as a multiple of ``stats``'s.
Target: ``stats`` p99 <= 50 ms at 1M examples.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.dataset.examples import ChatExample
from bot.dataset.tokens import TokenCounter
from storage.db import Database
from storage.examples import ExampleRepository
from storage.records import DatasetStats

GUILD = 1_000_000_000_000_000_001
NOISE_GUILD = 1_000_000_000_000_000_002
ENCODING = "o200k_base"
CAP = 16_385
TARGET_P99_MS = 50.0
_WORDS = "arr matey ship sail treasure parrot rum plank deck crew anchor map gold island".split()


def _line(rng: random.Random, n: int) -> str:
    question = " ".join(rng.choices(_WORDS, k=rng.randint(3, 12)))
    answer = " ".join(rng.choices(_WORDS, k=rng.randint(5, 40)))
    return ChatExample.from_pairs([(f"{n}: {question}?", answer)]).to_json()


def _fill(path: Path, dataset_id: int, guild_id: int, size: int, seed: int) -> None:
    """Bulk-insert ``size`` examples (and their cached counts) with executemany."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    now = "2026-01-01T00:00:00.000000+00:00"
    chunk = 50_000
    first_id = (conn.execute("SELECT coalesce(max(id), 0) FROM examples").fetchone()[0]) + 1
    try:
        for start in range(0, size, chunk):
            rows, counts = [], []
            for offset in range(start, min(size, start + chunk)):
                example_id = first_id + offset
                line = _line(rng, offset)
                draw = rng.random()
                status = "approved" if draw < 0.7 else "pending" if draw < 0.9 else "rejected"
                rows.append((example_id, guild_id, dataset_id, line,
                             hashlib.sha256(line.encode()).hexdigest(), rng.randrange(1, 500),
                             status, "import", now, now))
                if rng.random() < 0.95:
                    tokens = rng.randint(20, 20_000)
                    counts.append((example_id, ENCODING, tokens, min(tokens, CAP), dataset_id, status))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO examples (id, guild_id, dataset_id, example_json, content_hash, "
                "contributor_id, status, source, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "INSERT INTO example_tokens (example_id, encoding, tokens, billed_tokens, "
                "dataset_id, status) VALUES (?, ?, ?, ?, ?, ?)",
                counts,
            )
            conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


async def _time(fn: Callable[[], Awaitable[object]], reps: int) -> list[float]:
    await fn()  # warm up
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _naive(db: Database, dataset_id: int) -> dict[str, list[int]]:
    rows = await db.fetchall(
        "SELECT e.status, t.tokens, t.billed_tokens FROM examples AS e "
        "LEFT JOIN example_tokens AS t ON t.example_id = e.id AND t.encoding = ? "
        "WHERE e.dataset_id = ? AND e.guild_id = ?",
        (ENCODING, dataset_id, GUILD),
    )
    sums: dict[str, list[int]] = {}
    for status, tokens, billed in rows:
        acc = sums.setdefault(status, [0, 0, 0, 0])
        acc[0] += 1
        if tokens is not None:
            acc[1] += 1
            acc[2] += tokens
            acc[3] += billed
    return sums


def _same(stats: DatasetStats, naive: dict[str, list[int]]) -> bool:
    return all(
        (s.examples, s.counted, s.tokens, s.billed_tokens) == tuple(naive.get(status, [0] * 4))
        for status in ("pending", "approved", "rejected")
        for s in [stats.for_status(status)]
    )


async def _bench_size(size: int, reps: int, directory: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench_stats_") as tmp:
        path = Path(tmp) / "bench.sqlite3"
        db = await Database.open(path)
        async with db.transaction() as tx:
            dataset_id = await tx.insert(
                "INSERT INTO datasets (guild_id, name, created_at) VALUES (?, 'bench', 'x')",
                (GUILD,),
            )
            noise_id = await tx.insert(
                "INSERT INTO datasets (guild_id, name, created_at) VALUES (?, 'noise', 'x')",
                (NOISE_GUILD,),
            )
        await db.close()

        started = time.perf_counter()
        await asyncio.to_thread(_fill, path, dataset_id, GUILD, size, 1)
        await asyncio.to_thread(_fill, path, noise_id, NOISE_GUILD, size // 10, 2)
        build_s = time.perf_counter() - started
        megabytes = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1e6

        db = await Database.open(path)
        try:
            repo = ExampleRepository(db)
            stats = await repo.stats(GUILD, dataset_id, ENCODING)
            assert stats == await repo.stats_from_rows(GUILD, dataset_id, ENCODING)
            assert _same(stats, await _naive(db, dataset_id))
            assert stats.total.examples == size

            fast = await _time(lambda: repo.stats(GUILD, dataset_id, ENCODING), reps)
            slow_reps = max(5, min(50, 2_000_000 // size))
            aggregate = await _time(
                lambda: repo.stats_from_rows(GUILD, dataset_id, ENCODING), slow_reps
            )
            naive = await _time(lambda: _naive(db, dataset_id), max(3, slow_reps // 4))

            sample = [r.example for r in await repo.page(GUILD, dataset_id, limit=2000)]
            counter = TokenCounter(ENCODING)  # a fresh counter: its text cache starts empty
            started = time.perf_counter()
            for example in sample:
                counter.count(example)
            retokenise_ms = (time.perf_counter() - started) * 1000 * size / len(sample)
        finally:
            await db.close()

    base = statistics.median(fast)
    print(f"\n== {size:,} examples (+{size // 10:,} in another guild): built in {build_s:.1f} s, "
          f"{megabytes:.0f} MB on disk; uncounted {stats.uncounted:,}")
    print(f"{'method':<12}{'reps':>6}{'p50 ms':>12}{'p99 ms':>12}{'x stats p50':>14}")
    for name, samples in (("stats", fast), ("aggregate", aggregate), ("naive", naive)):
        print(f"{name:<12}{len(samples):>6}{_p(samples, 0.5):>12.3f}{_p(samples, 0.99):>12.3f}"
              f"{_p(samples, 0.5) / base:>14.0f}")
    print(f"{'retokenise':<12}{'est.':>6}{retokenise_ms:>12.0f}{'':>12}{retokenise_ms / base:>14.0f}"
          f"   (tiktoken on {len(sample):,} examples, extrapolated)")
    p99 = _p(fast, 0.99)
    verdict = "OK" if p99 <= TARGET_P99_MS else "OVER TARGET"
    print(f"stats p99 {p99:.3f} ms vs target {TARGET_P99_MS:.0f} ms: {verdict}")
    return {"size": size, "stats_p50": base, "stats_p99": p99}


async def _main(sizes: list[int], reps: int, directory: str | None) -> int:
    print(f"bench_stats: sqlite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, reps {reps}")
    results = [await _bench_size(size, reps, directory) for size in sizes]
    return 0 if all(r["stats_p99"] <= TARGET_P99_MS for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        help="comma-separated dataset sizes (default: 100000,1000000)")
    parser.add_argument("--reps", type=int, default=1000, help="repetitions of the stats query")
    parser.add_argument("--dir", default=None, help="where to put the temporary database")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    return asyncio.run(_main(sizes, args.reps, args.dir))


if __name__ == "__main__":
    raise SystemExit(main())

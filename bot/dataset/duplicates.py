"""Exact-duplicate detection over a stream of examples, in memory that does not grow.

Every accepted example leaves one entry: its 64-bit fingerprint, its line number and its
billed tokens, packed into one integer. Entries are buffered, and each full buffer is
sorted and appended to a temporary file as a *run*. At the end the sorted runs are merged
(a few at a time when there are very many), and within a group of equal fingerprints the
lowest line is the original and every other line a duplicate of it. So the answer names
the first occurrence, does not depend on how a file was split between processes, and the
memory used is the same for a thousand lines or a hundred million: one buffer, plus one
read block per run while merging.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

RUN_ENTRIES = 1 << 16
"""Entries buffered before a run is sorted and written out (about 3.5 MB of buffer)."""
FAN_IN = 64
"""Runs merged at once; more are first merged into longer runs."""
_READ_ENTRIES = 2048
_LOW = (1 << 64) - 1
_U32 = (1 << 32) - 1


class Duplicate(NamedTuple):
    line: int
    first_line: int
    billed: int


@dataclass(frozen=True, slots=True)
class Run:
    """``count`` sorted entries at byte ``offset`` of ``path`` (16 bytes an entry)."""

    path: str
    offset: int
    count: int


def pack(fingerprint: int, line: int, billed: int) -> int:
    """One entry; sorting entries orders them by fingerprint, then by line."""
    return (fingerprint & _LOW) << 64 | (line & _U32) << 32 | min(billed, _U32)


class DuplicateLog:
    """Collects entries for one stream; spills sorted runs under ``directory``."""

    def __init__(self, directory: str | Path, run_entries: int | None = None) -> None:
        self._directory = str(directory)
        self._run_entries = run_entries or RUN_ENTRIES
        self._buffer: list[int] = []
        self._runs: list[Run] = []
        self._path: str | None = None

    def add(self, fingerprint: int, line: int, billed: int) -> None:
        self._buffer.append(pack(fingerprint, line, billed))
        if len(self._buffer) >= self._run_entries:
            self._spill()

    def seal(self) -> list[Run]:
        """Write what is buffered; the runs can then be merged by another process."""
        self._spill()
        return list(self._runs)

    def duplicates(self) -> Iterator[Duplicate]:
        """Every entry whose fingerprint an earlier line already had."""
        self._buffer.sort()
        if not self._runs:
            return _group(iter(self._buffer))
        return find_duplicates(self._runs, self._directory, self._buffer)

    def _spill(self) -> None:
        if not self._buffer:
            return
        self._buffer.sort()
        if self._path is None:
            fd, self._path = tempfile.mkstemp(prefix="dups-", suffix=".run", dir=self._directory)
            os.close(fd)
        self._runs.append(_write_run(self._path, self._buffer))
        self._buffer = []


def find_duplicates(
    runs: Iterable[Run], directory: str | Path, extra: list[int] | None = None, fan_in: int = FAN_IN
) -> Iterator[Duplicate]:
    """Merge sorted runs (and an already sorted in-memory list) and group them."""
    runs = list(runs)
    while len(runs) > fan_in:
        fd, path = tempfile.mkstemp(prefix="merge-", suffix=".run", dir=str(directory))
        os.close(fd)
        merged: list[Run] = []
        for start in range(0, len(runs), fan_in):
            group = runs[start : start + fan_in]
            merged.append(_write_run(path, heapq.merge(*map(_read_run, group))))
        runs = merged
    streams: list[Iterable[int]] = [_read_run(run) for run in runs]
    if extra:
        streams.append(extra)
    return _group(heapq.merge(*streams))


def _group(entries: Iterator[int]) -> Iterator[Duplicate]:
    previous = -1
    first_line = 0
    for entry in entries:
        fingerprint = entry >> 64
        if fingerprint == previous:
            yield Duplicate((entry >> 32) & _U32, first_line, entry & _U32)
        else:
            previous = fingerprint
            first_line = (entry >> 32) & _U32


def _write_run(path: str, entries: Iterable[int]) -> Run:
    with open(path, "ab") as stream:
        offset = stream.tell()
        count = 0
        words = array("Q")
        for entry in entries:
            words.append(entry >> 64)
            words.append(entry & _LOW)
            if len(words) >= 2 * _READ_ENTRIES:
                words.tofile(stream)
                count += len(words) // 2
                words = array("Q")
        words.tofile(stream)
        count += len(words) // 2
    return Run(path, offset, count)


def _read_run(run: Run) -> Iterator[int]:
    with open(run.path, "rb") as stream:
        stream.seek(run.offset)
        left = run.count
        while left:
            n = min(left, _READ_ENTRIES)
            words = array("Q")
            words.fromfile(stream, 2 * n)
            pairs = iter(words)
            for high, low in zip(pairs, pairs, strict=True):
                yield high << 64 | low
            left -= n

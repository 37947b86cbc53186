"""Streaming check of a training file: errors by line, tier, billed tokens and cost.

A scan reads one line at a time and keeps only counters, a bounded list of problems and
a compact index of example fingerprints, so memory stays flat on files of millions of
lines. Large files are split at line boundaries and scanned by one process per core;
the parts are merged in file order, so the report is the same as a single scan's.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

from bot.cost import CostEstimate, TierProgress, estimate_cost, resolve_epochs, tier_for
from bot.pricing import ModelPrice
from bot.tokens import get_counter
from bot.validation import (
    MIN_EXAMPLES,
    Problem,
    parse_line,
    problem,
    special_token_warning,
    validate_example,
)

MAX_LINE_BYTES = 8 * 1024 * 1024
"""Longer lines are reported as ``line_too_long`` without being held in memory."""
MAX_KEPT_PROBLEMS = 1000
"""Problems beyond this many (per severity) are counted by code but not listed."""
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
"""Files smaller than this are scanned in-process: starting workers would cost more."""


@dataclass
class CheckReport:
    model: str
    encoding: str
    examples: int = 0
    valid_examples: int = 0
    billed_tokens: int = 0
    estimated_tokens: bool = False
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    error_counts: Counter[str] = field(default_factory=Counter)
    warning_counts: Counter[str] = field(default_factory=Counter)
    epochs: int = 0
    tier: TierProgress | None = None
    cost: CostEstimate | None = None

    @property
    def trainable(self) -> bool:
        return not self.error_counts and self.valid_examples >= MIN_EXAMPLES

    def add(self, found: Problem) -> None:
        kept, counts = (
            (self.errors, self.error_counts) if found.is_error else (self.warnings, self.warning_counts)
        )
        counts[found.code] += 1
        if len(kept) < MAX_KEPT_PROBLEMS:
            kept.append(found)

    def to_json(self) -> dict[str, Any]:
        cost = self.cost
        return {
            "model": self.model,
            "encoding": self.encoding,
            "examples": self.examples,
            "valid_examples": self.valid_examples,
            "trainable": self.trainable,
            "errors": [p.to_dict() for p in self.errors],
            "error_counts": dict(self.error_counts),
            "warnings": [p.to_dict() for p in self.warnings],
            "warning_counts": dict(self.warning_counts),
            "tier": self.tier.tier.value if self.tier else None,
            "next_tier": self.tier.next_tier.value if self.tier and self.tier.next_tier else None,
            "examples_to_next_tier": self.tier.needed_for_next if self.tier else None,
            "billed_tokens": self.billed_tokens,
            "tokens_estimated": self.estimated_tokens,
            "epochs": self.epochs,
            "charged_tokens": cost.charged_tokens if cost else 0,
            "price_per_1k_usd": str(cost.price_per_1k) if cost else None,
            "estimated_cost_usd": float(cost.cost_rounded()) if cost else None,
            "model_retired": cost.retired if cost else False,
            "shutdown_date": cost.shutdown_date.isoformat() if cost and cost.shutdown_date else None,
        }


class HashIndex:
    """A compact set of 64-bit example fingerprints, each with the line it was first seen on.

    Open addressing over two flat arrays (12 bytes a slot, at most 3/4 full) instead of a
    dict of Python ints (about 100 bytes an entry): a million lines cost ~16-32 MB.
    """

    def __init__(self, capacity: int = 1 << 14) -> None:
        capacity = 1 << max(4, (capacity - 1).bit_length())  # a power of two
        self._keys = array("Q", bytes(8 * capacity))
        self._lines = array("I", bytes(4 * capacity))
        self._mask = capacity - 1
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @classmethod
    def for_entries(cls, expected: int) -> HashIndex:
        """Sized so ``expected`` entries fit without growing (no copy at the peak)."""
        return cls(max(1 << 14, expected * 4 // 3 + 1))

    def add(self, fingerprint: int, line: int) -> int | None:
        """Remember ``fingerprint``; returns the earlier line if it was seen before."""
        fingerprint = fingerprint or 1  # 0 marks an empty slot
        keys, mask = self._keys, self._mask
        slot = fingerprint & mask
        while True:
            key = keys[slot]
            if key == 0:
                keys[slot] = fingerprint
                self._lines[slot] = line
                self._size += 1
                if self._size * 4 > len(keys) * 3:
                    self._grow()
                return None
            if key == fingerprint:
                return self._lines[slot]
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old = zip(self._keys, self._lines, strict=True)
        capacity = len(self._keys) * 2
        self._keys = array("Q", bytes(8 * capacity))
        self._lines = array("I", bytes(4 * capacity))
        self._mask = capacity - 1
        self._size = 0
        for key, line in old:
            if key:
                self.add(key, line)


def fingerprint(obj: dict[str, Any]) -> int:
    """A 64-bit fingerprint of an example's content, independent of key order.

    Text-only examples hash their (key, value) sets directly; anything with nested values
    falls back to a digest of canonical JSON. Python's string hash is seeded per process,
    so fingerprints compare only within one run (and its forked workers).
    """
    try:
        key: tuple[Any, ...] = tuple(frozenset(m.items()) for m in obj["messages"])
        if len(obj) > 1:
            key = (key, json.dumps(obj, sort_keys=True))
        return hash(key) & 0xFFFF_FFFF_FFFF_FFFF
    except TypeError:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def read_lines(
    stream: IO[bytes], max_bytes: int = MAX_LINE_BYTES, *, first_line: int = 1, end: int | None = None
) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line; BOM and CRLF accepted; ``None`` for a line too long
    (skipped in bounded reads). Not-UTF-8 lines come back as :data:`NOT_UTF8`. With
    ``end``, stops at the first line starting at or after that byte offset."""
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


NOT_UTF8 = "\x00not-utf8"


@dataclass
class _Scan:
    """What one scan of a run of lines found, before it is merged into a report."""

    report: CheckReport
    fingerprints: array = field(default_factory=lambda: array("Q"))
    lines: array = field(default_factory=lambda: array("I"))
    billed: array = field(default_factory=lambda: array("I"))
    first_system: tuple[int, str | None] | None = None
    first_disagreement: int | None = None


def _scan(
    lines: Iterable[tuple[int, str | None]], price: ModelPrice, keep_index: bool, expected: int = 0
) -> _Scan:
    counter = get_counter(price.encoding)
    report = CheckReport(model=price.model, encoding=price.encoding)
    scan = _Scan(report)
    seen = HashIndex.for_entries(expected)
    cap = price.training_context
    add = report.add
    for number, text in lines:
        if text is None:
            report.examples += 1
            add(problem("line_too_long", f"longer than {MAX_LINE_BYTES} bytes", line=number))
            continue
        if not text or text.isspace():
            continue
        report.examples += 1
        if text == NOT_UTF8:
            add(problem("invalid_encoding", "not valid UTF-8", line=number))
            continue
        obj, bad_json = parse_line(text, number)
        if bad_json:
            add(bad_json[0])
            continue
        found = validate_example(obj, line=number)
        if found:
            for p in found:
                add(p)
            if any(p.is_error for p in found):
                continue
        fp = fingerprint(obj)
        earlier = seen.add(fp, number)
        if earlier is not None:
            add(problem("duplicate_example", f"duplicates line {earlier}", line=number))
            continue
        report.valid_examples += 1
        messages = obj["messages"]
        system = None
        for message in messages:
            if message.get("role") == "system":
                system = message.get("content")
                break
        if scan.first_system is None:
            scan.first_system = (number, system)
        elif scan.first_disagreement is None and system != scan.first_system[1]:
            scan.first_disagreement = number
        if "<|" in text:
            warning = special_token_warning(text, line=number)
            if warning is not None:
                add(warning)
        count = counter.count_obj(obj)
        tokens = count.tokens
        if count.estimated:
            report.estimated_tokens = True
        if tokens > cap:
            add(
                problem(
                    "example_too_long",
                    f"{tokens} tokens, over {price.model}'s {cap}-token training context; "
                    f"it will be truncated and billed at {cap}",
                    line=number,
                    severity="warning",
                )
            )
            tokens = cap
        report.billed_tokens += tokens
        if keep_index:
            scan.fingerprints.append(fp or 1)
            scan.lines.append(number)
            scan.billed.append(tokens)
    return scan


def _finish(scans: list[_Scan], price: ModelPrice, epochs: int | str | None, today: date | None) -> CheckReport:
    """Merge scans (in file order) into one report: cross-part duplicates, system prompt."""
    report = CheckReport(model=price.model, encoding=price.encoding)
    problems: list[Problem] = []
    for scan in scans:
        part = scan.report
        report.examples += part.examples
        report.valid_examples += part.valid_examples
        report.billed_tokens += part.billed_tokens
        report.estimated_tokens |= part.estimated_tokens
        report.error_counts.update(part.error_counts)
        report.warning_counts.update(part.warning_counts)
        problems += part.errors + part.warnings
    if len(scans) > 1:
        seen = HashIndex.for_entries(sum(len(scan.fingerprints) for scan in scans))
        for scan in scans:
            for fp, number, billed in zip(scan.fingerprints, scan.lines, scan.billed, strict=True):
                earlier = seen.add(fp, number)
                if earlier is not None:
                    problems.append(problem("duplicate_example", f"duplicates line {earlier}", line=number))
                    report.error_counts["duplicate_example"] += 1
                    report.valid_examples -= 1
                    report.billed_tokens -= billed
    firsts = [s.first_system for s in scans if s.first_system is not None]
    if firsts:
        first_line, first_prompt = firsts[0]
        disagreements = [s.first_disagreement for s in scans if s.first_disagreement is not None]
        disagreements += [line for line, prompt in firsts[1:] if prompt != first_prompt]
        if disagreements:
            where = min(disagreements)
            problems.append(
                problem(
                    "inconsistent_system_prompt",
                    f"system prompt differs from line {first_line}'s; "
                    "the model will be chatted with under one prompt",
                    line=where,
                    severity="warning",
                )
            )
            report.warning_counts["inconsistent_system_prompt"] += 1
    if report.valid_examples < MIN_EXAMPLES:
        problems.append(
            problem(
                "too_few_examples",
                f"{report.valid_examples} valid example(s); at least {MIN_EXAMPLES} are needed to train",
            )
        )
        report.error_counts["too_few_examples"] += 1
    problems.sort(key=lambda p: (p.line is None, p.line or 0))
    report.errors = [p for p in problems if p.is_error][:MAX_KEPT_PROBLEMS]
    report.warnings = [p for p in problems if not p.is_error][:MAX_KEPT_PROBLEMS]
    report.tier = tier_for(report.valid_examples)
    report.epochs = resolve_epochs(epochs, report.valid_examples)
    report.cost = estimate_cost(price, report.billed_tokens, report.epochs, today)
    return report


def check_lines(
    lines: Iterable[tuple[int, str | None]],
    price: ModelPrice,
    *,
    epochs: int | str | None = "auto",
    today: date | None = None,
) -> CheckReport:
    """Validate, deduplicate and count a stream of numbered JSONL lines in-process."""
    return _finish([_scan(lines, price, keep_index=False)], price, epochs, today)


def check_file(
    path: str | Path,
    price: ModelPrice,
    *,
    epochs: int | str | None = "auto",
    today: date | None = None,
    workers: int | None = None,
    parallel_min_bytes: int = PARALLEL_MIN_BYTES,
) -> CheckReport:
    """Check a file; large files are split across ``workers`` processes (default: cores)."""
    path = Path(path)
    size = path.stat().st_size
    workers = workers or os.cpu_count() or 1
    methods = multiprocessing.get_all_start_methods()
    line_bytes = _mean_line_bytes(path)
    if workers < 2 or size < parallel_min_bytes or "fork" not in methods:
        with open(path, "rb") as stream:
            scan = _scan(read_lines(stream), price, keep_index=False, expected=int(size / line_bytes))
        return _finish([scan], price, epochs, today)
    parts = _split(path, size, workers)
    context = multiprocessing.get_context("fork")
    with context.Pool(len(parts)) as pool:
        scans = pool.starmap(
            _scan_part,
            [(str(path), start, end, line, price, int((end - start) / line_bytes)) for start, end, line in parts],
        )
    return _finish(scans, price, epochs, today)


def _split(path: Path, size: int, parts: int) -> list[tuple[int, int, int]]:
    """(start byte, end byte, first line number) of ``parts`` runs of whole lines."""
    bounds = [0]
    with open(path, "rb") as stream:
        for i in range(1, parts):
            stream.seek(max(size * i // parts, bounds[-1]))
            stream.readline()
            bounds.append(min(stream.tell(), size))
        bounds.append(size)
        first_lines = [1]
        stream.seek(0)
        position = 0
        lines = 0
        for bound in bounds[1:-1]:
            while position < bound:
                block = stream.read(min(1 << 20, bound - position))
                lines += block.count(b"\n")
                position += len(block)
            first_lines.append(lines + 1)
    return [(bounds[i], bounds[i + 1], first_lines[i]) for i in range(parts) if bounds[i] < bounds[i + 1]]


def _scan_part(
    path: str, start: int, end: int, first_line: int, price: ModelPrice, expected: int
) -> _Scan:
    with open(path, "rb") as stream:
        stream.seek(start)
        return _scan(read_lines(stream, first_line=first_line, end=end), price, True, expected)


def _mean_line_bytes(path: Path, sample: int = 1 << 16) -> float:
    """Average line length of the file's start: sizes the duplicate index up front."""
    with open(path, "rb") as stream:
        head = stream.read(sample)
    return max(len(head) / max(head.count(b"\n"), 1), 16.0)

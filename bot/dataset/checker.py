"""Streaming check of a training file: errors by line, tier, billed tokens and cost.

A scan reads one line at a time and keeps only counters, the first problems by line and
a fixed-size buffer of example fingerprints that spills sorted runs to a temporary folder
(:mod:`bot.dataset.duplicates`), so memory is the same on a file of a thousand lines or millions.
Text-only examples, the common case, are validated, counted and fingerprinted in one pass
over their messages. Large files are split at line boundaries and scanned by one process
per core; the parts are merged in file order, so the report is the same as a single
scan's.

Bounds, whatever the file holds: only regular files are read (:func:`open_regular`: a
FIFO, a device or a folder is refused with a message, never waited on); a line is read
in reads of at most :data:`~bot.dataset.lines.MAX_LINE_BYTES` + 1 bytes and a longer one
skipped in such reads; finding where to split a large file reads
:data:`SPLIT_READ_BYTES` at a time; the problems listed are capped
(:data:`~bot.dataset.lines.MAX_LISTED`), the duplicate buffer is fixed
(:data:`~bot.dataset.duplicates.RUN_ENTRIES`) and the token cache is bounded in bytes
(:data:`~bot.dataset.tokens.TOKEN_CACHE_BYTES`). So a scan's memory past the tokenizer's
own is a few MiB per process on any file; ``tests/dataset/test_hostile_memory.py``
measures it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

from bot.dataset.cost import CostEstimate, TierProgress, estimate_cost, resolve_epochs, tier_for
from bot.dataset.duplicates import Duplicate, DuplicateLog, Run, find_duplicates
from bot.dataset.examples import ChatExample
from bot.dataset.files import open_regular
from bot.dataset.lines import ProblemLog, example_problems, is_blank, read_lines, read_problem
from bot.dataset.pricing import ModelPrice
from bot.dataset.tokens import REPLY_PRIMING, get_counter
from bot.dataset.validation import (
    MIN_EXAMPLES,
    PLAIN_ROLES,
    Problem,
    parse_line,
    problem,
    special_token_warning,
)

PARALLEL_MIN_BYTES = 16 * 1024 * 1024
"""Files smaller than this are scanned in-process: starting workers would cost more."""
SPLIT_READ_BYTES = 1 << 16
"""Bytes read at a time while looking for the end of the line a split point falls in."""


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
    epochs: int = 0
    tier: TierProgress | None = None
    cost: CostEstimate | None = None
    log: ProblemLog = field(default_factory=ProblemLog, repr=False, compare=False)

    @property
    def trainable(self) -> bool:
        return not self.error_counts and self.valid_examples >= MIN_EXAMPLES

    @property
    def error_counts(self) -> Counter[str]:
        return self.log.error_counts

    @property
    def warning_counts(self) -> Counter[str]:
        return self.log.warning_counts

    def add(self, found: Problem) -> None:
        """Count ``found`` and list it if it is among the first problems by line."""
        self.log.add(found)

    def list_kept(self) -> None:
        """Fill :attr:`errors` and :attr:`warnings` from the listed problems, by line."""
        problems = self.log.listed()
        self.errors = [p for p in problems if p.is_error]
        self.warnings = [p for p in problems if not p.is_error]

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
            "price_per_1k_usd": format(cost.price_per_1k, "f") if cost else None,
            "estimated_cost_usd": float(cost.cost_rounded()) if cost else None,
            "model_retired": cost.retired if cost else False,
            "shutdown_date": cost.shutdown_date.isoformat() if cost and cost.shutdown_date else None,
        }


def fingerprint(obj: dict[str, Any]) -> int:
    """A 64-bit fingerprint of an example's content, independent of key order.

    Two lines have the same fingerprint exactly when the import would store them as the
    same example (:meth:`ChatExample.content_hash`), so ``tunecord check`` and the import
    name the same duplicates. Text-only examples (see :func:`_plain`) hash their (role,
    content) pairs; others a digest of the canonical JSON of the example the import
    stores. Python's string hash is seeded per process, so fingerprints compare only
    within one run (and its forked workers).
    """
    if _plain_shaped(obj):
        return _plain_fingerprint(obj["messages"])
    canonical = ChatExample.from_obj(obj).to_obj()
    if _plain_shaped(canonical):
        return _plain_fingerprint(canonical["messages"])
    text = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def _plain_shaped(obj: dict[str, Any]) -> bool:
    return len(obj) == 1 and all(
        len(m) == 2 and type(m.get("role")) is str and type(m.get("content")) is str
        for m in obj["messages"]
    )


def _plain_fingerprint(messages: list[dict[str, Any]]) -> int:
    return hash(tuple([(m["role"], m["content"]) for m in messages])) & _U64


_U64 = (1 << 64) - 1




@dataclass
class _Scan:
    """What one scan of a run of lines found, before it is merged into a report."""

    report: CheckReport
    runs: list[Run] = field(default_factory=list)
    first_system: tuple[int, str | None] | None = None
    first_disagreement: int | None = None


def _plain(obj: Any, costs: dict[Any, int], count_text: Any) -> tuple[int, str | None] | None:
    """(tokens, system prompt) of a text-only example that passes every check, else None.

    The scan's fast path: one loop over the messages validates, counts and finds the
    system prompt. The conditions are validation's fast path's (``messages`` alone, a
    non-empty list of ``{role, content}`` with role system, user or assistant, non-blank
    string content, an assistant message); anything else takes the full checks.
    """
    if type(obj) is not dict or len(obj) != 1:
        return None
    messages = obj.get("messages")
    if type(messages) is not list or not messages:
        return None
    total = REPLY_PRIMING
    system = None
    has_assistant = False
    for message in messages:
        if type(message) is not dict or len(message) != 2:
            return None
        role = message.get("role")
        content = message.get("content")
        cost = costs.get(role) if type(role) is str else None
        if cost is None or type(content) is not str or not content or content.isspace():
            return None
        if role == "assistant":
            has_assistant = True
        elif system is None and role == "system":
            system = content
        total += cost + count_text(content)
    return (total, system) if has_assistant else None


def _scan(lines: Iterable[tuple[int, str | None]], price: ModelPrice, spill: str, keep: bool) -> _Scan:
    counter = get_counter(price.encoding)
    costs = counter.message_costs(PLAIN_ROLES)
    count_text = counter.count_text
    report = CheckReport(model=price.model, encoding=price.encoding)
    scan = _Scan(report)
    log = DuplicateLog(spill)
    log_add = log.add
    cap = price.training_context
    add = report.add
    for number, text in lines:
        unreadable = read_problem(number, text)
        if unreadable is not None:
            report.examples += 1
            add(unreadable)
            continue
        assert text is not None
        if is_blank(text):
            continue
        report.examples += 1
        obj, bad_json = parse_line(text, number)
        if bad_json:
            add(bad_json[0])
            continue
        plain = _plain(obj, costs, count_text)
        truncated = False
        if plain is not None:
            tokens, system = plain
            fp = _plain_fingerprint(obj["messages"])
            if "<|" in text:
                warning = special_token_warning(text, line=number)
                if warning is not None:
                    add(warning)
        else:
            found = example_problems(obj, number, text)
            if found:
                for p in found:
                    add(p)
                if any(p.is_error for p in found):
                    continue
            fp = fingerprint(obj)
            system = _system_prompt(obj["messages"])
            count = counter.count_obj(obj)
            tokens = count.tokens
            truncated = count.truncated
            if count.estimated:
                report.estimated_tokens = True
        report.valid_examples += 1  # duplicates are taken off when the scan is merged
        if scan.first_system is None:
            scan.first_system = (number, system)
        elif scan.first_disagreement is None and system != scan.first_system[1]:
            scan.first_disagreement = number
        if tokens > cap or truncated:
            add(
                problem(
                    "example_too_long",
                    f"longer than {price.model}'s {cap}-token training context; "
                    f"it will be truncated and billed at {min(tokens, cap)} tokens",
                    line=number,
                    severity="warning",
                )
            )
            tokens = min(tokens, cap)
        report.billed_tokens += tokens
        log_add(fp, number, tokens)
    if keep:
        scan.runs = log.seal()
    else:
        _take_off_duplicates(report, log.duplicates())
    return scan


def _system_prompt(messages: list[dict[str, Any]]) -> str | None:
    for message in messages:
        if message.get("role") == "system":
            content = message.get("content")
            return content if isinstance(content, str) else None
    return None


def _take_off_duplicates(report: CheckReport, duplicates: Iterable[Duplicate]) -> None:
    for line, first_line, billed in duplicates:
        report.add(problem("duplicate_example", f"duplicates line {first_line}", line=line))
        report.valid_examples -= 1
        report.billed_tokens -= billed


def _finish(
    scans: list[_Scan], price: ModelPrice, epochs: int | str | None, today: date | None, spill: str
) -> CheckReport:
    """Merge scans (in file order) into one report: cross-part duplicates, system prompt."""
    report = CheckReport(model=price.model, encoding=price.encoding)
    for scan in scans:
        part = scan.report
        report.examples += part.examples
        report.valid_examples += part.valid_examples
        report.billed_tokens += part.billed_tokens
        report.estimated_tokens |= part.estimated_tokens
        report.log.merge(part.log)
    runs = [run for scan in scans for run in scan.runs]
    if runs:
        _take_off_duplicates(report, find_duplicates(runs, spill))
    firsts = [s.first_system for s in scans if s.first_system is not None]
    if firsts:
        first_line, first_prompt = firsts[0]
        disagreements = [s.first_disagreement for s in scans if s.first_disagreement is not None]
        disagreements += [line for line, prompt in firsts[1:] if prompt != first_prompt]
        if disagreements:
            report.add(
                problem(
                    "inconsistent_system_prompt",
                    f"system prompt differs from line {first_line}'s; "
                    "the model will be chatted with under one prompt",
                    line=min(disagreements),
                    severity="warning",
                )
            )
    if report.valid_examples < MIN_EXAMPLES:
        report.add(
            problem(
                "invalid_n_examples",
                f"{report.valid_examples} valid example(s); at least {MIN_EXAMPLES} are needed to train",
            )
        )
    report.list_kept()
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
    with tempfile.TemporaryDirectory(prefix="tunecord-check-") as spill:
        return _finish([_scan(lines, price, spill, keep=False)], price, epochs, today, spill)


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
    workers = workers or os.cpu_count() or 1
    methods = multiprocessing.get_all_start_methods()
    with tempfile.TemporaryDirectory(prefix="tunecord-check-") as spill, open_regular(path) as stream:
        size = os.fstat(stream.fileno()).st_size
        if workers < 2 or size < parallel_min_bytes or "fork" not in methods:
            scan = _scan(read_lines(stream), price, spill, keep=False)
            return _finish([scan], price, epochs, today, spill)
        parts = _split(stream, size, workers)
        context = multiprocessing.get_context("fork")
        with context.Pool(len(parts)) as pool:
            scans = pool.starmap(
                _scan_part, [(str(path), start, end, line, price, spill) for start, end, line in parts]
            )
        return _finish(scans, price, epochs, today, spill)


def _split(stream: IO[bytes], size: int, parts: int) -> list[tuple[int, int, int]]:
    """(start byte, end byte, first line number) of ``parts`` runs of whole lines."""
    bounds = [0]
    for i in range(1, parts):
        bounds.append(_next_line_start(stream, max(size * i // parts, bounds[-1]), size))
    bounds.append(size)
    first_lines = [1]
    stream.seek(0)
    position = 0
    lines = 0
    for bound in bounds[1:-1]:
        while position < bound:
            block = stream.read(min(SPLIT_READ_BYTES, bound - position))
            if not block:
                break
            lines += block.count(b"\n")
            position += len(block)
        first_lines.append(lines + 1)
    return [(bounds[i], bounds[i + 1], first_lines[i]) for i in range(parts) if bounds[i] < bounds[i + 1]]


def _next_line_start(stream: IO[bytes], offset: int, size: int) -> int:
    """The offset just past the first newline at or after ``offset`` (``size`` if none),
    found in reads of :data:`SPLIT_READ_BYTES`: a line of any length costs no memory."""
    stream.seek(offset)
    position = offset
    while position < size:
        block = stream.read(SPLIT_READ_BYTES)
        if not block:
            break
        newline = block.find(b"\n")
        if newline >= 0:
            return min(position + newline + 1, size)
        position += len(block)
    return size


def _scan_part(path: str, start: int, end: int, first_line: int, price: ModelPrice, spill: str) -> _Scan:
    with open_regular(path) as stream:
        stream.seek(start)
        return _scan(read_lines(stream, first_line=first_line, end=end), price, spill, keep=True)

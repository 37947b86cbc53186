"""Streaming check of a training file: errors by line, tier, billed tokens and cost.

It reads one line at a time and keeps only counters, a bounded list of problems and a
compact index of example hashes, so memory stays flat on files of millions of lines.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

from bot.cost import CostEstimate, TierProgress, estimate_cost, resolve_epochs, tier_for
from bot.pricing import ModelPrice
from bot.tokens import TokenCounter, get_counter
from bot.validation import MIN_EXAMPLES, Problem, problem, special_token_warning, validate_example

MAX_LINE_BYTES = 8 * 1024 * 1024
"""Longer lines are reported as ``line_too_long`` without being held in memory."""
MAX_KEPT_PROBLEMS = 1000
"""Problems beyond this many (per severity) are counted by code but not listed."""


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
    """A compact set of 64-bit example fingerprints mapping to their first line."""

    def __init__(self) -> None:
        self._first_line: dict[int, int] = {}

    def add(self, fingerprint: int, line: int) -> int | None:
        """Remember ``fingerprint``; returns the earlier line if it was seen before."""
        earlier = self._first_line.setdefault(fingerprint, line)
        return None if earlier == line else earlier


def fingerprint(obj: Any) -> int:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def read_lines(stream: IO[bytes], max_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line; BOM and CRLF accepted; ``None`` for a line too long
    or not UTF-8 (the caller reports it). Over-long lines are skipped in bounded reads."""
    number = 0
    while True:
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
            yield number, "\x00not-utf8"


def check_lines(
    lines: Iterable[tuple[int, str | None]],
    price: ModelPrice,
    *,
    epochs: int | str | None = "auto",
    counter: TokenCounter | None = None,
    today: date | None = None,
) -> CheckReport:
    """Validate, deduplicate and count a stream of numbered JSONL lines."""
    counter = counter or get_counter(price.encoding)
    report = CheckReport(model=price.model, encoding=price.encoding)
    seen = HashIndex()
    cap = price.training_context
    first_system: tuple[int, str | None] | None = None
    system_disagreements = 0
    loads = json.loads
    for number, text in lines:
        if text is None:
            report.examples += 1
            report.add(problem("line_too_long", f"longer than {MAX_LINE_BYTES} bytes", line=number))
            continue
        if not text.strip():
            continue
        report.examples += 1
        if text == "\x00not-utf8":
            report.add(problem("invalid_encoding", "not valid UTF-8", line=number))
            continue
        try:
            obj = loads(text)
        except (ValueError, RecursionError) as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            report.add(problem("invalid_json", f"not valid JSON ({detail})", line=number))
            continue
        found = validate_example(obj, line=number)
        if any(p.is_error for p in found):
            for p in found:
                report.add(p)
            continue
        for p in found:
            report.add(p)
        earlier = seen.add(fingerprint(obj), number)
        if earlier is not None:
            report.add(problem("duplicate_example", f"duplicates line {earlier}", line=number))
            continue
        report.valid_examples += 1
        messages = obj["messages"]
        system = _system_prompt(messages)
        if first_system is None:
            first_system = (number, system)
        elif system != first_system[1]:
            system_disagreements += 1
            if system_disagreements == 1:
                report.add(
                    problem(
                        "inconsistent_system_prompt",
                        f"system prompt differs from line {first_system[0]}'s; "
                        "the model will be chatted with under one prompt",
                        line=number,
                        severity="warning",
                    )
                )
        for message in messages:
            content = message.get("content")
            if isinstance(content, str) and "<|" in content:
                warning = special_token_warning(content, line=number)
                if warning is not None:
                    report.add(warning)
                    break
        count = counter.count_obj(obj)
        report.estimated_tokens |= count.estimated
        if count.tokens > cap:
            report.add(
                problem(
                    "example_too_long",
                    f"{count.tokens} tokens, over {price.model}'s {cap}-token training context; "
                    f"it will be truncated and billed at {cap}",
                    line=number,
                    severity="warning",
                )
            )
        report.billed_tokens += min(count.tokens, cap)
    if report.valid_examples < MIN_EXAMPLES:
        report.add(
            problem(
                "too_few_examples",
                f"{report.valid_examples} valid example(s); at least {MIN_EXAMPLES} are needed to train",
            )
        )
    report.tier = tier_for(report.valid_examples)
    report.epochs = resolve_epochs(epochs, report.valid_examples)
    report.cost = estimate_cost(price, report.billed_tokens, report.epochs, today)
    return report


def check_file(
    path: str | Path, price: ModelPrice, *, epochs: int | str | None = "auto", today: date | None = None
) -> CheckReport:
    with open(path, "rb") as stream:
        return check_lines(read_lines(stream), price, epochs=epochs, today=today)


def _system_prompt(messages: list[dict[str, Any]]) -> str | None:
    for message in messages:
        if message.get("role") == "system":
            return message.get("content")
    return None

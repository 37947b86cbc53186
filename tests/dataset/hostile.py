"""Helpers for the hostile-input tests: run ``tunecord check`` and the JSONL import on the
same bytes and compare what each says about every line.

The per-line verdict of a line is its list of (code, message) problems. File-wide
problems and the ones only one side can know are left out of the comparison:
``duplicate_example`` (check) and the import's duplicate list are compared separately,
``example_too_long`` depends on each side's count, ``inconsistent_system_prompt`` and
``invalid_n_examples`` are about the whole file.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bot.dataset.checker import CheckReport, check_file
from bot.dataset.pricing import PriceCatalogue
from bot.services.counting import Counting
from bot.services.imports import ImportReport, import_jsonl
from storage.store import Storage
from tests.storage.helpers import GUILD_A

PRICE = PriceCatalogue.load().get("gpt-4o-mini")
O200K = Counting("o200k_base")
NOT_COMPARED = frozenset(
    {"duplicate_example", "example_too_long", "inconsistent_system_prompt", "invalid_n_examples"}
)
USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "hello"}
GOOD = [
    json.dumps({"messages": [{"role": "user", "content": f"q{n}"}, {"role": "assistant", "content": f"a{n}"}]})
    for n in range(10)
]
"""Ten valid, distinct lines: a file of one hostile line and these is trainable iff the
hostile line is valid."""

Verdicts = dict[int, list[tuple[str, str]]]


def as_bytes(line: str | bytes) -> bytes:
    return line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")


def jsonl(lines: list[str | bytes], newline: bytes = b"\n") -> bytes:
    return b"".join(as_bytes(line) + newline for line in lines)


def write(tmp_path: Path, data: bytes, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@dataclass
class Compared:
    """Both sides' verdicts on one file."""

    check: CheckReport
    imported: ImportReport
    check_lines: Verdicts
    import_lines: Verdicts

    def codes(self, line: int) -> list[str]:
        return [code for code, _ in self.check_lines.get(line, [])]

    def refused(self, report: CheckReport | ImportReport) -> set[int]:
        return {p.line for p in report.errors if p.line is not None and p.code not in NOT_COMPARED}


def by_line(problems: list) -> Verdicts:
    out: Verdicts = defaultdict(list)
    for p in problems:
        if p.line is not None and p.code not in NOT_COMPARED:
            out[p.line].append((p.code, p.message))
    return dict(out)


async def compare(store: Storage, path: Path) -> Compared:
    """Check ``path`` and import its bytes into a new dataset; assert both give every line
    the same verdict, the same duplicates and the same number of usable examples."""
    check = check_file(path, PRICE, workers=1)
    dataset = await store.datasets.create(GUILD_A, f"d{path.stat().st_mtime_ns}-{id(path)}")
    imported = await import_jsonl(
        store.db, GUILD_A, dataset.id, io.BytesIO(path.read_bytes()), counting=O200K
    )
    compared = Compared(
        check, imported, by_line(check.errors + check.warnings), by_line(imported.errors + imported.warnings)
    )
    assert compared.import_lines == compared.check_lines
    duplicates = {p.line for p in check.errors if p.code == "duplicate_example"}
    assert {d.line for d in imported.duplicates} == duplicates
    assert imported.imported == check.valid_examples
    for line in compared.refused(check):  # every refused line is named, "line N: ..."
        assert all(message.startswith(f"line {line}: ") for _, message in compared.check_lines[line])
    return compared

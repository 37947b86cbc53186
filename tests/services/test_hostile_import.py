"""Hostile files for the JSONL import: what is not a regular file is refused at once
(the event loop never blocks on a FIFO), a line of ``null`` is an error with its line
number, and the import's memory is bounded by bytes, measured in a fresh process."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.dataset.files import NotARegularFile
from bot.dataset.lines import MAX_LINE_BYTES
from bot.dataset.pricing import PriceCatalogue
from bot.dataset.tokens import TOKEN_CACHE_BYTES
from bot.services.imports import (
    BATCH_TEXT_BYTES,
    DatasetFileService,
    import_jsonl,
    iter_export_lines,
)
from storage.records import ExampleStatus
from tests.dataset.hostile import GOOD, O200K, jsonl
from tests.storage.helpers import GUILD_A


@pytest.mark.parametrize("target", ["fifo", "/dev/zero", "folder"])
async def test_what_is_not_a_regular_file_is_refused_without_blocking(target, store, tmp_path):
    if target == "fifo":
        path = tmp_path / "pipe.jsonl"
        os.mkfifo(path)
    else:
        path = tmp_path if target == "folder" else Path(target)
    dataset = await store.datasets.create(GUILD_A, "d")
    service = DatasetFileService(store.db, PriceCatalogue.load())
    with pytest.raises(NotARegularFile) as caught:
        await asyncio.wait_for(service.import_file(dataset, path, contributor_id=None), timeout=20)
    assert "not a regular file" in caught.value.message
    assert str(tmp_path) not in caught.value.message  # members see it: no server folders
    with pytest.raises(NotARegularFile):
        await asyncio.wait_for(import_jsonl(store.db, GUILD_A, dataset.id, path, counting=O200K), timeout=20)
    assert await store.examples.page(GUILD_A, dataset.id) == []


async def test_a_line_of_null_is_an_error_with_its_line_number(store):
    dataset = await store.datasets.create(GUILD_A, "d")
    report = await import_jsonl(
        store.db, GUILD_A, dataset.id, io.BytesIO(jsonl([GOOD[0], "null", *GOOD[1:]])), counting=O200K
    )
    assert [(p.line, p.code, p.message) for p in report.errors] == [
        (2, "data_type", "line 2: an example must be a JSON object, not null")
    ]
    assert report.imported == 10 and report.lines == 11


SCRIPT = """
import asyncio, json, sys
from bot.dataset.tokens import get_counter
from bot.services.counting import Counting
from bot.services.imports import import_jsonl
from storage.store import Storage

def kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

async def main(path, warm, db):
    store = await Storage.open(db)
    counting = Counting("o200k_base")
    warm_set = await store.datasets.create(1, "warm")
    await import_jsonl(store.db, 1, warm_set.id, warm, counting=counting)
    base = kib("VmRSS")
    dataset = await store.datasets.create(1, "big")
    report = await import_jsonl(store.db, 1, dataset.id, path, counting=counting)
    await store.close()
    peak = kib("VmHWM")
    print(json.dumps({
        "base": base * 1024, "peak": peak * 1024,
        "imported": report.imported, "errors": report.error_count,
        "cache": get_counter("o200k_base").cached_bytes,
    }))

asyncio.run(main(*sys.argv[1:]))
"""


def test_150_lines_of_09_mb_are_imported_in_batches_bounded_by_bytes(tmp_path):
    """Batches used to be 500 lines whatever their size (peak +383 MB here); a batch now
    ends at BATCH_TEXT_BYTES of example text, and the token cache keeps no big text."""
    path = tmp_path / "big.jsonl"
    body = " hello" * 150_000
    with open(path, "w") as out:
        for i in range(150):
            example = {"messages": [{"role": "user", "content": f"text {i}:{body}"},
                                    {"role": "assistant", "content": f"ok {i}"}]}
            out.write(json.dumps(example) + "\n")
    warm = tmp_path / "warm.jsonl"
    warm.write_bytes(jsonl(GOOD))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path), str(warm), str(tmp_path / "db.sqlite3")],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["imported"] == 150 and result["errors"] == 0
    # measured: +45 MiB (+52 MiB for 300 such lines), with every thread's allocator and
    # SQLite's caches; it was +280 MiB (383 MB in all) with batches of 500 lines
    assert result["peak"] - result["base"] < 24 * BATCH_TEXT_BYTES, result  # 96 MiB
    assert result["cache"] <= TOKEN_CACHE_BYTES  # what stays in the long-running bot


async def test_export_writes_chunks_bounded_by_bytes(store):
    """Chunks used to be 500 lines whatever their size; they end at BATCH_TEXT_BYTES."""
    body = " hello" * 150_000
    lines = [json.dumps({"messages": [{"role": "user", "content": f"{i}{body}"}, {"role": "assistant", "content": "ok"}]})
             for i in range(12)]
    dataset = await store.datasets.create(GUILD_A, "big", policy="as_written")
    await import_jsonl(store.db, GUILD_A, dataset.id, io.BytesIO(jsonl(lines)), counting=O200K,
                       status=ExampleStatus.APPROVED)
    async with store.db.snapshot():
        chunks = [chunk async for chunk in iter_export_lines(store.db, GUILD_A, dataset.id)]
    assert [json.loads(line) for line in b"".join(chunks).splitlines()] == [json.loads(line) for line in lines]
    assert len(chunks) >= 3
    assert all(len(chunk) < BATCH_TEXT_BYTES + MAX_LINE_BYTES for chunk in chunks)

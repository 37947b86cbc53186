"""Durability: every insert that returned survives SIGKILL, and the file stays intact."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from storage.store import Storage
from tests.storage.helpers import GUILD_A

ROOT = Path(__file__).resolve().parents[2]


def _write_until_killed(path: Path, first: int, kill_after: int) -> list[int]:
    """Run the writer, SIGKILL it once ``kill_after`` ids came back; every id it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.helpers", "crash-writer", str(path), str(first),
         "1000000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    confirmed: list[int] = []
    try:
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()
        while len(confirmed) < kill_after:
            line = proc.stdout.readline()
            assert line.endswith(b"\n"), proc.stderr.read().decode()
            confirmed.append(int(line))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # Ids printed between our last read and the kill also returned: they count too.
        for line in proc.stdout.read().splitlines(keepends=True):
            if line.endswith(b"\n"):
                confirmed.append(int(line))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return confirmed


async def test_sigkill_mid_insert_loses_nothing_that_returned(tmp_db_path):
    confirmed: list[int] = []
    for round_, kill_after in enumerate((60, 150, 240)):
        # Each round resumes in the file the previous kill left behind.
        confirmed += _write_until_killed(tmp_db_path, first=round_ * 1_000_000, kill_after=kill_after)

        conn = sqlite3.connect(tmp_db_path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            stored = {row[0] for row in conn.execute("SELECT id FROM examples")}
        finally:
            conn.close()
        assert set(confirmed) <= stored
        # Only the insert in flight at each kill may be there unreported.
        assert len(stored) - len(confirmed) <= round_ + 1

    # The database opens again, and its maintained totals still match its rows.
    store = await Storage.open(tmp_db_path)
    try:
        dataset = await store.datasets.get_by_name(GUILD_A, "crash")
        stats = await store.examples.stats(GUILD_A, dataset.id, "o200k_base")
        assert stats == await store.examples.stats_from_rows(GUILD_A, dataset.id, "o200k_base")
        assert stats.total.examples == len(stored)
    finally:
        await store.close()

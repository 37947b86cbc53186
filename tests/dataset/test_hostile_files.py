"""Hostile files and terminals for ``tunecord check``: what is not a regular file is refused
at once with a message (never waited on), a reader that stops early and a terminal that
cannot show every character end the output quietly. Run as an admin runs it: the real
command in a subprocess, with a timeout that turns a hang into a failure."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.dataset import cli
from bot.dataset.checker import check_file
from bot.dataset.files import NotARegularFile, open_regular
from tests.dataset.hostile import GOOD, PRICE, jsonl, write

COMMAND = [sys.executable, "-m", "bot.dataset.cli", "check"]


def run(*args: object, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, encoding="utf-8", errors="replace",
    )


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.jsonl"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("target", "kind"),
    [("fifo", "a named pipe (FIFO)"), ("/dev/zero", "a character device"), ("folder", "a folder")],
)
def test_what_is_not_a_regular_file_is_refused_at_once(target, kind, fifo, tmp_path):
    path = {"fifo": fifo, "folder": tmp_path}.get(target, Path(target))
    proc = run(path, "--model", "gpt-4o-mini", timeout=30)  # a FIFO with no writer used to block here
    assert proc.returncode == cli.EXIT_USAGE
    assert proc.stderr.strip() == f"tunecord check: cannot read {path}: it is {kind}, not a regular file"
    assert proc.stdout == ""
    with pytest.raises(NotARegularFile, match="not a regular file"):
        check_file(path, PRICE)


def test_a_socket_is_refused_too(tmp_path):
    path = tmp_path / "s.jsonl"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises((NotARegularFile, OSError)):  # Linux cannot open() a socket: ENXIO
            open_regular(path)


def test_a_symbolic_link_to_a_file_is_read(tmp_path):
    target = write(tmp_path, jsonl(GOOD))
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert check_file(link, PRICE).valid_examples == 10


def test_a_missing_file_is_a_usage_error_without_traceback(tmp_path):
    proc = run(tmp_path / "missing.jsonl", "--model", "gpt-4o-mini")
    assert proc.returncode == cli.EXIT_USAGE
    assert "No such file or directory" in proc.stderr and "Traceback" not in proc.stderr


def _many_problems(tmp_path: Path) -> Path:
    lines = [json.dumps({"messages": [{"role": "user", "content": "é" * 3}], f"clé{i}": 1}, ensure_ascii=False)
             for i in range(3000)]
    return write(tmp_path, jsonl(lines))


@pytest.mark.parametrize("flag", [[], ["--json"]])
def test_a_reader_that_stops_early_gets_no_traceback(flag, tmp_path):
    """``tunecord check f | head``: the pipe is closed before the report is written."""
    path = _many_problems(tmp_path)
    proc = subprocess.Popen(
        [*COMMAND, str(path), "--model", "gpt-4o-mini", *flag],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like head, gone before the output comes
    stderr = proc.stderr.read().decode("utf-8", "replace")
    assert proc.wait(timeout=60) == cli.EXIT_ERRORS
    assert stderr == ""


def test_head_reads_the_first_lines_and_the_rest_ends_quietly(tmp_path):
    path = _many_problems(tmp_path)
    shell = f"{sys.executable} -m bot.dataset.cli check {path} --model gpt-4o-mini 2>&1 | head -n 2"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, timeout=60)
    assert proc.stdout.splitlines()[0] == "Errors (6001):"
    assert "Traceback" not in proc.stdout and "BrokenPipe" not in proc.stdout


@pytest.mark.parametrize(
    "env",
    [{"PYTHONIOENCODING": "ascii"}, {"LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": "", "PYTHONUTF8": "0"},
     {"PYTHONIOENCODING": "latin-1"}],
)
@pytest.mark.parametrize("flag", [[], ["--json"]])
def test_a_terminal_that_cannot_show_the_text_gets_it_escaped(env, flag, tmp_path):
    line = json.dumps({"messages": [{"role": "user", "content": "x"}], "clé✓": 1}, ensure_ascii=False)
    path = write(tmp_path, jsonl([line, *GOOD]), name="données✓.jsonl")
    proc = subprocess.run(
        [*COMMAND, str(path), "--model", "gpt-4o-mini", *flag],
        capture_output=True, timeout=60, env={**os.environ, **env},
    )
    assert proc.returncode == cli.EXIT_ERRORS, proc.stderr
    assert proc.stderr == b""
    out = proc.stdout.decode("latin-1")
    assert "\\u2713" in out  # the check mark, escaped
    missing = run(tmp_path / "nowhere✓.jsonl", "--model", "gpt-4o-mini", env=env)
    assert missing.returncode == cli.EXIT_USAGE and "Traceback" not in missing.stderr


def test_an_encoding_that_cannot_be_loaded_is_a_usage_error(tmp_path, capsys, monkeypatch):
    """A price file may name a tiktoken encoding that is not cached; with no network
    (tests reach only loopback) it cannot be loaded: one line, exit 2."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": [
        {"model": "old", "training_per_1m": "1", "training_context": 2048, "encoding": "p50k_edit"},
    ]}))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    path = write(tmp_path, jsonl(GOOD))
    assert cli.main(["check", str(path), "--model", "old", "--prices", str(prices)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("tunecord check: the p50k_edit tokenizer cannot be loaded") and err.count("\n") == 1

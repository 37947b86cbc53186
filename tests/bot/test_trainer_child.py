"""``python -m bot`` with the default backend runs the bundled trainer as its child: started
before the bot connects, restarted when it dies, stopped when the bot stops (or is killed)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
import textwrap
import time
from pathlib import Path

import httpx2

from bot.backend.trainer_child import TrainerChild, free_port
from tests.bot.process import BotProcess, bot_env
from trainer.datadir import DataDirLock

pytest_plugins = ("tests.standins.discord.fixtures",)

START = 120.0
"""Seconds a trainer may take to import torch and answer on a busy machine."""


def trainer_env(tmp_path: Path, server, **overrides: str) -> dict[str, str]:
    """The bot's environment with the defaults: backend trainer, started by the bot."""
    env = bot_env(tmp_path, server, TRAINER_DATA_DIR=str(tmp_path / "trainer"), **overrides)
    del env["TUNECORD_START_TRAINER"]  # bot_env turns it off; the default is on
    return env


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def child_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


async def started_pid(process: BotProcess, nth: int) -> int:
    """The pid in the ``nth`` (1-based) "trainer started (pid N)" line."""
    async with asyncio.timeout(START):
        while len(pids := re.findall(r"trainer started \(pid (\d+)\)", process.output)) < nth:
            await asyncio.sleep(0.1)
    return int(pids[nth - 1])


async def test_the_bot_starts_restarts_and_stops_its_trainer(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ")
    process = await BotProcess.start(trainer_env(tmp_path, discord_server), tmp_path)
    try:
        ready = await process.wait_for_line("trainer ready at", timeout=START)
        url = re.search(r"(http://127\.0\.0\.1:\d+/v1)", ready)
        assert url is not None
        base = url.group(1)
        online = await process.wait_for_line("is online as")
        assert process.lines.index(ready) < process.lines.index(online)  # ready before connecting
        first = await started_pid(process, 1)

        key = child_environment(first)["TRAINER_API_KEY"]
        assert key.startswith("sk-tunecord-") and len(key) > 40
        assert "DISCORD_TOKEN" not in child_environment(first)
        assert key.encode() not in Path(f"/proc/{first}/cmdline").read_bytes()
        assert b"trainer" in Path(f"/proc/{first}/cmdline").read_bytes()
        async with httpx2.AsyncClient() as http:
            assert (await http.get(base.removesuffix("/v1") + "/health")).status_code == 200
            assert (await http.get(f"{base}/models")).status_code == 401
            answer = await http.get(f"{base}/models", headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200 and answer.json()["object"] == "list"
        assert (await guild.owner.slash("config show")).ephemeral  # the bot works meanwhile

        os.kill(first, signal.SIGKILL)
        await process.wait_for_line("the trainer stopped unexpectedly (killed by SIGKILL); restarting")
        await process.wait_for_line("trainer is back at " + base, timeout=START)
        second = await started_pid(process, 2)
        assert second != first and not alive(first)
        async with httpx2.AsyncClient() as http:
            answer = await http.get(f"{base}/models", headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200  # same port, same key: the provider's URL still works

        assert await process.stop() == 0
    finally:
        await process.kill()
    output = process.output
    stopped = re.search(r"trainer_child: trainer stopped$", output, re.M)
    assert stopped is not None and stopped.start() < output.index("database closed")
    assert not alive(second)
    assert "[trainer] " in output and "Traceback" not in output
    assert key not in output


async def test_a_killed_bot_takes_its_trainer_along(discord_server, tmp_path):
    process = await BotProcess.start(trainer_env(tmp_path, discord_server), tmp_path)
    try:
        await process.wait_for_line("trainer ready at", timeout=START)
        pid = await started_pid(process, 1)
        process.proc.kill()
        await process.wait()
        deadline = time.monotonic() + 60
        while alive(pid):
            assert time.monotonic() < deadline, "the trainer outlived the bot"
            await asyncio.sleep(0.1)
    finally:
        await process.kill()


async def test_a_trainer_that_cannot_start_stops_the_bot_with_one_sentence(discord_server, tmp_path):
    # a folder in use is retried each second (a previous trainer may still be stopping)
    # until the start timeout, then the bot stops with the trainer's own words
    env = trainer_env(tmp_path, discord_server, TUNECORD_TRAINER_START_TIMEOUT="8")
    with DataDirLock(tmp_path / "trainer"):  # another trainer holds the data folder
        process = await BotProcess.start(env, tmp_path)
        try:
            code = await process.wait(timeout=120)
        finally:
            await process.kill()
    assert code == 1
    last = process.lines[-1]
    assert last.startswith("tunecord: the bundled trainer (python -m trainer) ")  # stopped or could not start
    assert "is in use by another trainer" in last and "TUNECORD_START_TRAINER=false" in last
    assert "Traceback" not in process.output
    assert not discord_server.gateway.active  # it never connected to Discord


# ----------------------------------------------------------------------------- the child itself

STUBBORN = textwrap.dedent("""
    import http.server, os, signal, sys
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a trainer that does not stop when asked

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"object": "list", "data": []}')

        def log_message(self, *args):
            print("INFO:     request", flush=True)

    print("2026-01-01 00:00:00,000 WARNING stub: listening as", os.environ["TRAINER_HOST"], flush=True)
    http.server.HTTPServer((os.environ["TRAINER_HOST"], int(os.environ["TRAINER_PORT"])), Answer).serve_forever()
""")


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, caplog):
    child = TrainerChild(data_dir=tmp_path, port=free_port(), start_timeout=30,
                         command=[sys.executable, "-c", STUBBORN], stop_grace=0.5)  # fmt: skip
    caplog.set_level(logging.INFO)
    assert await child.start()
    pid = child.pid
    assert pid is not None
    began = time.monotonic()
    await child.stop()
    assert time.monotonic() - began < 10
    assert not alive(pid) and child.pid is None
    assert "did not stop within 0.5s of SIGTERM; killing it" in caplog.text
    assert "trainer stopped (killed by SIGKILL)" in caplog.text
    levels = {r.getMessage(): r.levelno for r in caplog.records if r.name == "bot.backend.trainer"}
    assert levels["[trainer] stub: listening as 127.0.0.1"] == logging.WARNING  # its level, prefixed
    await child.stop()  # twice is fine


async def test_a_stop_signal_while_waiting_for_the_child_ends_the_wait(tmp_path):
    abort = asyncio.Event()
    silent = TrainerChild(data_dir=tmp_path, start_timeout=60, stop_grace=5,
                          command=[sys.executable, "-c", "import time; time.sleep(60)"])  # fmt: skip
    asyncio.get_running_loop().call_later(0.5, abort.set)
    began = time.monotonic()
    assert await silent.start(abort) is False
    assert time.monotonic() - began < 10
    await silent.stop()
    assert silent.pid is None

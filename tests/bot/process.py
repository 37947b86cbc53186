"""Running ``python -m bot`` as a real subprocess, reading its log as it goes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.standins.discord import DiscordStandIn

_OWN_PREFIXES = ("DISCORD_", "TUNECORD_", "TRAINER_", "OPENAI_", "DEV_GUILD_ID")


def bot_env(
    tmp_path: Path, server: DiscordStandIn | None = None, **overrides: str
) -> dict[str, str]:
    """The environment of a bot process: none of the caller's tunecord settings, a temp
    database, no trainer, and (given a stand-in) Discord pointed at it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    env.update(TUNECORD_DB=str(tmp_path / "bot.sqlite3"), TUNECORD_START_TRAINER="false")
    if server is not None:
        env.update(
            DISCORD_TOKEN=server.bot_token,
            DISCORD_API_BASE=server.api_base,
            DISCORD_GATEWAY_URL=server.gateway_url,
        )
    env.update(overrides)
    return env


class BotProcess:
    """A running ``python -m bot`` (cwd: a temp folder, so no ``.env`` is read)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, env: dict[str, str], cwd: Path) -> BotProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=cwd, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            async with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, text: str, timeout: float = 30.0) -> str:
        """The first output line containing ``text``; fails if the process ends first."""

        def found() -> str | None:
            return next((line for line in self.lines if text in line), None)

        async with asyncio.timeout(timeout), self._changed:
            while (line := found()) is None:
                if self._reader.done():
                    raise AssertionError(f"bot exited before logging {text!r}:\n{self.output}")
                await self._changed.wait()
            return line

    async def wait(self, timeout: float = 30.0) -> int:
        """The exit code, once the process has ended and its output is read."""
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await self._reader
        return code

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.proc.send_signal(sig)
        return await self.wait(timeout)

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()


async def run_to_exit(
    env: dict[str, str], cwd: Path, timeout: float = 60.0
) -> tuple[int, str, str]:
    """Run the bot until it exits on its own; returns (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()

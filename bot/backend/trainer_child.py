"""The bundled trainer as a child process of the bot: started, watched, restarted, stopped.

:class:`TrainerChild` runs ``python -m trainer`` (this interpreter) bound to 127.0.0.1 on
a free port (or TRAINER_URL's, when that was set), with the data folder from
``TRAINER_DATA_DIR`` and an API key passed in the environment (``TRAINER_API_KEY`` when
set, otherwise a fresh random key each start), never on the command line. Then:

* :meth:`TrainerChild.start` waits until ``GET /v1/models`` answers with that key, at most
  ``TUNECORD_TRAINER_START_TIMEOUT`` seconds, and otherwise raises
  :class:`~bot.errors.StartupError` with the child's last words. A data folder still held
  by a trainer that is shutting down (the bot was killed and restarted quickly) is waited
  for within the same time.
* While the bot runs, a child that exits is logged and started again on the same port
  with the same key, after 1, 2, 4... up to 60 seconds (back to 1 s after a minute of
  good health), so the provider's URL and key stay valid.
* :meth:`TrainerChild.stop` sends SIGTERM (the trainer saves its running job to resume
  it) and SIGKILL after :data:`STOP_GRACE_SECONDS`.

The child runs in its own session, so a Ctrl-C in the terminal reaches the bot only and
the bot stops the trainer in order, and through :mod:`bot.backend.guard`, so it also ends
when the bot is killed. Its output goes to the bot's log (:mod:`bot.backend.child_log`).
The child's environment drops the bot's own secrets (the Discord token, the OpenAI key).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx2

from bot.backend.child_log import MAX_LINE, ChildLog
from bot.errors import StartupError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
STOP_GRACE_SECONDS = 20.0
"""SIGTERM to SIGKILL: time for the trainer to stop a training step and save its state."""
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 60.0
HEALTHY_AFTER = 60.0
"""A child that ran this long before dying restarts after the first delay again."""
POLL_SECONDS = 0.25
BUSY_MARK = "is in use by another trainer"
"""What the trainer says when another trainer still holds the data folder."""
NEEDED_MODULES = ("fastapi", "uvicorn", "torch", "transformers", "peft")
"""The trainer's extra packages (``pip install -e '.[trainer]'``)."""
WITHHELD = ("DISCORD_TOKEN", "OPENAI_API_KEY", "OPENAI_ADMIN_KEY")
"""The bot's secrets, kept out of the child's environment."""
START_HINT = (
    "set TUNECORD_START_TRAINER=false and TRAINER_URL to use a trainer started separately, "
    "or TUNECORD_BACKEND=openai"
)


CODE_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the ``bot`` and ``trainer`` packages (the checkout, or site-packages)."""


def trainer_command() -> list[str]:
    """``python -m trainer`` with this interpreter. ``-P``: the working directory is not on
    the import path (the child gets :data:`CODE_ROOT` instead), so a folder there named like
    a package, such as a data folder called ``trainer``, cannot shadow the real one."""
    return [sys.executable, "-P", "-m", "trainer"]


def free_port(host: str = HOST) -> int:
    """A port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def new_api_key() -> str:
    return "sk-tunecord-" + secrets.token_urlsafe(32)


def missing_trainer_packages() -> list[str]:
    """The trainer's packages this Python cannot import."""
    missing = [name for name in NEEDED_MODULES if importlib.util.find_spec(name) is None]
    if not (CODE_ROOT / "trainer" / "__main__.py").is_file():
        missing.insert(0, "trainer")
    return missing


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class TrainerChild:
    """See the module docstring. ``command`` replaces ``python -m trainer`` (tests)."""

    def __init__(
        self,
        *,
        data_dir: Path,
        port: int | None = None,
        api_key: str | None = None,
        start_timeout: float = 120.0,
        command: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        stop_grace: float = STOP_GRACE_SECONDS,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.api_key = api_key or new_api_key()
        self.start_timeout = start_timeout
        self.command = list(command) if command is not None else trainer_command()
        self.environ = dict(os.environ if environ is None else environ)
        self.stop_grace = stop_grace
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._output: asyncio.Task[None] | None = None
        self._log = ChildLog(secret=self.api_key)
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._abort: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"TrainerChild({self.url!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        """The child's OpenAI-compatible API (``http://127.0.0.1:PORT/v1``)."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    # -- start ----------------------------------------------------------------------------
    async def start(self, abort: asyncio.Event | None = None) -> bool:
        """Start the child and wait until it answers; ``False`` if ``abort`` was set first
        (a stop signal while waiting). Raises :class:`StartupError` when it cannot start."""
        if self.command == trainer_command():
            missing = missing_trainer_packages()
            if missing:
                raise StartupError(
                    f"the bundled trainer needs packages that are not installed ({', '.join(missing)}): "
                    f"run pip install -e '.[trainer]', or {START_HINT}"
                )
        self._abort = abort
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        log.info("starting the trainer on %s with data in %s", self.url, self.data_dir)
        busy_seen = False
        while True:
            proc = await self._spawn()
            outcome = await self._wait_ready(proc, deadline)
            if outcome == "ready":
                break
            if outcome == "aborted":
                await self._terminate(proc)
                return False
            busy = outcome == "exited" and BUSY_MARK in " ".join(self._log.tail)
            busy_seen = busy_seen or busy
            if busy and loop.time() + 1 < deadline:
                log.info("the trainer data folder is still in use; trying again in 1s")
                await asyncio.sleep(1)
                continue
            await self._terminate(proc)
            if busy_seen and not busy:  # the deadline fell on a retry still starting up
                raise StartupError(
                    f"the bundled trainer (python -m trainer) could not start: its data folder "
                    f"{self.data_dir} {BUSY_MARK} for {self.start_timeout:g} seconds "
                    f"(TUNECORD_TRAINER_START_TIMEOUT). Stop that trainer, or {START_HINT}"
                )
            raise StartupError(self._failure(outcome, proc))
        log.info("trainer ready at %s (pid %d)", self.url, proc.pid)
        self._supervisor = asyncio.create_task(self._supervise(), name="trainer-supervisor")
        return True

    def _failure(self, outcome: str, proc: asyncio.subprocess.Process) -> str:
        said = self._log.last_words().rstrip(". ")
        said = f"; it said: {said}" if said else ""
        if outcome == "exited":
            return (
                f"the bundled trainer (python -m trainer) stopped before it answered "
                f"({describe_exit(proc.returncode)}){said}. Fix that, or {START_HINT}"
            )
        return (
            f"the bundled trainer did not answer at {self.url} within {self.start_timeout:g} "
            f"seconds (TUNECORD_TRAINER_START_TIMEOUT){said}"
        )

    def _child_environment(self) -> dict[str, str]:
        env = {k: v for k, v in self.environ.items() if k not in WITHHELD}
        path = [str(CODE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env.update(
            PYTHONPATH=os.pathsep.join(path),
            TRAINER_HOST=HOST,
            TRAINER_PORT=str(self.port),
            TRAINER_API_KEY=self.api_key,
            TRAINER_DATA_DIR=str(self.data_dir),
            PYTHONUNBUFFERED="1",
        )
        return env

    async def _spawn(self) -> asyncio.subprocess.Process:
        self._log = ChildLog(secret=self.api_key)
        guard = [sys.executable, "-P", "-m", "bot.backend.guard", str(os.getpid())]
        proc = await asyncio.create_subprocess_exec(
            *guard, *self.command,
            env=self._child_environment(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            limit=MAX_LINE,
        )  # fmt: skip
        assert proc.stdout is not None
        self._proc = proc
        self._output = asyncio.create_task(self._log.follow(proc.stdout), name="trainer-output")
        log.info("trainer started (pid %d)", proc.pid)
        return proc

    def _aborted(self) -> bool:
        return self._stopping.is_set() or (self._abort is not None and self._abort.is_set())

    async def _wait_ready(self, proc: asyncio.subprocess.Process, deadline: float) -> str:
        """``ready``, ``exited``, ``timeout`` or ``aborted``."""
        loop = asyncio.get_running_loop()
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(5.0, connect=1.0)) as http:
            while True:
                if self._aborted():
                    return "aborted"
                if proc.returncode is not None:
                    await self._drain_output()
                    return "exited"
                try:
                    answer = await http.get(f"{self.url}/models", headers=headers)
                except httpx2.TransportError:
                    pass
                else:
                    if answer.status_code == 200:
                        return "ready"
                    if answer.status_code == 401:
                        raise StartupError(
                            f"the bundled trainer at {self.url} refused the key it was started "
                            f"with; is another program listening on port {self.port}?"
                        )
                if loop.time() >= deadline:
                    return "timeout"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), POLL_SECONDS)

    async def _drain_output(self) -> None:
        if self._output is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._output), 5)

    # -- supervision ----------------------------------------------------------------------
    async def _supervise(self) -> None:
        """Wait for the child to end; start it again unless the bot is stopping."""
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            proc = self._proc
            assert proc is not None
            started = loop.time()
            stopping = asyncio.create_task(self._stopping.wait())
            exited = asyncio.create_task(proc.wait())
            await asyncio.wait({stopping, exited}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if self._stopping.is_set():
                exited.cancel()
                await self._terminate(proc)
                return
            await self._drain_output()
            if loop.time() - started >= HEALTHY_AFTER:
                failures = 0
            delay = min(RESTART_FIRST_DELAY * 2**failures, RESTART_MAX_DELAY)
            failures += 1
            code = proc.returncode
            said = self._log.last_words() if code is not None and code > 0 else ""  # not after a kill
            log.warning(
                "the trainer stopped unexpectedly (%s%s); restarting it in %.0fs",
                describe_exit(code), f": {said}" if said else "", delay,
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            self.restarts += 1
            try:
                proc = await self._spawn()
                outcome = await self._wait_ready(proc, loop.time() + self.start_timeout)
            except (OSError, StartupError) as exc:  # the loop waits a little longer and tries again
                log.error("the trainer could not be restarted: %s", exc)
                if self._proc is not None:
                    await self._terminate(self._proc)
                continue
            if outcome == "ready":
                log.info("trainer is back at %s (pid %d)", self.url, proc.pid)
            elif outcome == "timeout":
                log.error("the restarted trainer did not answer within %gs; stopping it", self.start_timeout)
                await self._terminate(proc)  # the loop then waits out the delay and tries again
            # "exited": the loop sees it at once; "aborted": the loop stops it

    # -- stop -----------------------------------------------------------------------------
    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM, then SIGKILL after the grace period; returns once it has exited."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.stop_grace)
            except TimeoutError:
                log.warning(
                    "the trainer did not stop within %gs of SIGTERM; killing it", self.stop_grace
                )
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        await self._drain_output()

    async def stop(self) -> None:
        """Stop the child (and its supervision); safe to call more than once."""
        self._stopping.set()
        if self._supervisor is not None:
            try:
                await self._supervisor
            except Exception:  # a bug in supervision must not keep the bot from stopping
                log.exception("trainer supervision failed")
                if self._proc is not None:
                    await self._terminate(self._proc)
            self._supervisor = None
        elif self._proc is not None:
            await self._terminate(self._proc)
        if self._proc is not None:
            code = self._proc.returncode
            clean = code in (0, -signal.SIGTERM)  # uvicorn ends by re-raising SIGTERM
            log.info("trainer stopped%s", "" if clean else f" ({describe_exit(code)})")
            self._proc = None

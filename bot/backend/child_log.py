"""The trainer child's output, line by line, in the bot's log.

Each line goes to the ``bot.backend.trainer`` logger as ``[trainer] ...`` at the level the
trainer gave it: its own log format (``<date> <time> LEVEL name: message``) and uvicorn's
(``LEVEL:     message``) are recognised, and the timestamp is dropped (the bot's log has
its own). Lines without a level (a traceback) keep the level of the line before. Uvicorn's
access lines (one per request: the bot polls jobs) are DEBUG unless they report a 5xx.
The last lines are kept for error messages (:attr:`ChildLog.tail`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque

log = logging.getLogger("bot.backend.trainer")

PREFIX = "[trainer]"
_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
_OWN = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$")
_UVICORN = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):\s+(.*)$")
_ACCESS = re.compile(r'"[A-Z]+ \S+ HTTP/[\d.]+" (\d{3})')
MAX_LINE = 1 << 20
"""Longest line read whole; longer output is cut into pieces of this size."""


class ChildLog:
    """Forwards one child process's output; ``secret`` is never logged (replaced)."""

    def __init__(self, secret: str | None = None, keep: int = 20) -> None:
        self.secret = secret
        self.tail: deque[str] = deque(maxlen=keep)
        self._level = logging.INFO

    def line(self, raw: str) -> None:
        """Log one line of output."""
        text = raw.rstrip("\r\n")
        if not text.strip():
            return
        if self.secret:
            text = text.replace(self.secret, "[key]")
        level, message, request = self._classify(text)
        if not request:
            self.tail.append(message)
        log.log(level, "%s %s", PREFIX, message)

    def _classify(self, text: str) -> tuple[int, str, bool]:
        """The level, the message and whether it is an access (request) line."""
        own = _OWN.match(text)
        if own:
            self._level = _LEVELS[own.group(1)]
            return self._level, own.group(2), False
        uvicorn = _UVICORN.match(text)
        if uvicorn:
            message = uvicorn.group(2)
            access = _ACCESS.search(message)
            if access:  # a request line: not worth a line per poll, unless the server failed
                return (logging.WARNING if access.group(1) >= "500" else logging.DEBUG), message, True
            self._level = _LEVELS[uvicorn.group(1)]
            return self._level, message, False
        if text.startswith("Traceback (most recent call last)"):
            self._level = logging.ERROR
        return self._level, text, False

    async def follow(self, stream: asyncio.StreamReader) -> None:
        """Read ``stream`` to its end, logging every line."""
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line over the reader's limit: log what is buffered
                raw = await stream.read(MAX_LINE)
            if not raw:
                return
            self.line(raw.decode("utf-8", "replace"))

    def last_words(self) -> str:
        """The last meaningful line of output (for an error message), or ``""``."""
        for line in reversed(self.tail):
            if line.startswith(("Traceback", " ")):  # a traceback's frames: not the cause
                continue
            return line
        return ""

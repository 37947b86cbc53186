"""Admission and threads for chat completions, kept apart from the control routes.

A chat holds the model for seconds to minutes; files, jobs, models and ``/health``
answer in milliseconds. So chats never share the control routes' thread pool:

* at most ``slots`` chats generate at once (a stream holds its slot until it ends);
* at most ``waiting`` more wait for a slot, in arrival order; any further chat is
  answered at once with 429 and ``retry-after`` (:data:`RETRY_AFTER_SECONDS`);
* their blocking work runs in worker threads counted by the queue's own limiter, never
  in the pool of the synchronous routes, so a full queue cannot delay a control route;
* a chat whose client has gone stops: while it waits (it leaves the queue), and while it
  generates (``Generation.cancel``: the engine stops before its next token; a stream's
  generator is closed and its slot given back however the stream ended).

All bookkeeping happens on the event loop; only model work runs in threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.types import Receive

from trainer.engine import Generation
from trainer.errors import chat_queue_full

T = TypeVar("T")

RETRY_AFTER_SECONDS = 2
"""What a 429 for a full chat queue tells the client to wait (the SDK honours it)."""


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


class ChatQueue:
    """See the module docstring. Create it inside the running event loop (the app's lifespan)."""

    def __init__(self, slots: int, waiting: int) -> None:
        if slots < 1 or waiting < 0:
            raise ValueError("a chat queue needs at least one slot and a non-negative queue")
        self.slots = slots
        self.waiting = waiting
        self.admitted = 0
        """Chats running or waiting: at most ``slots + waiting``."""
        self._running = anyio.Semaphore(slots)
        self._threads = anyio.CapacityLimiter(slots)

    def admit(self) -> ChatTicket:
        """A ticket for one chat, or a 429 :class:`APIError` when the queue is full."""
        if self.admitted >= self.slots + self.waiting:
            raise chat_queue_full(RETRY_AFTER_SECONDS)
        self.admitted += 1
        return ChatTicket(self)


class ChatTicket:
    """One admitted chat: wait for a slot, run model work in the chat threads, release."""

    def __init__(self, queue: ChatQueue) -> None:
        self._queue = queue
        self._holding = False
        self._released = False

    async def start(self) -> None:
        """Wait for a generation slot (cancellable: a departed client leaves the queue)."""
        await self._queue._running.acquire()
        self._holding = True

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a chat worker thread; a cancellation waits for it to return."""
        return await anyio.to_thread.run_sync(func, *args, limiter=self._queue._threads)

    def release(self) -> None:
        """Give back the slot and the queue place (idempotent; call on the event loop)."""
        if self._released:
            return
        self._released = True
        if self._holding:
            self._queue._running.release()
        self._queue.admitted -= 1


async def _watch(receive: Receive, left: threading.Event, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    left.set()  # a generation in a thread stops at its next token
    scope.cancel()  # a wait for a slot ends now; thread work is waited for, then stops


async def unless_client_leaves(receive: Receive, left: threading.Event, work: Callable[[], Awaitable[T]]) -> T:
    """``await work()``; if the client disconnects first, set ``left``, cancel what can be
    cancelled (waiting for a slot), let thread work finish its current step, and raise
    :class:`ClientGone`. Call only once the request body has been read."""
    with anyio.CancelScope() as scope:
        watcher = asyncio.ensure_future(_watch(receive, left, scope))
        try:
            result = await work()
        finally:
            watcher.cancel()
    with suppress(asyncio.CancelledError):
        await watcher
    if left.is_set():
        raise ClientGone
    return result


def collect(gen: Generation) -> str:
    """The whole text of a generation (runs in a chat thread). It ends early once
    ``gen.cancelled`` is set, which :func:`unless_client_leaves` does when the client leaves."""
    parts = []
    try:
        for piece in gen.deltas:
            parts.append(piece)
            if gen.cancelled.is_set():
                break
    finally:
        close = getattr(gen.deltas, "close", None)
        if close is not None:
            close()
    return "".join(parts)

"""The interactions being handled right now, so shutdown can let them finish."""

from __future__ import annotations

import asyncio


class InFlight:
    """Tasks handling an interaction; each removes itself when it ends."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def count(self) -> int:
        return len(self._tasks)

    def track_current(self) -> None:
        """Count the running task until it ends (called as each interaction starts)."""
        task = asyncio.current_task()
        if task is not None and task not in self._tasks:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the tracked tasks; returns how many still run."""
        pending = self._tasks - {asyncio.current_task()}
        if not pending:
            return 0
        _, still_running = await asyncio.wait(pending, timeout=timeout)
        return len(still_running)

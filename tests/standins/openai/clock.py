"""A clock the test controls.

OpenAI fine-tuning jobs move through ``validating_files -> queued -> running ->
succeeded`` over minutes or hours of wall time.  The stand-in never looks at wall
time: every timestamp it emits (``created_at``, ``finished_at``, event times) comes
from this clock, and jobs only progress when a test calls :meth:`FakeClock.advance`
(or drives a job directly with ``server.jobs.step(job_id)``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: 2026-11-23T12:00:00Z, a fixed, recognisable epoch for every stand-in instance.
DEFAULT_EPOCH = 1_795_435_200


class FakeClock:
    """Monotonic, manually advanced Unix clock (seconds, float).

    Listeners registered with :meth:`on_advance` are called (under the server's state
    lock) after every advance, so the job scheduler can run all transitions that became
    due.  ``now`` never moves backwards.
    """

    def __init__(self, start: float = DEFAULT_EPOCH, lock: threading.RLock | None = None) -> None:
        self._now = float(start)
        self._lock = lock or threading.RLock()
        self._listeners: list[Callable[[float], None]] = []

    @property
    def now(self) -> float:
        """Current stand-in time, Unix seconds."""
        return self._now

    def timestamp(self) -> int:
        """Current time as the integer Unix timestamp OpenAI puts in ``created_at``."""
        return int(self._now)

    def on_advance(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(now)`` after each advance."""
        self._listeners.append(listener)

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` and run everything that became due.

        Returns the new time.  Jobs whose next transition falls inside the window are
        advanced in timestamp order, so events carry the time they "really" happened.
        """
        if seconds < 0:
            raise ValueError("the stand-in clock cannot go backwards")
        return self.advance_to(self._now + seconds)

    def advance_to(self, when: float) -> float:
        """Move time forward to the absolute Unix time ``when`` (no-op if in the past)."""
        with self._lock:
            if when > self._now:
                self._now = float(when)
            for listener in list(self._listeners):
                listener(self._now)
            return self._now

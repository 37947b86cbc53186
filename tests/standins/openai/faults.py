"""Faults on demand, per route, for N requests.

Each :class:`Fault` matches ``"METHOD /v1/path"`` (``*`` and ``{param}`` act as
wildcards, e.g. ``"GET /v1/fine_tuning/jobs/{id}"`` or ``"* /v1/files*"``) and fires on
the next ``times`` matching requests (``None`` = every request), before authentication
and routing, the way a load balancer or an overloaded backend would answer:

``rate_limit``
    429 ``rate_limit_exceeded`` with ``retry-after-ms`` and ``retry-after`` headers
    (the SDK retries it, honouring the delay; exhausted → ``RateLimitError``).
``status``
    an error status, 500 by default (5xx are retried; exhausted →
    ``InternalServerError``); other statuses give the matching SDK class.
``timeout``
    the response is held for ``delay`` seconds (wall time) before the request is
    served normally, so a client with a shorter timeout sees ``APITimeoutError``.
``drop``
    the connection is closed without any response (``APIConnectionError``).
"""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass

FAULT_KINDS = ("rate_limit", "status", "timeout", "drop")


@dataclass
class Fault:
    """One fault rule; ``hits`` counts the requests it has answered."""

    route: str
    kind: str
    times: int | None = 1
    status: int = 500
    retry_after_ms: int = 20
    delay: float = 1.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Does ``METHOD path`` match this rule's route pattern?"""
        pattern = re.sub(r"\{[^}]*\}", "*", self.route)
        if " " not in pattern:
            pattern = "* " + pattern
        return fnmatch.fnmatchcase(f"{method.upper()} {path}", pattern)

    @property
    def exhausted(self) -> bool:
        """True once the rule has fired ``times`` times."""
        return self.times is not None and self.hits >= self.times


class FaultPlan:
    """The faults armed on a server; first matching, non-exhausted rule wins."""

    def __init__(self) -> None:
        self.rules: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        route: str,
        kind: str,
        *,
        times: int | None = 1,
        status: int = 500,
        retry_after_ms: int = 20,
        delay: float = 1.0,
    ) -> Fault:
        """Arm a fault; see the module docstring for ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        fault = Fault(route, kind, times, status, retry_after_ms, delay)
        with self._lock:
            self.rules.append(fault)
        return fault

    def rate_limit(self, route: str, times: int | None = 1, retry_after_ms: int = 20) -> Fault:
        """429 with ``retry-after-ms``/``retry-after`` for the next ``times`` requests."""
        return self.add(route, "rate_limit", times=times, retry_after_ms=retry_after_ms)

    def server_error(self, route: str, times: int | None = 1, status: int = 500) -> Fault:
        """5xx (or any ``status``) in OpenAI's error shape for the next ``times`` requests."""
        return self.add(route, "status", times=times, status=status)

    def timeout(self, route: str, times: int | None = 1, delay: float = 1.0) -> Fault:
        """Hold the next ``times`` responses for ``delay`` seconds."""
        return self.add(route, "timeout", times=times, delay=delay)

    def drop(self, route: str, times: int | None = 1) -> Fault:
        """Close the connection without answering the next ``times`` requests."""
        return self.add(route, "drop", times=times)

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self.rules.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The fault that answers this request (its ``hits`` is incremented), if any."""
        with self._lock:
            for fault in self.rules:
                if not fault.exhausted and fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

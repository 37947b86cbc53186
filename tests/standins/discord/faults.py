"""Faults on demand: rate limits, server errors and slow responses.

Each fault matches a route (``"POST /channels/{channel_id}/messages"``, the
template of the stand-in's router, or ``None`` for every route) and fires a
number of ``times``.  The 429s look like Discord's (see discord.py
``http.py`` ``HTTPClient.request``):

* header ``Via: 1.1 google`` -- without it discord.py assumes a Cloudflare
  ban and raises instead of retrying;
* body ``{"message", "code", "retry_after": <float s>, "global": bool}``;
* ``X-RateLimit-Limit/Remaining/Reset/Reset-After/Bucket/Scope``,
  ``Retry-After`` and, for global limits, ``X-RateLimit-Global: true``.

Server errors (500/502/504/524) are retried by discord.py with a 1 s, 3 s,
... back-off; slow responses delay the handler.  Gateway faults live on
:class:`~.gateway.Gateway` (``disconnect``, ``send_reconnect``,
``invalidate_session``, ``fail_next_resume``).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Fault:
    kind: str
    method: str | None
    route: str | None
    times: int
    retry_after: float = 0.0
    is_global: bool = False
    status: int = 0
    delay: float = 0.0
    hits: int = 0

    def matches(self, method: str, route: str) -> bool:
        if self.times == 0:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.route is None or self.route == route


def _split(route: str | None) -> tuple[str | None, str | None]:
    if route is None:
        return None, None
    method, _, path = route.partition(" ")
    if not path:
        return None, method
    return method.upper(), path


class Faults:
    """The fault plan of one stand-in (see module docstring)."""

    def __init__(self) -> None:
        self.plan: list[Fault] = []

    def _add(self, kind: str, route: str | None, times: int, **kw: Any) -> Fault:
        method, path = _split(route)
        fault = Fault(kind, method, path, times, **kw)
        self.plan.append(fault)
        return fault

    def rate_limit(
        self,
        route: str | None = None,
        *,
        retry_after: float = 0.05,
        is_global: bool = False,
        times: int = 1,
    ) -> Fault:
        """Answer the next ``times`` matching requests with a 429."""
        return self._add("429", route, times, retry_after=retry_after, is_global=is_global)

    def server_error(self, route: str | None = None, *, status: int = 502, times: int = 1) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` (5xx)."""
        return self._add("5xx", route, times, status=status)

    def slow(self, route: str | None = None, *, delay: float = 0.2, times: int = 1) -> Fault:
        """Delay the next ``times`` matching responses by ``delay`` seconds."""
        return self._add("slow", route, times, delay=delay)

    def clear(self) -> None:
        self.plan.clear()

    def take(self, method: str, route: str) -> list[Fault]:
        """Consume and return the faults that fire for this request."""
        fired = []
        for fault in self.plan:
            if fault.matches(method, route):
                fault.times -= 1 if fault.times > 0 else 0
                fault.hits += 1
                fired.append(fault)
        return fired


def bucket_hash(route: str) -> str:
    return hashlib.sha1(route.encode()).hexdigest()[:16]


def ratelimit_headers(
    route: str, *, remaining: int = 49, reset_after: float = 1.0
) -> dict[str, str]:
    """The ``X-RateLimit-*`` headers Discord puts on every REST response."""
    return {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket_hash(route),
    }


def rate_limited_response(fault: Fault, route: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Body and headers of a 429 for ``fault``."""
    headers = ratelimit_headers(route, remaining=0, reset_after=fault.retry_after)
    headers.update(
        {
            "Via": "1.1 google",
            "Retry-After": str(max(1, math.ceil(fault.retry_after))),
            "X-RateLimit-Scope": "global" if fault.is_global else "user",
        }
    )
    if fault.is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {
        "message": "You are being rate limited.",
        "retry_after": fault.retry_after,
        "global": fault.is_global,
        "code": 0,
    }
    return body, headers

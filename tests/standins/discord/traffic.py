"""Recorded REST traffic and its validation against the OpenAPI spec.

The server records every REST exchange (:class:`Exchange`).  At test
teardown :func:`spec_violations` checks each one with
:mod:`tests.standins.spec_discord`:

* request bodies must match the operation's request schema -- except when
  the stand-in rejected the body itself (400 with 50035/50006), because those
  tests send invalid bodies on purpose;
* response bodies must match the schema for their status code, including
  Discord error and 429 shapes.  Injected 5xx faults are exempt (the spec
  documents no 5xx bodies), as are routes outside ``/api/v10`` (the CDN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import spec_discord


@dataclass
class Exchange:
    method: str
    path: str
    route: str | None
    query: dict[str, str]
    headers: dict[str, str]
    request_json: Any
    request_content_type: str
    upload_names: list[str]
    status: int = 0
    response_json: Any = None
    fault: str | None = None
    started: float = 0.0
    finished: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def api_path(self) -> str | None:
        return self.path[len("/api/v10") :] if self.path.startswith("/api/v10") else None

    def __repr__(self) -> str:
        return f"<{self.method} {self.path} -> {self.status}{' (' + self.fault + ')' if self.fault else ''}>"


def spec_violations(exchanges: list[Exchange]) -> list[str]:
    """Human-readable spec violations for all recorded API exchanges."""
    problems = []
    for ex in exchanges:
        if ex.api_path is None or ex.fault == "5xx":
            continue
        rejected_by_rules = (
            ex.status == 400
            and isinstance(ex.response_json, dict)
            and ex.response_json.get("code") in (50035, 50006, 10014)
        )
        report = spec_discord.validate_exchange(
            ex.method,
            ex.api_path,
            request_body=ex.request_json,
            status=ex.status,
            response_body=None if ex.status == 204 else ex.response_json,
            request_content_type=ex.request_content_type or "application/json",
            check_request=not rejected_by_rules,
        )
        problems += [f"{ex.method} {ex.api_path} -> {ex.status}: {e}" for e in report.errors]
    return problems

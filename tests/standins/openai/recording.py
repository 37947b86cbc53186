"""Every HTTP exchange the stand-in sees, recorded for assertions and spec checks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict


@dataclass
class Exchange:
    """One request and what the stand-in answered.

    ``json`` is the parsed request body (JSON requests), ``form`` the multipart fields
    (file parts as ``{"filename", "bytes", "content"}``), ``response_json`` the parsed
    answer, ``sse`` the parsed ``data:`` chunks of a streamed answer (``sse_done`` true
    when ``[DONE]`` was sent).  Header mappings are case-insensitive.  ``fault`` names the injected fault, if any; ``dropped``
    is true when the connection was closed without a response.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes
    json: Any = None
    form: dict[str, Any] | None = None
    status: int | None = None
    response_headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    response_body: bytes = b""
    response_json: Any = None
    sse: list[dict[str, Any]] | None = None
    sse_done: bool = False
    fault: str | None = None
    dropped: bool = False

    @property
    def content_type(self) -> str:
        """Request ``Content-Type`` without parameters."""
        return (
            self.headers.get("Content-Type", self.headers.get("content-type", ""))
            .split(";")[0]
            .strip()
        )

    def describe(self) -> str:
        """``POST /v1/files -> 200`` style summary."""
        return f"{self.method} {self.path} -> {self.status if not self.dropped else 'dropped'}"


def decode_json(data: bytes) -> Any:
    """Parse JSON bytes, or ``None`` when they are not JSON."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


#: Where the recording middleware leaves the current :class:`Exchange` on the request.
EXCHANGE_KEY: web.RequestKey[Exchange] = web.RequestKey("standin_exchange", Exchange)

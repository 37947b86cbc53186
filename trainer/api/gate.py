"""The checks every request passes before the app reads a byte of its body.

:class:`RequestGate` is a plain ASGI middleware in front of the whole app. In order:

1. **Host** (DNS rebinding): the ``Host`` header must be an IP address, ``localhost``, the
   host the server is bound to, or a name in ``allowed_hosts`` (``*``: any); else 421.
   A request without ``Host`` (not a browser) passes.
2. **Cross-site browsers**: ``Sec-Fetch-Site`` other than ``same-origin``/``none``, or an
   ``Origin`` that is not this server's own, is refused with 403, whatever the method.
3. **API key** (when one is set): every path but ``/health`` needs
   ``Authorization: Bearer <key>`` (401 otherwise), ``/openapi.json`` and unknown URLs
   included. The comparison is constant-time; an error shows the key masked.
4. **Body size**: ``POST /v1/files`` may send ``max_upload_bytes`` plus
   :data:`MULTIPART_OVERHEAD_BYTES`, every other route ``max_json_bytes``. A declared
   ``Content-Length`` over the limit is a 413 at once; a chunked body is counted as it
   is read and the read fails with a 413 at the limit.

A refused request's body is never read by the app: uvicorn discards it as it arrives, so
memory and disk stay flat whatever a caller sends.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainer.config import TrainerConfig
from trainer.errors import (
    APIError,
    body_too_large,
    cross_site_request,
    host_not_allowed,
    invalid_api_key,
    missing_api_key,
)

OPEN_PATHS = frozenset({"/health"})
"""Paths served without the key: ``/health`` answers ``{"status": "ok"}`` and nothing else."""
UPLOAD_PATH = "/v1/files"
MULTIPART_OVERHEAD_BYTES = 1024 * 1024
"""Room for the multipart boundaries, part headers and the ``purpose`` field of an upload."""
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body passes its limit; rendered as an OpenAI 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, body_too_large(limit).message)


def host_name(host_header: str) -> str:
    """The name part of a ``Host`` header: no port, no IPv6 brackets, lower case, no final dot."""
    value = host_header.strip().lower()
    if value.startswith("["):
        name = value[1 : value.find("]")] if "]" in value else value[1:]
    else:
        name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return name.rstrip(".")


class RequestGate:
    """ASGI middleware applying the module's checks; see the module docstring."""

    def __init__(self, app: ASGIApp, config: TrainerConfig) -> None:
        self.app = app
        self.config = config
        self.api_key = config.api_key or None
        self.any_host = "*" in config.allowed_hosts
        self.hosts = {"localhost", host_name(config.host), *config.allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is None:
            limit = self._body_limit(scope)
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                refusal = body_too_large(limit)
        if refusal is not None:
            await refusal.response()(scope, receive, send)
            return
        await self.app(scope, _counting(receive, limit), send)

    def _refusal(self, scope: Scope, headers: Headers) -> APIError | None:
        host = headers.get("host")
        if host is not None and not self._host_allowed(host_name(host)):
            return host_not_allowed(host)
        if _cross_site(headers):
            return cross_site_request()
        if self.api_key is not None and scope["path"] not in OPEN_PATHS:
            return self._key_refusal(headers)
        return None

    def _host_allowed(self, name: str) -> bool:
        if self.any_host or name in self.hosts:
            return True
        try:
            ipaddress.ip_address(name)  # an address cannot be re-pointed by DNS
        except ValueError:
            return False
        return True

    def _key_refusal(self, headers: Headers) -> APIError | None:
        assert self.api_key is not None
        scheme, _, key = headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return missing_api_key()
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return invalid_api_key(key)
        return None

    def _body_limit(self, scope: Scope) -> int:
        if scope["method"] == "POST" and scope["path"] == UPLOAD_PATH:
            return self.config.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
        return self.config.max_json_bytes


def _cross_site(headers: Headers) -> bool:
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in SAME_SITE_FETCHES:
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin.strip()).netloc.lower() != headers.get("host", "").strip().lower()


def _counting(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLarge` once the body passes ``limit`` bytes."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return counted

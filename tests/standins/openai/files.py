"""``/v1/files``: upload (multipart), list, retrieve, content, delete.

Emulated OpenAI behaviour:

* ``POST /v1/files`` takes multipart fields ``file`` and ``purpose`` (one of
  ``assistants``, ``batch``, ``fine-tune``, ``vision``, ``user_data``, ``evals``) and an
  optional ``expires_after[anchor]``/``expires_after[seconds]``; the answer is a
  ``file`` object with ``status="processed"``;
* the Fine-tuning API only takes ``.jsonl`` files;
* a configurable size cap answers 413 (or 400) in OpenAI's error shape;
* list is newest first with ``purpose``, ``order``, ``limit``, ``after`` and the
  ``first_id``/``last_id``/``has_more`` envelope; a missing id answers 404
  ``No such File object: file-…``;
* job result files (purpose ``fine-tune-results``) are created by the stand-in itself.
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import APIErrorResponse, bad_request, not_found, too_large

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


@dataclass
class StoredFile:
    """A file held by the stand-in."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int
    expires_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``file`` object."""
        body: dict[str, Any] = {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }
        if self.expires_at is not None:
            body["expires_at"] = self.expires_at
        return body


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Parse ``multipart/form-data``: ``{field: (filename or None, bytes)}``.

    Done from the raw bytes (already read by the recording middleware) with the
    standard library, so it works for any client encoder.
    """
    raw = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    if not message.is_multipart():
        raise bad_request("Expected a multipart/form-data body.")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        fields[str(name)] = (part.get_filename(), payload)
    return fields


class FileStore:
    """Files by id, in upload order."""

    def __init__(self, state: Any) -> None:
        self._state = state
        self.files: dict[str, StoredFile] = {}

    def add(
        self, filename: str, purpose: str, content: bytes, expires_at: int | None = None
    ) -> StoredFile:
        """Store ``content`` and return the new file (also usable directly by tests)."""
        stored = StoredFile(
            id=self._state.ids.new("file-", 22),
            filename=filename,
            purpose=purpose,
            content=content,
            created_at=self._state.clock.timestamp(),
            expires_at=expires_at,
        )
        self.files[stored.id] = stored
        return stored

    def require(self, file_id: str) -> StoredFile:
        """The file, or OpenAI's 404."""
        stored = self.files.get(file_id)
        if stored is None:
            raise not_found(f"No such File object: {file_id}", param="id")
        return stored

    def upload(self, content_type: str, body: bytes) -> StoredFile:
        """Validate and store a multipart upload."""
        limit = self._state.config.max_file_bytes
        if len(body) > limit + 64 * 1024:  # the multipart envelope cannot be this large
            raise too_large(len(body), limit, self._state.config.oversize_status)
        fields = parse_multipart(content_type, body)
        if "purpose" not in fields:
            raise bad_request(
                "Missing required parameter: 'purpose'.",
                param="purpose",
                code="missing_required_parameter",
            )
        if "file" not in fields:
            raise bad_request(
                "Missing required parameter: 'file'.",
                param="file",
                code="missing_required_parameter",
            )
        purpose = fields["purpose"][1].decode()
        filename, content = fields["file"]
        filename = filename or "upload"
        if purpose not in UPLOAD_PURPOSES:
            allowed = ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)
            raise bad_request(
                f"Invalid value for 'purpose': '{purpose}'. Supported values are: {allowed}.",
                param="purpose",
                code="invalid_value",
            )
        if len(content) > limit:
            raise too_large(len(content), limit, self._state.config.oversize_status)
        if purpose == "fine-tune" and not filename.endswith(".jsonl"):
            raise bad_request(
                "Invalid file format for Fine-Tuning API. Must be .jsonl",
                param="file",
                code="invalid_file_format",
            )
        expires_at = None
        if "expires_after[seconds]" in fields:
            seconds = int(fields["expires_after[seconds]"][1])
            if not 3600 <= seconds <= 2_592_000:
                raise bad_request(
                    "Invalid 'expires_after.seconds': must be between 3600 and 2592000.",
                    param="expires_after.seconds",
                )
            expires_at = self._state.clock.timestamp() + seconds
        return self.add(filename, purpose, content, expires_at)

    def page(self, query: Any) -> dict[str, Any]:
        """The ``GET /v1/files`` envelope."""
        items = list(self.files.values())
        if query.get("purpose"):
            items = [f for f in items if f.purpose == query["purpose"]]
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise bad_request(
                f"Invalid value for 'order': '{order}'.", param="order", code="invalid_value"
            )
        if order == "desc":
            items.reverse()
        after = query.get("after")
        if after:
            ids = [f.id for f in items]
            if after not in ids:
                raise bad_request(f"No such File object: {after}", param="after")
            items = items[ids.index(after) + 1 :]
        limit = _int_param(query, "limit", 10_000, 1, 10_000)
        page, has_more = items[:limit], len(items) > limit
        return {
            "object": "list",
            "data": [f.to_json() for f in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": has_more,
        }


def _int_param(query: Any, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(
            f"Invalid '{name}': expected an integer, got '{raw}'.", param=name
        ) from None
    if not low <= value <= high:
        raise bad_request(
            f"Invalid '{name}': integer out of range; expected {low} to {high}, got {value}.",
            param=name,
            code="integer_out_of_range" if value > high else "integer_below_min_value",
        )
    return value


int_param = _int_param


def routes(state: Any) -> list[web.RouteDef]:
    """aiohttp routes for ``/v1/files``; ``state`` is the :class:`OpenAIStandin`."""

    async def create(request: web.Request) -> web.Response:
        body = await request.read()
        if not request.content_type.startswith("multipart/"):
            raise bad_request("Expected a multipart/form-data body.")
        with state.lock:
            return state.json(state.files.upload(request.headers["Content-Type"], body).to_json())

    async def list_files(request: web.Request) -> web.Response:
        with state.lock:
            return state.json(state.files.page(request.query))

    async def retrieve(request: web.Request) -> web.Response:
        with state.lock:
            return state.json(state.files.require(request.match_info["file_id"]).to_json())

    async def content(request: web.Request) -> web.Response:
        with state.lock:
            stored = state.files.require(request.match_info["file_id"])
            return web.Response(body=stored.content, content_type="application/octet-stream")

    async def delete(request: web.Request) -> web.Response:
        with state.lock:
            stored = state.files.require(request.match_info["file_id"])
            del state.files.files[stored.id]
            return state.json({"id": stored.id, "object": "file", "deleted": True})

    return [
        web.post("/v1/files", create),
        web.get("/v1/files", list_files),
        web.get("/v1/files/{file_id}", retrieve),
        web.get("/v1/files/{file_id}/content", content),
        web.delete("/v1/files/{file_id}", delete),
    ]


__all__ = [
    "APIErrorResponse",
    "FileStore",
    "StoredFile",
    "UPLOAD_PURPOSES",
    "int_param",
    "parse_multipart",
    "routes",
]

"""Validate Discord REST traffic against the official OpenAPI spec.

The spec (``../shared/specs/discord-openapi.json`` from the project root, Discord's "HTTP API
(Preview)" for v10, OpenAPI 3.1 / JSON Schema 2020-12) describes every REST
operation.  This module

* resolves an operation from an HTTP method and a concrete path
  (``POST /channels/123/messages`` -> ``/channels/{channel_id}/messages``),
  preferring literal segments over templated ones, exactly like a router would
  (``/messages/@original`` beats ``/messages/{message_id}``);
* validates a JSON request body against the operation's ``requestBody``
  schema (multipart bodies are validated through their ``payload_json``);
* validates a JSON response body against the schema for the status code
  (exact code, then ``4XX``-style ranges, then ``default``).

It is deliberately independent of the stand-in so it can also check traffic
recorded elsewhere.  Gateway payloads are not covered by this spec.

Known differences between the preview spec and production Discord, applied
as narrow patches (see :data:`SPEC_PATCHES`):

* field errors inside a 50035 body carry *string* codes
  (``{"code": "BASE_TYPE_MAX_LENGTH", "message": ...}``, as documented in
  Discord's "Error Messages" reference) while the spec types every
  ``Error.code`` as integer; the ``_errors`` items accept both;
* request bodies may carry snowflakes as JSON integers -- Discord coerces
  them and discord.py relies on it (``message_reference.message_id``,
  ``recipient_id``, ``attachments[].id``); responses are still checked for
  string snowflakes.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(
    os.environ.get(
        "DISCORD_OPENAPI_SPEC",
        Path(__file__).resolve().parents[3] / "shared" / "specs" / "discord-openapi.json",
    )
)
_BASE_URI = "urn:discord-openapi"
_METHODS = ("get", "put", "post", "patch", "delete")


class SpecError(AssertionError):
    """Raised when traffic does not conform to the spec."""


@dataclass(frozen=True)
class Operation:
    """One OpenAPI operation, addressed by method and path template."""

    method: str
    template: str
    operation_id: str

    @property
    def pointer(self) -> str:
        escaped = self.template.replace("~", "~0").replace("/", "~1")
        return f"/paths/{escaped}/{self.method.lower()}"


@dataclass
class ValidationReport:
    """The result of validating one exchange; ``errors`` is empty when valid."""

    operation: Operation | None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _patch_error_codes(spec: dict[str, Any], *, request: bool) -> None:
    items = spec["components"]["schemas"]["InnerErrors"]["properties"]["_errors"]
    items["items"] = {
        "type": "object",
        "properties": {"code": {"type": ["integer", "string"]}, "message": {"type": "string"}},
        "required": ["code", "message"],
    }


def _patch_integer_snowflakes(spec: dict[str, Any], *, request: bool) -> None:
    if request:
        strict = spec["components"]["schemas"]["SnowflakeType"]
        spec["components"]["schemas"]["SnowflakeType"] = {
            "anyOf": [strict, {"type": "integer", "minimum": 0}]
        }


SPEC_PATCHES = (_patch_error_codes, _patch_integer_snowflakes)


@cache
def load_spec(path: str = str(SPEC_PATH)) -> dict[str, Any]:
    """Load (once) and return the OpenAPI document, unpatched."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@cache
def _registry(request: bool) -> Registry:
    spec = copy.deepcopy(load_spec())
    for patch in SPEC_PATCHES:
        patch(spec, request=request)
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    return Registry().with_resource(_BASE_URI, resource)


@cache
def _validator(pointer: str, request: bool) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{_BASE_URI}#{pointer}"}, registry=_registry(request))


@cache
def _templates() -> list[tuple[tuple[str, ...], str]]:
    out = []
    for template in load_spec()["paths"]:
        out.append((tuple(template.strip("/").split("/")), template))
    return out


def resolve_operation(method: str, path: str) -> Operation | None:
    """Find the spec operation for ``method`` and a concrete API ``path``.

    ``path`` is relative to the API base (``/channels/1/messages``); a leading
    ``/api/v10`` is stripped.  Returns ``None`` if no operation matches.
    """
    if path.startswith("/api/v10"):
        path = path[len("/api/v10") :]
    segments = tuple(unquote(s) for s in path.strip("/").split("/"))
    best: tuple[int, str] | None = None
    spec_paths = load_spec()["paths"]
    for parts, template in _templates():
        if len(parts) != len(segments) or method.lower() not in spec_paths[template]:
            continue
        params = 0
        for want, got in zip(parts, segments, strict=True):
            if want.startswith("{") and want.endswith("}"):
                params += 1
            elif want != got:
                break
        else:
            if best is None or params < best[0]:
                best = (params, template)
    if best is None:
        return None
    op = spec_paths[best[1]][method.lower()]
    return Operation(method.upper(), best[1], op.get("operationId", ""))


def _errors(pointer: str, instance: Any, *, request: bool) -> list[str]:
    validator = _validator(pointer, request)
    out = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        if err.context:  # oneOf/anyOf: report the most relevant branch failure
            err = best_match(err.context) or err
        where = "/".join(str(p) for p in err.absolute_path) or "<root>"
        out.append(f"{where}: {err.message[:300]}")
    return out


def validate_request(op: Operation, body: Any, content_type: str = "application/json") -> list[str]:
    """Validate a request body; returns a list of error strings (empty = valid)."""
    operation = load_spec()["paths"][op.template][op.method.lower()]
    request_body = operation.get("requestBody")
    if request_body is None:
        return [] if body is None else [f"{op.operation_id} takes no request body"]
    if body is None:
        return ["request body is required"] if request_body.get("required") else []
    ctype = "application/json" if content_type.startswith("multipart/") else content_type
    if ctype not in request_body["content"]:
        return [f"content type {content_type!r} not accepted by {op.operation_id}"]
    escaped = ctype.replace("~", "~0").replace("/", "~1")
    return _errors(f"{op.pointer}/requestBody/content/{escaped}/schema", body, request=True)


def _response_key(responses: dict[str, Any], status: int) -> str | None:
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            return key
    return None


def validate_response(op: Operation, status: int, body: Any) -> list[str]:
    """Validate a response body for ``status``; returns error strings."""
    responses = load_spec()["paths"][op.template][op.method.lower()]["responses"]
    key = _response_key(responses, status)
    if key is None:
        return [f"status {status} is not a documented response of {op.operation_id}"]
    response = responses[key]
    pointer = f"{op.pointer}/responses/{key}"
    if "$ref" in response:
        pointer = response["$ref"][1:]
        response = load_spec()["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    content = response.get("content")
    if not content:
        return [] if body in (None, b"", "") else [f"status {status} should have no body"]
    if "application/json" not in content:
        return []
    if body is None:
        return [f"status {status} of {op.operation_id} must have a JSON body"]
    return _errors(f"{pointer}/content/application~1json/schema", body, request=False)


def validate_exchange(
    method: str,
    path: str,
    *,
    request_body: Any,
    status: int,
    response_body: Any,
    request_content_type: str = "application/json",
    check_request: bool = True,
) -> ValidationReport:
    """Validate one request/response pair against the spec."""
    op = resolve_operation(method, path)
    if op is None:
        return ValidationReport(None, [f"no spec operation for {method} {path}"])
    report = ValidationReport(op)
    if check_request:
        report.errors += [
            f"request: {e}" for e in validate_request(op, request_body, request_content_type)
        ]
    report.errors += [
        f"response {status}: {e}" for e in validate_response(op, status, response_body)
    ]
    return report

"""Shared request plumbing: the app context, API-key check and query helpers."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from trainer.config import TrainerConfig
from trainer.engine import Engine
from trainer.errors import bad_request, invalid_api_key, invalid_json, missing_api_key
from trainer.jobs import JobManager
from trainer.models import ModelResolver
from trainer.store import Page, Store


@dataclass
class AppContext:
    """Everything a route needs, built once by :func:`trainer.server.create_app`."""

    config: TrainerConfig
    store: Store
    engine: Engine
    jobs: JobManager
    models: ModelResolver


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx


def require_api_key(request: Request) -> None:
    """Reject the request unless it carries the configured bearer key (if one is set)."""
    expected = get_ctx(request).config.api_key
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise missing_api_key()
    if not hmac.compare_digest(key.strip().encode(), expected.encode()):
        raise invalid_api_key(key.strip())


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def json_body(request: Request) -> Any:
    """The request body decoded as JSON, whatever its content type; OpenAI's 400 if it is not
    JSON (empty, truncated, ``NaN``, not UTF-8). A dependency, so the API-key check runs first."""
    try:
        return json.loads(await request.body(), parse_constant=_no_constant)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError included
        raise invalid_json() from None


def check_limit(limit: int, maximum: int) -> int:
    if not 1 <= limit <= maximum:
        raise bad_request(
            f"Invalid 'limit': must be between 1 and {maximum}, got {limit}.",
            param="limit",
            code="integer_out_of_range" if limit > maximum else "integer_below_min_value",
        )
    return limit


def found_page(page: Page[Any] | None, after: str | None) -> Page[Any]:
    """A page, or a 400 when the ``after`` cursor names no object of the list."""
    if page is None:
        raise bad_request(f"Invalid 'after': no object with id {after!r} in this list.", param="after")
    return page

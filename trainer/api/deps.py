"""Shared request plumbing: the app context, the JSON body and query helpers.

Who may call at all (key, ``Host``, cross-site browsers) and how large a body may be is
checked earlier, by :mod:`trainer.api.gate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from trainer.api.body import decode_json
from trainer.api.chat_queue import ChatQueue
from trainer.config import TrainerConfig
from trainer.engine import Engine
from trainer.errors import bad_request
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
    chats: ChatQueue


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx


async def json_body(request: Request) -> Any:
    """The request body decoded as JSON, whatever its content type; OpenAI's 400 if it is not
    JSON (empty, truncated, ``NaN``, not UTF-8) or holds unencodable text (see
    :mod:`trainer.api.body`). Decoded in a worker thread: a large body never stalls the loop."""
    raw = await request.body()
    return await run_in_threadpool(decode_json, raw)


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

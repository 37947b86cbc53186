"""JSON answers that always render, whatever text the database holds.

Requests are checked so that no new string the server stores is unencodable, but rows
written by an older version, or text quoted from an uploaded file, may still hold a lone
surrogate (``"\\ud800"``): plain UTF-8 encoding fails on it and the answer becomes a 500
for every later list or retrieve. :class:`SafeJSONResponse` writes such a character as
its JSON escape (``\\ud800``), which is exactly what ``ensure_ascii`` would have written,
and non-finite floats as ``null``, so a stored value can never break a listing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from fastapi.datastructures import DefaultPlaceholder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by ``None`` (iterative: any depth)."""
    root: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        holder, key = stack.pop()
        item = holder[key]
        if isinstance(item, float) and not math.isfinite(item):
            holder[key] = None
        elif isinstance(item, dict):
            copy = dict(item)
            holder[key] = copy
            stack.extend((copy, k) for k in copy)
        elif isinstance(item, list | tuple):
            copy_list = list(item)
            holder[key] = copy_list
            stack.extend((copy_list, i) for i in range(len(copy_list)))
    return root[0]


def render_json(content: Any) -> bytes:
    """Compact UTF-8 JSON; lone surrogates escaped, non-finite numbers as ``null``."""
    try:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:  # NaN or infinity somewhere
        text = json.dumps(_finite(content), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")


class SafeJSONResponse(JSONResponse):
    """A ``JSONResponse`` rendered by :func:`render_json`."""

    def render(self, content: Any) -> bytes:
        return render_json(content)


class SafeJSONRoute(APIRoute):
    """An ``APIRoute`` whose default response class is :class:`SafeJSONResponse`.

    FastAPI's own fast path encodes with pydantic, which raises on a lone surrogate; a
    route with an explicit response class takes the ordinary path instead.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if isinstance(kwargs.get("response_class", DefaultPlaceholder(None)), DefaultPlaceholder):
            kwargs["response_class"] = SafeJSONResponse
        super().__init__(path, endpoint, **kwargs)

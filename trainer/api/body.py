"""Decoding a JSON request body into values every later step can store and echo.

The gate (:mod:`trainer.api.gate`) has already capped the body's size. Here the body
must be JSON (OpenAI's parse error otherwise, ``NaN``/``Infinity`` included), nested
less deeply than Python's recursion limit, and hold only text that UTF-8 can encode and
only finite numbers. A lone surrogate such as ``"\\ud800"`` is legal JSON but not text:
stored, it would break every later answer that shows it, so it is refused with a 400
naming where it is, before anything is written. ``1e400`` (which decodes to infinity)
is refused the same way.
"""

from __future__ import annotations

import json
import math
from typing import Any

from trainer.errors import APIError, bad_request, invalid_json

MAX_PARAM_CHARS = 120
"""A parameter path longer than this is cut in messages."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(raw: bytes) -> Any:
    """The decoded body, or a 400 :class:`APIError` (see the module docstring)."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise bad_request("The JSON body is nested too deeply.", code="invalid_json") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError included
        raise invalid_json() from None
    check_values(value)
    return value


def _shown(text: str) -> str:
    """``text`` safe to put in a message: unencodable characters as escapes, cut if long."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= MAX_PARAM_CHARS else safe[:MAX_PARAM_CHARS] + "…"


def _unencodable(text: str) -> str | None:
    """The first character of ``text`` UTF-8 cannot encode (a lone surrogate), if any."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.object[exc.start]
    return None


def check_values(value: Any) -> None:
    """Raise a 400 naming the first unencodable string (key or value) or non-finite number.

    Iterative, so a deeply nested value cannot exhaust the stack.
    """
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, float) and not math.isfinite(item):
            param = _shown(where) or None
            raise bad_request(f"Invalid '{param or 'body'}': number out of range.", param=param)
        elif isinstance(item, dict):
            for key, child in item.items():
                path = f"{where}.{key}" if where else key
                _check_text(key, path)
                stack.append((child, path))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))


def _check_text(text: str, where: str) -> None:
    bad = _unencodable(text)
    if bad is None:
        return
    param = _shown(where) or None
    raise APIError(
        400,
        f"Invalid '{param or 'body'}': the string contains U+{ord(bad):04X}, a lone surrogate that is not "
        "valid Unicode text. Send text that can be encoded as UTF-8.",
        param=param,
        code="invalid_unicode",
    )

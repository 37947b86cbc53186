"""Walking parsed JSON: every string inside a value, at any depth, without recursion."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def strings_in(value: Any, *, keys: bool = False) -> Iterator[str]:
    """Every string inside ``value`` (nested lists, tuples and mappings; the mappings' keys
    too when ``keys``), iteratively: a hostile depth cannot exhaust the stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            if keys:
                stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)

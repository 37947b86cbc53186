"""``UNSET``: "this argument was not given", as opposed to ``None`` ("set it to nothing").

Update methods take each field as a keyword-only parameter typed ``T | Unset`` with
``UNSET`` as its default, so mypy checks the names and types of what callers change, and
``update(..., system_prompt=None)`` (clear it) differs from leaving ``system_prompt`` out
(keep it)::

    async def update(self, ..., *, base_model: str | None | Unset = UNSET) -> ...:
        base_model = value_or(base_model, current.base_model)

``Unset`` is a one-member enum, so ``value is UNSET`` narrows the type for mypy.
"""

from __future__ import annotations

import enum
from typing import Final, TypeVar

T = TypeVar("T")


class Unset(enum.Enum):
    """The type of :data:`UNSET` (its only value)."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET
"""The default of an update parameter the caller did not pass."""


def value_or(value: T | Unset, current: T) -> T:
    """``value`` if it was given (``None`` included), else ``current``."""
    return current if value is UNSET else value

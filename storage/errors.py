"""Exceptions raised by the storage layer.

:class:`NotFoundError` and :class:`DuplicateError` are mistakes a member can make (an id
or name that does not exist in their server, a name or example that already does), so
they are also :class:`~bot.dataset.errors.UserError`: their messages are written for the
member, and the bot shows them as they are. Invalid values are refused with
:class:`~bot.dataset.errors.InvalidInput`. Programming mistakes stay ``TypeError`` and
``RuntimeError``; :class:`MigrationError` is for the operator.
"""

from __future__ import annotations

from bot.dataset.errors import UserError


class StorageError(Exception):
    """Base class of every error the storage layer raises on purpose."""


class NotFoundError(StorageError, UserError):
    """The row does not exist in this guild (it may exist in another one: we do not say)."""


class DuplicateError(StorageError, UserError):
    """A unique constraint refused the write (a dataset name, an example's content...).

    ``existing_id`` is the id of the row already there, when known.
    """

    def __init__(self, message: str, existing_id: int | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class MigrationError(StorageError):
    """The database's recorded migrations do not match the code's list."""

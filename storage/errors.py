"""Exceptions raised by the storage layer."""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error the storage layer raises on purpose."""


class NotFoundError(StorageError):
    """The row does not exist in this guild (it may exist in another one: we do not say)."""


class DuplicateError(StorageError):
    """A unique constraint refused the write (a dataset name, an example's content...)."""

    def __init__(self, message: str, existing_id: int | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class MigrationError(StorageError):
    """The database's recorded migrations do not match the code's list."""

"""The user-facing error base.

:class:`UserError` marks a mistake in what someone asked for, as opposed to a bug: its
message is written for the member or admin who made it and is safe to show them as is
(no paths, no secrets, no tracebacks). The bot's one error handler shows these
ephemerally and logs everything else. It lives in the dataset core, the lowest layer,
so the core's own input errors can subclass it; :mod:`bot.errors` re-exports it.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; ``str(error)`` tells them what and how."""

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(UserError, ValueError):
    """A value the user gave is not acceptable (an epoch count, a policy, a setting)."""

"""Errors whose message is written for the member or admin who caused them.

:class:`UserError` (from the dataset core, re-exported here) is the base: the bot's one
error handler shows its message ephemerally, as is, and logs nothing alarming. Services
raise these; nothing here imports discord. :class:`StartupError` is for the operator.
"""

from __future__ import annotations

from bot.dataset.errors import InvalidInput, UserError

__all__ = ["GuildOnly", "InvalidInput", "MissingPermission", "StartupError", "UserError"]


class MissingPermission(UserError):
    """The member may not do this; ``needed`` names the permission or role that would let them."""

    def __init__(self, needed: str, action: str = "use this command") -> None:
        super().__init__(f"You need {needed} to {action}.")
        self.needed = needed


class GuildOnly(UserError):
    """The command only makes sense inside a server."""

    def __init__(self) -> None:
        super().__init__("This command only works in a server, not in direct messages.")


class StartupError(Exception):
    """The bot cannot start; the message is one sentence for whoever runs it (not a member)."""

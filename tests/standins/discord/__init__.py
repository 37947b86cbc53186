"""A Discord protocol stand-in for tests: REST v10 + gateway on 127.0.0.1.

The real, unmodified discord.py client connects to it over real HTTP and
WebSocket.  Start with :mod:`.fixtures` (``discord_server``,
``running_bot``, ``standin_client_kwargs``); build worlds with
:class:`~.driver.GuildDriver` and act as users with :class:`~.actor.Actor`.
"""

from __future__ import annotations

from . import _rewrite  # noqa: F401  (must run before fixtures/samplebot are imported)
from .actor import ActionNotPermitted, Actor, SlowmodeActive
from .commands import CommandError, CommandNotPermitted
from .driver import GuildDriver
from .errors import DiscordHTTPError
from .handles import InteractionFailed, InteractionHandle
from .messages import Upload
from .permissions import P
from .server import DiscordStandIn
from .state import Channel, Message, Role, User

__all__ = [
    "ActionNotPermitted",
    "Actor",
    "Channel",
    "CommandError",
    "CommandNotPermitted",
    "DiscordHTTPError",
    "DiscordStandIn",
    "GuildDriver",
    "InteractionFailed",
    "InteractionHandle",
    "Message",
    "P",
    "Role",
    "SlowmodeActive",
    "Upload",
    "User",
]

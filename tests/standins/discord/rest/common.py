"""Helpers shared by the REST handlers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import (
    UNKNOWN_CHANNEL,
    UNKNOWN_GUILD,
    UNKNOWN_MESSAGE,
    DiscordHTTPError,
    missing_access,
    missing_permissions,
    not_found,
)
from ..keys import JSON_BODY, PAYLOAD, STANDIN, UPLOADS
from ..permissions import P, has

if TYPE_CHECKING:
    from ..messages import Upload
    from ..server import DiscordStandIn
    from ..state import Channel, Guild, Message


def standin(request: web.Request) -> DiscordStandIn:
    return request.app[STANDIN]


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON with ``Content-Type: application/json`` *exactly* (discord.py's
    ``json_or_text`` compares the header with ``==``; aiohttp's
    ``json_response`` would append ``; charset=utf-8``)."""
    resp = web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )
    resp[PAYLOAD] = data
    return resp


def no_content() -> web.Response:
    return web.Response(status=204)


def body(request: web.Request) -> dict[str, Any]:
    data = request.get(JSON_BODY)
    return data if isinstance(data, dict) else {}


def uploads(request: web.Request) -> list[Upload]:
    return request.get(UPLOADS) or []


def snowflake(request: web.Request, key: str) -> int:
    raw = request.match_info[key]
    if not raw.isdigit():
        raise DiscordHTTPError(
            400, 50035, "Invalid Form Body",
            {key: {"_errors": [{"code": "NUMBER_TYPE_COERCE", "message": f"Value \"{raw}\" is not snowflake."}]}},
        )  # fmt: skip
    return int(raw)


def get_channel(request: web.Request, key: str = "channel_id") -> Channel:
    """The channel, if the bot can see it (404 10003 / 403 50001 otherwise)."""
    server = standin(request)
    channel = server.world.channel(snowflake(request, key))
    if channel is None:
        raise not_found(UNKNOWN_CHANNEL, "Channel")
    guild = server.world.guild_of(channel)
    if guild is not None and not has(bot_perms(server, channel), P.VIEW_CHANNEL):
        raise missing_access()
    return channel


def bot_perms(server: DiscordStandIn, channel: Channel) -> int:
    guild = server.world.guild_of(channel)
    if guild is None:
        return int(
            P.VIEW_CHANNEL
            | P.SEND_MESSAGES
            | P.READ_MESSAGE_HISTORY
            | P.ADD_REACTIONS
            | P.EMBED_LINKS
            | P.ATTACH_FILES
        )
    return guild.permissions_for(server.world.bot_user.id, channel)


def require(server: DiscordStandIn, channel: Channel, needed: int) -> None:
    """403 50013 unless the bot has ``needed`` in ``channel``."""
    if not has(bot_perms(server, channel), needed):
        raise missing_permissions()


def get_message(request: web.Request, channel: Channel) -> Message:
    msg = standin(request).world.messages.get(snowflake(request, "message_id"))
    if msg is None or msg.deleted or msg.channel_id != channel.id or msg.ephemeral:
        raise not_found(UNKNOWN_MESSAGE, "Message")
    return msg


def get_guild(request: web.Request) -> Guild:
    server = standin(request)
    guild = server.world.guilds.get(snowflake(request, "guild_id"))
    if guild is None or server.world.bot_user.id not in guild.members:
        raise not_found(UNKNOWN_GUILD, "Guild")
    return guild

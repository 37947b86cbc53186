"""Login, application and command endpoints.

discord.py's ``Client.login`` sends ``GET /users/@me`` (401 -> LoginFailure)
then ``GET /oauth2/applications/@me`` (sets ``application_id``); a bot then
usually syncs its command tree with a bulk overwrite
(``PUT /applications/{app}/commands`` or ``.../guilds/{guild}/commands``).
``AutoShardedClient`` additionally reads ``GET /gateway/bot``.
"""

from __future__ import annotations

from aiohttp import web

from ..commands import store_commands
from ..errors import UNKNOWN_USER, DiscordHTTPError, not_found
from ..keys import JSON_BODY
from .common import body, get_guild, json_response, snowflake, standin


async def me(request: web.Request) -> web.Response:
    """The bot's own user, with the private fields of ``UserPIIResponse``."""
    payload = standin(request).world.bot_user.payload()
    payload.update(mfa_enabled=False, locale="en-US", verified=True, email=None)
    return json_response(payload)


async def get_user(request: web.Request) -> web.Response:
    user = standin(request).world.users.get(snowflake(request, "user_id"))
    if user is None:
        raise not_found(UNKNOWN_USER, "User")
    return json_response(user.payload())


async def my_guilds(request: web.Request) -> web.Response:
    world = standin(request).world
    out = [
        {"id": str(g.id), "name": g.name, "icon": None, "banner": None, "owner": g.owner_id == world.bot_user.id,
         "permissions": str(g.permissions_for(world.bot_user.id)), "features": []}
        for g in world.guilds.values()
        if world.bot_user.id in g.members
    ]  # fmt: skip
    return json_response(out)


async def application(request: web.Request) -> web.Response:
    world = standin(request).world
    return json_response(world.application.payload(world.bot_user))


async def gateway(request: web.Request) -> web.Response:
    return json_response({"url": standin(request).gateway_url})


async def gateway_bot(request: web.Request) -> web.Response:
    return json_response(
        {
            "url": standin(request).gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 86400000,
                "max_concurrency": 1,
            },
        }
    )


def _check_app(request: web.Request) -> None:
    if snowflake(request, "application_id") != standin(request).world.application.id:
        raise DiscordHTTPError(403, 50001, "Missing Access")


async def put_global_commands(request: web.Request) -> web.Response:
    _check_app(request)
    data = request.get(JSON_BODY)
    if not isinstance(data, list):
        raise DiscordHTTPError(400, 50035, "Invalid Form Body",
                               {"_errors": [{"code": "LIST_TYPE_CONVERT", "message": "Only iterables may be used in a ListType"}]})  # fmt: skip
    return json_response(store_commands(standin(request).world, data, None))


async def get_global_commands(request: web.Request) -> web.Response:
    _check_app(request)
    return json_response(standin(request).world.global_commands)


async def put_guild_commands(request: web.Request) -> web.Response:
    _check_app(request)
    guild = get_guild(request)
    data = request.get(JSON_BODY)
    if not isinstance(data, list):
        raise DiscordHTTPError(400, 50035, "Invalid Form Body")
    return json_response(store_commands(standin(request).world, data, guild.id))


async def get_guild_commands(request: web.Request) -> web.Response:
    _check_app(request)
    guild = get_guild(request)
    return json_response(standin(request).world.guild_commands.get(guild.id, []))


async def create_dm(request: web.Request) -> web.Response:
    world = standin(request).world
    raw = body(request).get("recipient_id")
    user = world.users.get(int(raw)) if str(raw).isdigit() else None
    if user is None:
        raise not_found(UNKNOWN_USER, "User")
    return json_response(world.dm_channel(user).payload())


ROUTES = [
    ("GET", "/users/@me", me),
    ("GET", "/users/@me/guilds", my_guilds),
    ("POST", "/users/@me/channels", create_dm),
    ("GET", "/users/{user_id}", get_user),
    ("GET", "/oauth2/applications/@me", application),
    ("GET", "/applications/@me", application),
    ("GET", "/gateway", gateway),
    ("GET", "/gateway/bot", gateway_bot),
    ("PUT", "/applications/{application_id}/commands", put_global_commands),
    ("GET", "/applications/{application_id}/commands", get_global_commands),
    ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", put_guild_commands),
    ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", get_guild_commands),
]

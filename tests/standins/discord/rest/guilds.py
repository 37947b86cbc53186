"""Guild, member and role reads (plus role assignment).

Only guilds the bot is in are visible (404 10004 otherwise).  Role changes
need ``MANAGE_ROLES`` and a role below the bot's highest role, as on
Discord, and dispatch ``GUILD_MEMBER_UPDATE``.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import UNKNOWN_MEMBER, UNKNOWN_ROLE, missing_permissions, not_found
from ..permissions import ALL, P, has
from ..state import Guild
from .common import body, get_guild, json_response, no_content, snowflake, standin


async def guild_info(request: web.Request) -> web.Response:
    guild = get_guild(request)
    payload = guild.payload()
    if request.query.get("with_counts") in ("true", "1"):
        payload["approximate_member_count"] = len(guild.members)
        payload["approximate_presence_count"] = 0
    return json_response(payload)


async def guild_channels(request: web.Request) -> web.Response:
    guild = get_guild(request)
    return json_response([c.payload() for c in guild.channels.values() if not c.is_thread])


async def guild_roles(request: web.Request) -> web.Response:
    return json_response([r.payload() for r in get_guild(request).roles.values()])


async def guild_role(request: web.Request) -> web.Response:
    role = get_guild(request).roles.get(snowflake(request, "role_id"))
    if role is None:
        raise not_found(UNKNOWN_ROLE, "Role")
    return json_response(role.payload())


async def guild_member(request: web.Request) -> web.Response:
    member = get_guild(request).members.get(snowflake(request, "user_id"))
    if member is None:
        raise not_found(UNKNOWN_MEMBER, "Member")
    return json_response(member.payload())


async def guild_members(request: web.Request) -> web.Response:
    guild = get_guild(request)
    limit = int(request.query.get("limit", "1"))
    after = int(request.query.get("after", "0"))
    members = sorted(
        (m for m in guild.members.values() if m.user.id > after), key=lambda m: m.user.id
    )
    return json_response([m.payload() for m in members[:limit]])


async def active_threads(request: web.Request) -> web.Response:
    guild = get_guild(request)
    threads = [c for c in guild.channels.values() if c.is_thread and not c.archived]
    return json_response({"threads": [t.payload() for t in threads], "members": []})


def _top_position(guild: Guild, user_id: int) -> int:
    member = guild.members[user_id]
    if user_id == guild.owner_id:
        return 1 << 30
    return max((guild.roles[r].position for r in member.roles if r in guild.roles), default=0)


async def _change_role(request: web.Request, add: bool) -> web.Response:
    server = standin(request)
    guild = get_guild(request)
    member = guild.members.get(snowflake(request, "user_id"))
    if member is None:
        raise not_found(UNKNOWN_MEMBER, "Member")
    role = guild.roles.get(snowflake(request, "role_id"))
    if role is None:
        raise not_found(UNKNOWN_ROLE, "Role")
    bot_id = server.world.bot_user.id
    perms = guild.permissions_for(bot_id)
    if not has(perms, P.MANAGE_ROLES) or (
        perms != ALL and role.position >= _top_position(guild, bot_id)
    ):
        raise missing_permissions()
    if add and role.id not in member.roles:
        member.roles.append(role.id)
    elif not add and role.id in member.roles:
        member.roles.remove(role.id)
    server.member_updated(guild, member)
    return no_content()


async def add_role(request: web.Request) -> web.Response:
    return await _change_role(request, True)


async def remove_role(request: web.Request) -> web.Response:
    return await _change_role(request, False)


async def modify_member(request: web.Request) -> web.Response:
    server = standin(request)
    guild = get_guild(request)
    member = guild.members.get(snowflake(request, "user_id"))
    if member is None:
        raise not_found(UNKNOWN_MEMBER, "Member")
    data = body(request)
    perms = guild.permissions_for(server.world.bot_user.id)
    if "nick" in data:
        if not has(perms, P.MANAGE_NICKNAMES):
            raise missing_permissions()
        member.nick = data["nick"]
    if "roles" in data:
        if not has(perms, P.MANAGE_ROLES):
            raise missing_permissions()
        member.roles = [int(r) for r in data["roles"] if int(r) in guild.roles]
    server.member_updated(guild, member)
    return json_response(member.payload())


ROUTES = [
    ("GET", "/guilds/{guild_id}", guild_info),
    ("GET", "/guilds/{guild_id}/channels", guild_channels),
    ("GET", "/guilds/{guild_id}/roles", guild_roles),
    ("GET", "/guilds/{guild_id}/roles/{role_id}", guild_role),
    ("GET", "/guilds/{guild_id}/members", guild_members),
    ("GET", "/guilds/{guild_id}/members/{user_id}", guild_member),
    ("PATCH", "/guilds/{guild_id}/members/{user_id}", modify_member),
    ("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", add_role),
    ("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", remove_role),
    ("GET", "/guilds/{guild_id}/threads/active", active_threads),
]

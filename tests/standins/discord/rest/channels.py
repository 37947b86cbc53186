"""Channel, message, reaction, typing and thread endpoints.

Permission checks follow Discord: sending needs ``VIEW_CHANNEL`` +
``SEND_MESSAGES`` (``SEND_MESSAGES_IN_THREADS`` in threads), history needs
``READ_MESSAGE_HISTORY``, reacting needs ``ADD_REACTIONS`` for a new emoji,
editing is only allowed on the bot's own messages (50005), deleting other
people's messages needs ``MANAGE_MESSAGES``.  Threads keep the
``rate_limit_per_user`` they are created with; slowmode does not apply to
the bot (Discord: "bots ... are unaffected"), members hit it in
:meth:`.Actor.send`.  A thread started from a message is announced as
described in :mod:`..driver`.  ``GET .../messages`` returns
newest first and honours ``before``/``after``/``around``/``limit`` (1-100).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..errors import (
    CANNOT_EDIT_OTHER_USERS_MESSAGE,
    UNKNOWN_CHANNEL,
    UNKNOWN_EMOJI,
    DiscordHTTPError,
    FormErrors,
    not_found,
)
from ..messages import create_message, delete_message, edit_message, reaction_event
from ..permissions import P, has
from ..state import PRIVATE_THREAD, PUBLIC_THREAD, Channel, Message, emoji_key
from .common import (
    body,
    bot_perms,
    get_channel,
    get_message,
    json_response,
    no_content,
    require,
    snowflake,
    standin,
    uploads,
)


def _send_permission(channel: Channel) -> int:
    return int(P.SEND_MESSAGES_IN_THREADS if channel.is_thread else P.SEND_MESSAGES)


async def get_channel_info(request: web.Request) -> web.Response:
    return json_response(get_channel(request).payload())


def _check_slowmode_value(errors: FormErrors, value: Any) -> int:
    """``rate_limit_per_user``: an integer 0..21600 (Discord's 50035 otherwise)."""
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool):
        errors.add(["rate_limit_per_user"], "NUMBER_TYPE_COERCE", f'Value "{value}" is not int.')
    elif value < 0:
        errors.add(["rate_limit_per_user"], "NUMBER_TYPE_MIN", "int value should be greater than or equal to 0.")  # fmt: skip
    elif value > 21600:
        errors.add(["rate_limit_per_user"], "NUMBER_TYPE_MAX", "int value should be less than or equal to 21600.")  # fmt: skip
    else:
        return value
    return 0


async def modify_channel(request: web.Request) -> web.Response:
    """``PATCH /channels/{id}``: ``name``, ``topic``, ``rate_limit_per_user`` and, for
    threads, ``archived``/``locked``/``auto_archive_duration``.  Guild channels need
    ``MANAGE_CHANNELS``; threads ``MANAGE_THREADS`` or, for name/archive changes
    only, being the thread's owner.  Dispatches ``CHANNEL_UPDATE``/``THREAD_UPDATE``."""
    server = standin(request)
    channel = get_channel(request)
    data = body(request)
    if channel.guild_id is None:
        raise DiscordHTTPError(400, 50024, "Cannot execute action on this channel type")
    if channel.is_thread:
        owner_only = set(data) <= {"name", "archived", "auto_archive_duration"}
        if not (owner_only and channel.owner_id == server.world.bot_user.id):
            require(server, channel, P.MANAGE_THREADS)
    else:
        require(server, channel, P.MANAGE_CHANNELS)
    errors = FormErrors()
    name = data.get("name", channel.name)
    if "name" in data and not (isinstance(name, str) and 1 <= len(name) <= 100):
        errors.add(["name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    slowmode = _check_slowmode_value(
        errors, data.get("rate_limit_per_user", channel.rate_limit_per_user)
    )
    errors.raise_if_any()
    channel.name = name
    channel.rate_limit_per_user = slowmode
    if "topic" in data and not channel.is_thread:
        channel.topic = data["topic"]
    if channel.is_thread:
        channel.archived = bool(data.get("archived", channel.archived))
        channel.locked = bool(data.get("locked", channel.locked))
        channel.auto_archive_duration = int(
            data.get("auto_archive_duration") or channel.auto_archive_duration
        )
    event = "THREAD_UPDATE" if channel.is_thread else "CHANNEL_UPDATE"
    server.gateway.dispatch(event, channel.payload(), guild_id=channel.guild_id)
    return json_response(channel.payload())


async def send_message(request: web.Request) -> web.Response:
    server = standin(request)
    channel = get_channel(request)
    if channel.guild_id is not None:
        require(server, channel, _send_permission(channel))
        if uploads(request):
            require(server, channel, P.ATTACH_FILES)
    else:
        recipient = channel.recipients[0]
        if recipient.id in server.closed_dms or not any(
            recipient.id in g.members and server.world.bot_user.id in g.members
            for g in server.world.guilds.values()
        ):
            raise DiscordHTTPError(403, 50007, "Cannot send messages to this user")
    data = body(request)
    if data.get("message_reference") and channel.guild_id is not None:
        require(server, channel, P.READ_MESSAGE_HISTORY)
    msg = create_message(server, channel, server.world.bot_user, data, uploads(request))
    return json_response(msg.payload(server.world))


def _parse_limit(request: web.Request) -> int:
    raw = request.query.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        errors = FormErrors()
        errors.add(["limit"], "NUMBER_TYPE_MAX", "int value should be less than or equal to 100.")
        errors.raise_if_any()
    return int(raw)


async def history(request: web.Request) -> web.Response:
    server = standin(request)
    channel = get_channel(request)
    if channel.guild_id is not None and not has(bot_perms(server, channel), P.READ_MESSAGE_HISTORY):
        return json_response([])  # Discord returns an empty list, not an error
    limit = _parse_limit(request)
    msgs = server.world.history(channel.id)
    q = request.query
    if "after" in q:
        after = int(q["after"])
        picked = [m for m in msgs if m.id > after][:limit]
    elif "around" in q:
        around = int(q["around"])
        older = [m for m in msgs if m.id <= around][-((limit + 1) // 2) :]
        newer = [m for m in msgs if m.id > around][: limit // 2]
        picked = older + newer
    else:
        before = int(q.get("before", "0")) or None
        picked = [m for m in msgs if before is None or m.id < before][-limit:]
    picked.sort(key=lambda m: m.id, reverse=True)
    return json_response([m.payload(server.world) for m in picked])


async def fetch_message(request: web.Request) -> web.Response:
    server = standin(request)
    channel = get_channel(request)
    if channel.guild_id is not None:
        require(server, channel, P.READ_MESSAGE_HISTORY)
    return json_response(get_message(request, channel).payload(server.world))


async def patch_message(request: web.Request) -> web.Response:
    server = standin(request)
    channel = get_channel(request)
    msg = get_message(request, channel)
    if msg.author.id != server.world.bot_user.id or msg.webhook_id:
        data = body(request)
        if set(data) - {"flags"}:
            raise DiscordHTTPError(
                403,
                CANNOT_EDIT_OTHER_USERS_MESSAGE,
                "Cannot edit a message authored by another user",
            )
        require(server, channel, P.MANAGE_MESSAGES)
    msg = edit_message(server, msg, body(request), uploads(request))
    return json_response(msg.payload(server.world))


async def remove_message(request: web.Request) -> web.Response:
    server = standin(request)
    channel = get_channel(request)
    msg = get_message(request, channel)
    if msg.author.id != server.world.bot_user.id and channel.guild_id is not None:
        require(server, channel, P.MANAGE_MESSAGES)
    elif msg.author.id != server.world.bot_user.id:
        raise DiscordHTTPError(403, 50003, "Cannot execute action on a DM channel")
    delete_message(server, msg)
    return no_content()


# ----------------------------------------------------------------- reactions
def _emoji(request: web.Request) -> tuple[str, dict[str, Any]]:
    """Validate the ``{emoji}`` path part: unicode emoji or ``name:id``."""
    raw = request.match_info["emoji"]
    name, _, eid = raw.partition(":")
    if eid:
        if not eid.isdigit():
            raise DiscordHTTPError(400, UNKNOWN_EMOJI, "Unknown Emoji")
        return emoji_key(name, int(eid)), {"id": eid, "name": name, "animated": False}
    if not raw or raw.isascii():
        raise DiscordHTTPError(400, UNKNOWN_EMOJI, "Unknown Emoji")
    return raw, {"id": None, "name": raw}


async def add_reaction(request: web.Request) -> web.Response:
    server = standin(request)
    channel = get_channel(request)
    msg = get_message(request, channel)
    key, emoji = _emoji(request)
    users = msg.reactions.setdefault(key, [])
    if channel.guild_id is not None:
        require(server, channel, P.READ_MESSAGE_HISTORY)
        if len(users) == 0:
            require(server, channel, P.ADD_REACTIONS)
    me = server.world.bot_user.id
    if me not in users:
        users.append(me)
        server.world.changed()
        reaction_event(server, msg, me, emoji, add=True)
    return no_content()


async def remove_reaction(request: web.Request) -> web.Response:
    server = standin(request)
    channel = get_channel(request)
    msg = get_message(request, channel)
    key, emoji = _emoji(request)
    target = request.match_info.get("user_id", "@me")
    uid = server.world.bot_user.id if target == "@me" else snowflake(request, "user_id")
    if uid != server.world.bot_user.id:
        require(server, channel, P.MANAGE_MESSAGES)
    users = msg.reactions.get(key, [])
    if uid in users:
        users.remove(uid)
        server.world.changed()
        reaction_event(server, msg, uid, emoji, add=False)
    return no_content()


async def reaction_users(request: web.Request) -> web.Response:
    server = standin(request)
    channel = get_channel(request)
    msg = get_message(request, channel)
    key, _ = _emoji(request)
    users = [server.world.users[u].payload() for u in msg.reactions.get(key, [])]
    return json_response(users[: int(request.query.get("limit", "25"))])


async def typing(request: web.Request) -> web.Response:
    server = standin(request)
    channel = get_channel(request)
    if channel.guild_id is not None:
        require(server, channel, _send_permission(channel))
    server.typing.append((channel.id, time.time()))
    server.world.changed()
    return no_content()


# ------------------------------------------------------------------- threads
def _create_thread(request: web.Request, source: Message | None) -> web.Response:
    server = standin(request)
    channel = get_channel(request)
    data = body(request)
    ttype = PUBLIC_THREAD if source is not None else int(data.get("type") or PRIVATE_THREAD)
    if (
        ttype not in (PUBLIC_THREAD, PRIVATE_THREAD)
        or channel.is_thread
        or channel.guild_id is None
    ):
        errors = FormErrors()
        errors.add(["type"], "BASE_TYPE_CHOICES", "Value must be one of {11, 12}.")
        errors.raise_if_any()
    name = str(data.get("name") or "")
    if not 1 <= len(name) <= 100:
        errors = FormErrors()
        errors.add(["name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        errors.raise_if_any()
    errors = FormErrors()
    slowmode = _check_slowmode_value(errors, data.get("rate_limit_per_user"))
    errors.raise_if_any()
    require(
        server,
        channel,
        P.CREATE_PUBLIC_THREADS if ttype == PUBLIC_THREAD else P.CREATE_PRIVATE_THREADS,
    )
    thread = server.create_thread_state(
        channel,
        name,
        owner=server.world.bot_user,
        type=ttype,
        thread_id=source.id if source is not None else None,
        auto_archive_duration=int(data.get("auto_archive_duration") or 1440),
        rate_limit_per_user=slowmode,
    )
    payload = thread.payload()
    payload["member"] = {"id": str(thread.id), "user_id": str(server.world.bot_user.id), "join_timestamp": payload["thread_metadata"]["create_timestamp"], "flags": 0}  # fmt: skip
    return json_response(payload, status=201)


async def create_thread(request: web.Request) -> web.Response:
    return _create_thread(request, None)


async def create_thread_from_message(request: web.Request) -> web.Response:
    channel = get_channel(request)
    msg = get_message(request, channel)
    if msg.id in standin(request).world.channels:
        raise DiscordHTTPError(400, 160004, "A thread has already been created for this message")
    return _create_thread(request, msg)


async def join_thread(request: web.Request) -> web.Response:
    server = standin(request)
    channel = get_channel(request)
    if not channel.is_thread:
        raise not_found(UNKNOWN_CHANNEL, "Channel")
    channel.thread_members.add(server.world.bot_user.id)
    return no_content()


async def leave_thread(request: web.Request) -> web.Response:
    server = standin(request)
    channel = get_channel(request)
    channel.thread_members.discard(server.world.bot_user.id)
    return no_content()


ROUTES = [
    ("GET", "/channels/{channel_id}", get_channel_info),
    ("PATCH", "/channels/{channel_id}", modify_channel),
    ("GET", "/channels/{channel_id}/messages", history),
    ("POST", "/channels/{channel_id}/messages", send_message),
    ("GET", "/channels/{channel_id}/messages/{message_id}", fetch_message),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}", patch_message),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}", remove_message),
    ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", add_reaction),
    (
        "DELETE",
        "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
        remove_reaction,
    ),
    (
        "DELETE",
        "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}",
        remove_reaction,
    ),
    ("GET", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}", reaction_users),
    ("POST", "/channels/{channel_id}/typing", typing),
    ("POST", "/channels/{channel_id}/threads", create_thread),
    ("POST", "/channels/{channel_id}/messages/{message_id}/threads", create_thread_from_message),
    ("PUT", "/channels/{channel_id}/thread-members/@me", join_thread),
    ("DELETE", "/channels/{channel_id}/thread-members/@me", leave_thread),
]

"""The stand-in's world: users, guilds, channels, roles, members, messages.

Plain dataclasses plus ``payload()`` methods that render them the way
Discord's API does (the shapes are checked against the OpenAPI spec by the
test suite).  Nothing here talks to the network; REST handlers and the
gateway read and mutate a :class:`World` and call :meth:`World.changed` so
waiters (see :class:`Notifier`) wake up.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from . import permissions as perm

DISCORD_EPOCH_MS = 1420070400000
T = TypeVar("T")


class Snowflakes:
    """Monotonic snowflake ids (timestamp << 22 | counter), like Discord's."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._last = 0

    def next(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (next(self._counter) & 0x3FFFFF)
        if value <= self._last:
            value = self._last + 1
        self._last = value
        return value


def iso(ts: float | None = None) -> str:
    """ISO-8601 timestamp with offset, as Discord sends (``...+00:00``)."""
    return datetime.fromtimestamp(time.time() if ts is None else ts, UTC).isoformat()


def snowflake_iso(snowflake: int) -> str:
    return iso(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000)


class Notifier:
    """Wakes coroutines waiting for a condition on the world, without sleeps.

    Every state change calls :meth:`notify`; :meth:`wait_for` re-checks its
    predicate after each change and returns the first truthy result.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], T], timeout: float, what: str = "") -> T:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = self._event
                    result = predicate()
                    if result:
                        return result
                    await event.wait()
        except TimeoutError:
            raise TimeoutError(
                f"timed out after {timeout}s waiting for {what or predicate}"
            ) from None


@dataclass(eq=False)
class User:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "global_name": self.global_name,
            "discriminator": "0",
            "avatar": None,
            "avatar_decoration_data": None,
            "public_flags": 0,
            "flags": 0,
            "bot": self.bot,
            "primary_guild": None,
            "collectibles": None,
        }


@dataclass(eq=False)
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    color: int = 0
    hoist: bool = False
    mentionable: bool = False
    managed: bool = False

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "description": None,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": self.color,
            "colors": {
                "primary_color": self.color,
                "secondary_color": None,
                "tertiary_color": None,
            },
            "hoist": self.hoist,
            "managed": self.managed,
            "mentionable": self.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass
class Overwrite:
    """A channel permission overwrite; ``type`` 0 = role, 1 = member."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "allow": str(self.allow),
            "deny": str(self.deny),
        }


TEXT, DM, VOICE, CATEGORY, NEWS = 0, 1, 2, 4, 5
PUBLIC_THREAD, PRIVATE_THREAD = 11, 12


@dataclass(eq=False)
class Channel:
    id: int
    type: int
    name: str | None = None
    guild_id: int | None = None
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    overwrites: list[Overwrite] = field(default_factory=list)
    recipients: list[User] = field(default_factory=list)
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    last_message_id: int | None = None
    message_count: int = 0
    thread_members: set[int] = field(default_factory=set)
    created_ts: float = field(default_factory=time.time)
    #: slowmode in seconds (0-21600); see :mod:`.actor` for who it applies to
    rate_limit_per_user: int = 0
    #: user id -> ``time.monotonic()`` of their last message / thread here
    slowmode_sent: dict[int, float] = field(default_factory=dict)
    slowmode_threads: dict[int, float] = field(default_factory=dict)

    @property
    def is_thread(self) -> bool:
        return self.type in (PUBLIC_THREAD, PRIVATE_THREAD, 10)

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def payload(self) -> dict[str, Any]:
        if self.type == DM:
            return {
                "id": str(self.id),
                "type": DM,
                "flags": 0,
                "last_message_id": str(self.last_message_id) if self.last_message_id else None,
                "recipients": [u.payload() for u in self.recipients],
            }
        base: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "flags": 0,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "last_message_id": str(self.last_message_id) if self.last_message_id else None,
            "rate_limit_per_user": self.rate_limit_per_user,
        }
        if self.is_thread:
            base.update(
                owner_id=str(self.owner_id),
                message_count=self.message_count,
                total_message_sent=self.message_count,
                member_count=min(len(self.thread_members), 50),
                thread_metadata={
                    "archived": self.archived,
                    "archive_timestamp": iso(self.created_ts),
                    "auto_archive_duration": self.auto_archive_duration,
                    "locked": self.locked,
                    "create_timestamp": iso(self.created_ts),
                    **({"invitable": True} if self.type == PRIVATE_THREAD else {}),
                },
            )
            return base
        base.update(
            position=self.position,
            permission_overwrites=[o.payload() for o in self.overwrites],
            nsfw=False,
        )
        if self.type in (TEXT, NEWS):
            base["topic"] = self.topic
        if self.type == VOICE:
            base.update(bitrate=64000, user_limit=0, rtc_region=None)
        return base


@dataclass(eq=False)
class Member:
    user: User
    guild_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_ts: float = field(default_factory=time.time)

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "avatar": None,
            "banner": None,
            "communication_disabled_until": None,
            "flags": 0,
            "joined_at": iso(self.joined_ts),
            "nick": self.nick,
            "pending": False,
            "premium_since": None,
            "roles": [str(r) for r in self.roles],
            "mute": False,
            "deaf": False,
        }
        if with_user:
            out["user"] = self.user.payload()
        if permissions is not None:
            out["permissions"] = str(permissions)
        return out


@dataclass(eq=False)
class Guild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)

    @property
    def everyone_role(self) -> Role:
        return self.roles[self.id]

    def permissions_for(self, user_id: int, channel: Channel | None = None) -> int:
        """Effective permissions of a member (0 if not a member)."""
        member = self.members.get(user_id)
        if member is None:
            return 0
        return perm.channel_permissions(self, channel, member)

    def payload(self) -> dict[str, Any]:
        """``GET /guilds/{id}`` shape (``GuildResponse``)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "description": None,
            "home_header": None,
            "splash": None,
            "discovery_splash": None,
            "features": [],
            "banner": None,
            "owner_id": str(self.owner_id),
            "application_id": None,
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "widget_enabled": False,
            "widget_channel_id": None,
            "verification_level": 0,
            "roles": [r.payload() for r in self.roles.values()],
            "default_message_notifications": 0,
            "mfa_level": 0,
            "explicit_content_filter": 0,
            "max_presences": None,
            "max_members": 500000,
            "max_stage_video_channel_users": 50,
            "max_video_channel_users": 25,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "rules_channel_id": None,
            "safety_alerts_channel_id": None,
            "public_updates_channel_id": None,
            "premium_progress_bar_enabled": False,
            "nsfw": False,
            "nsfw_level": 0,
            "emojis": [],
            "stickers": [],
            "incidents_data": None,
        }

    def gateway_payload(self, joined_ts: float, *, lazy_load: bool = True) -> dict[str, Any]:
        """``GUILD_CREATE`` shape: the guild plus channels, threads and members.

        After READY, Discord lazy-loads the guilds listed as unavailable with
        ``unavailable: false``; when the bot *joins* a guild the key is absent
        (discord.py dispatches ``guild_available`` vs ``guild_join`` on that).
        """
        out = self.payload()
        channels = [c for c in self.channels.values() if not c.is_thread]
        threads = [c for c in self.channels.values() if c.is_thread and not c.archived]
        if lazy_load:
            out["unavailable"] = False
        out.update(
            large=len(self.members) > 250,
            member_count=len(self.members),
            joined_at=iso(joined_ts),
            channels=[c.payload() for c in channels],
            threads=[c.payload() for c in threads],
            members=[m.payload() for m in self.members.values()],
            voice_states=[],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
        return out


@dataclass
class Attachment:
    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    description: str | None = None
    ephemeral: bool = False

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type:
            out["content_type"] = self.content_type
        if self.description:
            out["description"] = self.description
        if self.ephemeral:
            out["ephemeral"] = True
        return out


@dataclass
class Pings:
    """Who a message actually notifies, after ``allowed_mentions``."""

    users: set[int] = field(default_factory=set)
    roles: set[int] = field(default_factory=set)
    everyone: bool = False

    def __bool__(self) -> bool:
        return bool(self.users or self.roles or self.everyone)


SUPPRESS_EMBEDS = 1 << 2
HAS_THREAD = 1 << 5
EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_COMPONENTS_V2 = 1 << 15

#: Message types the stand-in creates.
DEFAULT_MESSAGE, REPLY, CHAT_INPUT_COMMAND, THREAD_STARTER_MESSAGE = 0, 19, 20, 21


@dataclass(eq=False)
class Message:
    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str = ""
    type: int = 0
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    flags: int = 0
    tts: bool = False
    pinned: bool = False
    nonce: str | int | None = None
    reference_id: int | None = None
    edited_ts: float | None = None
    reactions: dict[str, list[int]] = field(default_factory=dict)
    pings: Pings = field(default_factory=Pings)
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    deleted: bool = False
    allowed_mentions: dict[str, Any] | None = None
    #: channel of the referenced message when it is not this one (a
    #: THREAD_STARTER_MESSAGE points at the thread's parent channel)
    reference_channel_id: int | None = None

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    @property
    def jump_url(self) -> str:
        return f"https://discord.com/channels/{self.guild_id or '@me'}/{self.channel_id}/{self.id}"

    @property
    def components_v2(self) -> bool:
        """Sent with the ``IS_COMPONENTS_V2`` flag (layout components)."""
        return bool(self.flags & IS_COMPONENTS_V2)

    def interactive_components(self) -> list[dict[str, Any]]:
        """Buttons and selects, depth first, also inside components-v2 layouts
        (containers, sections' ``accessory``, labels)."""
        out: list[dict[str, Any]] = []

        def walk(comp: dict[str, Any]) -> None:
            if comp.get("type") in (2, 3, 5, 6, 7, 8):
                out.append(comp)
            for child in comp.get("components") or []:
                if isinstance(child, dict):
                    walk(child)
            for key in ("accessory", "component"):
                if isinstance(comp.get(key), dict):
                    walk(comp[key])

        for row in self.components:
            walk(row)
        return out

    def component(self, label_or_custom_id: str) -> dict[str, Any] | None:
        """Find a button/select in this message by label or ``custom_id``."""
        for comp in self.interactive_components():
            if label_or_custom_id in (
                comp.get("label"),
                comp.get("custom_id"),
                comp.get("placeholder"),
            ):
                return comp
        return None

    def reaction_payload(self, me_id: int) -> list[dict[str, Any]]:
        out = []
        for key, users in self.reactions.items():
            if not users:
                continue
            emoji = emoji_from_key(key)
            out.append(
                {
                    "emoji": emoji,
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "burst_colors": [],
                    "me_burst": False,
                    "burst_me": False,
                    "burst_count": 0,
                    "me": me_id in users,
                }
            )
        return out

    def payload(self, world: World, *, depth: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "content": self.content,
            "mentions": [
                world.users[u].payload() for u in sorted(self.pings.users) if u in world.users
            ],
            "mention_roles": [str(r) for r in sorted(self.pings.roles)],
            "attachments": [a.payload() for a in self.attachments],
            "embeds": self.embeds,
            "timestamp": snowflake_iso(self.id),
            "edited_timestamp": iso(self.edited_ts) if self.edited_ts else None,
            "flags": self.flags,
            "components": self.components,
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "pinned": self.pinned,
            "mention_everyone": self.pings.everyone,
            "tts": self.tts,
        }
        if self.reactions:
            out["reactions"] = self.reaction_payload(world.bot_user.id)
        if self.nonce is not None:
            out["nonce"] = self.nonce
        if self.webhook_id:
            out["webhook_id"] = str(self.webhook_id)
        if self.application_id:
            out["application_id"] = str(self.application_id)
        if self.interaction_metadata:
            out["interaction_metadata"] = self.interaction_metadata
        thread = world.channels.get(self.id)
        if thread is not None and thread.is_thread and not self.deleted:
            out["thread"] = thread.payload()  # the thread started from this message
        if self.reference_id is not None:
            ref = world.messages.get(self.reference_id)
            out["message_reference"] = {
                "type": 0,
                "channel_id": str(self.reference_channel_id or self.channel_id),
                "message_id": str(self.reference_id),
                **({"guild_id": str(self.guild_id)} if self.guild_id else {}),
            }
            if depth == 0:
                out["referenced_message"] = (
                    ref.payload(world, depth=1) if ref is not None and not ref.deleted else None
                )
        return out


def emoji_key(name: str | None, emoji_id: int | None = None) -> str:
    """Reaction key in Discord's URL form: ``👍`` or ``name:id``."""
    return f"{name}:{emoji_id}" if emoji_id else str(name)


def emoji_from_key(key: str) -> dict[str, Any]:
    if ":" in key:
        name, _, eid = key.rpartition(":")
        return {"id": eid, "name": name.removeprefix("a:"), "animated": name.startswith("a:")}
    return {"id": None, "name": key}


@dataclass
class Application:
    """The bot's application (``/oauth2/applications/@me``)."""

    id: int
    name: str
    owner: User
    flags: int = 0
    privileged_intents: int = (1 << 1) | (1 << 8) | (1 << 15)

    def payload(self, bot: User) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "description": "",
            "type": None,
            "bot": bot.payload(),
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": self.flags,
            "flags_new": str(self.flags),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "owner": self.owner.payload(),
            "approximate_guild_count": 0,
            "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0,
            "team": None,
            "eligible_oauth2_scopes": [],
            "rpc_origins": [],
            "summary": "",
            "tags": [],
        }


class World:
    """All server-side state of one stand-in instance."""

    def __init__(self, *, bot_name: str = "tunecord-test") -> None:
        self.ids = Snowflakes()
        self.notifier = Notifier()
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.channel_messages: dict[int, list[int]] = {}
        self.nonces: dict[tuple[int, str], tuple[int, float]] = {}
        """(author id, nonce) -> (message id, monotonic time) of messages sent with
        ``enforce_nonce`` (see :func:`.messages.create_message`)."""
        self.dm_channels: dict[int, int] = {}
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.guild_joined: dict[int, float] = {}
        self.bot_user = self.add_user(bot_name, bot=True)
        owner = self.add_user("app-owner")
        self.application = Application(id=self.bot_user.id, name=bot_name, owner=owner)

    def changed(self) -> None:
        self.notifier.notify()

    def add_user(self, username: str, *, bot: bool = False) -> User:
        user = User(self.ids.next(), username, bot=bot, global_name=None if bot else username)
        self.users[user.id] = user
        return user

    def channel(self, channel_id: int) -> Channel | None:
        return self.channels.get(channel_id)

    def guild_of(self, channel: Channel) -> Guild | None:
        return self.guilds.get(channel.guild_id) if channel.guild_id else None

    def history(self, channel_id: int) -> list[Message]:
        """Non-deleted, non-ephemeral messages of a channel, oldest first."""
        out = []
        for mid in self.channel_messages.get(channel_id, []):
            msg = self.messages[mid]
            if not msg.deleted and not msg.ephemeral:
                out.append(msg)
        return out

    def store_message(self, msg: Message) -> Message:
        self.messages[msg.id] = msg
        if not msg.ephemeral:
            self.channel_messages.setdefault(msg.channel_id, []).append(msg.id)
            channel = self.channels.get(msg.channel_id)
            if channel is not None:
                channel.last_message_id = msg.id
                # message_count excludes a thread's starter message (Discord docs)
                if channel.is_thread and msg.type != THREAD_STARTER_MESSAGE:
                    channel.message_count += 1
        self.changed()
        return msg

    def dm_channel(self, user: User) -> Channel:
        """The DM channel between the bot and ``user`` (created on demand)."""
        cid = self.dm_channels.get(user.id)
        if cid is not None:
            return self.channels[cid]
        channel = Channel(self.ids.next(), DM, recipients=[user])
        self.channels[channel.id] = channel
        self.dm_channels[user.id] = channel.id
        return channel

    def commands_for(self, guild_id: int | None) -> list[dict[str, Any]]:
        """Commands visible in a guild: its guild commands, then global ones."""
        out = list(self.guild_commands.get(guild_id, [])) if guild_id else []
        return out + list(self.global_commands)

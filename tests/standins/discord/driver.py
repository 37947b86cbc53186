"""The test-facing API for building a Discord world and acting in it.

:class:`WorldBuilder` is mixed into the server, so a test writes::

    guild = server.create_guild("Tunecord HQ")
    mods = guild.create_role("mods", permissions=P.MANAGE_MESSAGES)
    alice = guild.add_member("alice", roles=[mods])
    msg = await alice.send(guild.channel("general"), "hello")
    reply = await server.wait_for_message(guild.channel("general"), after=msg)

Every change made while the bot is connected is dispatched over the
gateway like Discord would (``GUILD_CREATE`` when the bot is added to a
guild, ``CHANNEL_CREATE``, ``GUILD_ROLE_CREATE``/``UPDATE``,
``GUILD_MEMBER_ADD``/``UPDATE``, ``THREAD_CREATE``, ...).  Because the
gateway delivers frames in order, the bot has processed a change before it
sees any later message -- no sleeps needed.

Threads started from a message follow Discord: the thread has the message's
id, the message gets the ``HAS_THREAD`` flag and a ``thread`` field (and a
``MESSAGE_UPDATE``), and the thread opens with a ``THREAD_STARTER_MESSAGE``
(type 21) whose ``message_reference`` points at the message in the parent
channel.  Slowmode (``rate_limit_per_user``, on channels and threads) is
enforced for members by :meth:`.Actor.send` (see :class:`.SlowmodeActive`);
:meth:`WorldBuilder.expire_slowmode` ends the waits without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .actor import Actor, check_slowmode
from .messages import event_payload
from .permissions import DEFAULT_EVERYONE, P
from .state import (
    CATEGORY,
    HAS_THREAD,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    TEXT,
    THREAD_STARTER_MESSAGE,
    Channel,
    Guild,
    Member,
    Message,
    Overwrite,
    Role,
    User,
)

if TYPE_CHECKING:
    from .server import DiscordStandIn

#: What the bot's managed role gets by default (a typical invite).
DEFAULT_BOT_PERMISSIONS = int(
    DEFAULT_EVERYONE
    | P.MANAGE_MESSAGES
    | P.MANAGE_THREADS
    | P.MANAGE_ROLES
    | P.SEND_MESSAGES_IN_THREADS
    | P.EMBED_LINKS
    | P.ATTACH_FILES
)


class GuildDriver:
    """Build and change one guild (see module docstring)."""

    def __init__(self, server: DiscordStandIn, guild: Guild) -> None:
        self.server = server
        self.guild = guild

    def __repr__(self) -> str:
        return f"<GuildDriver {self.guild.name} ({self.id})>"

    @property
    def id(self) -> int:
        return self.guild.id

    @property
    def everyone(self) -> Role:
        return self.guild.everyone_role

    @property
    def bot_role(self) -> Role:
        return next(r for r in self.guild.roles.values() if r.managed)

    @property
    def owner(self) -> Actor:
        return Actor(self.server, self.server.world.users[self.guild.owner_id], self.guild)

    @property
    def bot(self) -> Actor:
        return Actor(self.server, self.server.world.bot_user, self.guild)

    def channel(self, name: str) -> Channel:
        for ch in self.guild.channels.values():
            if ch.name == name:
                return ch
        raise LookupError(f"no channel #{name} in {self.guild.name}")

    def role(self, name: str) -> Role:
        for role in self.guild.roles.values():
            if role.name == name:
                return role
        raise LookupError(f"no role {name!r} in {self.guild.name}")

    def member(self, who: str | User) -> Actor:
        for m in self.guild.members.values():
            if m.user is who or m.user.username == who:
                return Actor(self.server, m.user, self.guild)
        raise LookupError(f"no member {who!r} in {self.guild.name}")

    # -------------------------------------------------------------- channels
    def create_channel(
        self,
        name: str,
        *,
        type: int = TEXT,
        category: Channel | None = None,
        topic: str | None = None,
        overwrites: Iterable[Overwrite] = (),
        rate_limit_per_user: int = 0,
    ) -> Channel:
        """A new channel; ``rate_limit_per_user`` is its slowmode in seconds."""
        world = self.server.world
        position = sum(1 for c in self.guild.channels.values() if not c.is_thread)
        ch = Channel(
            world.ids.next(), type, name, guild_id=self.id, position=position,
            parent_id=category.id if category else None, topic=topic, overwrites=list(overwrites),
            rate_limit_per_user=rate_limit_per_user,
        )  # fmt: skip
        self.guild.channels[ch.id] = ch
        world.channels[ch.id] = ch
        self.server.gateway.dispatch("CHANNEL_CREATE", ch.payload(), guild_id=self.id)
        return ch

    def create_category(self, name: str) -> Channel:
        return self.create_channel(name, type=CATEGORY)

    def set_overwrite(
        self, channel: Channel, target: Role | Actor | User, *, allow: int = 0, deny: int = 0
    ) -> None:
        """Set a permission overwrite for a role or member on ``channel``."""
        if isinstance(target, Role):
            oid, otype = target.id, 0
        else:
            oid, otype = (target.user if isinstance(target, Actor) else target).id, 1
        channel.overwrites = [o for o in channel.overwrites if o.id != oid]
        channel.overwrites.append(Overwrite(oid, otype, int(allow), int(deny)))
        self.server.gateway.dispatch("CHANNEL_UPDATE", channel.payload(), guild_id=self.id)

    def create_thread(
        self,
        channel: Channel,
        name: str,
        *,
        owner: Actor | None = None,
        message: Message | None = None,
        private: bool = False,
        rate_limit_per_user: int = 0,
    ) -> Channel:
        """A member opens a thread (from ``message`` if given).

        The parent's slowmode also limits thread creation (one thread per
        interval): ``owner`` may get :class:`.SlowmodeActive`.
        """
        user = owner.user if owner else self.server.world.users[self.guild.owner_id]
        check_slowmode(self.server, channel, user, channel.slowmode_threads, "create threads")
        thread = self.server.create_thread_state(
            channel, name, owner=user, type=PRIVATE_THREAD if private else PUBLIC_THREAD,
            thread_id=message.id if message else None, rate_limit_per_user=rate_limit_per_user,
        )  # fmt: skip
        if channel.rate_limit_per_user:
            channel.slowmode_threads[user.id] = time.monotonic()
        return thread

    def set_slowmode(self, channel: Channel, seconds: int) -> None:
        """Change ``rate_limit_per_user`` (``CHANNEL_UPDATE``/``THREAD_UPDATE``)."""
        channel.rate_limit_per_user = int(seconds)
        event = "THREAD_UPDATE" if channel.is_thread else "CHANNEL_UPDATE"
        self.server.gateway.dispatch(event, channel.payload(), guild_id=self.id)

    # ----------------------------------------------------------------- roles
    def create_role(
        self,
        name: str,
        *,
        permissions: int = 0,
        mentionable: bool = False,
        color: int = 0,
        position: int | None = None,
    ) -> Role:
        world = self.server.world
        if position is None:
            position = (
                max((r.position for r in self.guild.roles.values() if not r.managed), default=0) + 1
            )
            for r in self.guild.roles.values():
                if r.managed and r.position <= position:
                    r.position = position + 1
        role = Role(
            world.ids.next(),
            self.id,
            name,
            int(permissions),
            position,
            color,
            mentionable=mentionable,
        )
        self.guild.roles[role.id] = role
        self.server.gateway.dispatch(
            "GUILD_ROLE_CREATE",
            {"guild_id": str(self.id), "role": role.payload()},
            guild_id=self.id,
        )
        return role

    def set_role_permissions(self, role: Role, permissions: int) -> None:
        role.permissions = int(permissions)
        self.server.gateway.dispatch(
            "GUILD_ROLE_UPDATE",
            {"guild_id": str(self.id), "role": role.payload()},
            guild_id=self.id,
        )

    def set_bot_permissions(self, permissions: int) -> None:
        """Change what the bot's managed role grants."""
        self.set_role_permissions(self.bot_role, permissions)

    # --------------------------------------------------------------- members
    def add_member(
        self, who: str | User, *, roles: Iterable[Role] = (), nick: str | None = None
    ) -> Actor:
        """Add a (new or existing) user to the guild; returns an :class:`Actor`."""
        world = self.server.world
        user = who if isinstance(who, User) else world.add_user(who)
        member = Member(user, self.id, [r.id for r in roles], nick)
        self.guild.members[user.id] = member
        data = member.payload()
        data["guild_id"] = str(self.id)
        self.server.gateway.dispatch("GUILD_MEMBER_ADD", data, guild_id=self.id)
        return Actor(self.server, user, self.guild)


class WorldBuilder:
    """World-building and waiting helpers, mixed into the server."""

    world: Any
    gateway: Any

    @property
    def bot_user(self) -> User:
        return self.world.bot_user

    @property
    def commands(self) -> list[dict[str, Any]]:
        """Global commands the bot registered (bulk overwrite payloads)."""
        return self.world.global_commands

    def guild_commands(self, guild: GuildDriver | Guild) -> list[dict[str, Any]]:
        return self.world.guild_commands.get(guild.id, [])

    def command(self, name: str, guild: GuildDriver | None = None) -> dict[str, Any]:
        """A registered command by name (guild commands first)."""
        for cmd in self.world.commands_for(guild.id if guild else None):
            if cmd["name"] == name:
                return cmd
        raise LookupError(f"the bot registered no command {name!r}")

    def create_user(self, name: str) -> User:
        return self.world.add_user(name)

    def dm_actor(self, who: str | User) -> Actor:
        """An :class:`Actor` outside any guild (talks to the bot in DMs)."""
        user = who if isinstance(who, User) else self.world.add_user(who)
        return Actor(self, user, None)  # type: ignore[arg-type]

    def create_guild(
        self,
        name: str = "Test Guild",
        *,
        owner: str | User = "guild-owner",
        everyone_permissions: int = DEFAULT_EVERYONE,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        channels: Iterable[str] = ("general",),
        add_bot: bool = True,
    ) -> GuildDriver:
        """Create a guild with an owner, @everyone, the bot (with a managed
        role) and text channels.  If the bot is connected it receives
        ``GUILD_CREATE`` as when it is invited."""
        world = self.world
        owner_user = owner if isinstance(owner, User) else world.add_user(owner)
        guild = Guild(world.ids.next(), name, owner_user.id)
        guild.roles[guild.id] = Role(guild.id, guild.id, "@everyone", int(everyone_permissions), 0)
        guild.members[owner_user.id] = Member(owner_user, guild.id)
        world.guilds[guild.id] = guild
        for channel_name in channels:
            ch = Channel(
                world.ids.next(),
                TEXT,
                channel_name,
                guild_id=guild.id,
                position=len(guild.channels),
            )
            guild.channels[ch.id] = ch
            world.channels[ch.id] = ch
        driver = GuildDriver(self, guild)  # type: ignore[arg-type]
        if add_bot:
            self.add_bot_to(driver, bot_permissions)
        return driver

    def add_bot_to(self, guild: GuildDriver, permissions: int = DEFAULT_BOT_PERMISSIONS) -> None:
        world = self.world
        g = guild.guild
        role = Role(
            world.ids.next(), g.id, world.bot_user.username, int(permissions), 1, managed=True
        )
        g.roles[role.id] = role
        g.members[world.bot_user.id] = Member(world.bot_user, g.id, [role.id])
        world.guild_joined[g.id] = time.time()
        self.gateway.dispatch(
            "GUILD_CREATE", g.gateway_payload(world.guild_joined[g.id], lazy_load=False), guild_id=g.id
        )

    def create_thread_state(
        self,
        parent: Channel,
        name: str,
        *,
        owner: User,
        type: int = PUBLIC_THREAD,
        thread_id: int | None = None,
        auto_archive_duration: int = 1440,
        rate_limit_per_user: int = 0,
    ) -> Channel:
        """Create a thread under ``parent`` and dispatch ``THREAD_CREATE``.

        With ``thread_id`` (the id of a message in ``parent``) the thread is
        started from that message: the message gets ``HAS_THREAD`` and a
        ``thread`` field (dispatched as ``MESSAGE_UPDATE``), and the thread's
        first message is a ``THREAD_STARTER_MESSAGE`` (type 21) referencing it.
        """
        world = self.world
        thread = Channel(
            thread_id or world.ids.next(), type, name, guild_id=parent.guild_id, parent_id=parent.id,
            owner_id=owner.id, auto_archive_duration=auto_archive_duration, thread_members={owner.id},
            rate_limit_per_user=rate_limit_per_user,
        )  # fmt: skip
        world.guilds[parent.guild_id].channels[thread.id] = thread
        world.channels[thread.id] = thread
        payload = thread.payload()
        payload["newly_created"] = True
        self.gateway.dispatch("THREAD_CREATE", payload, guild_id=parent.guild_id)
        starter = world.messages.get(thread_id) if thread_id else None
        if starter is not None:
            starter.flags |= HAS_THREAD
            world.store_message(
                Message(
                    id=world.ids.next(), channel_id=thread.id, guild_id=parent.guild_id,
                    author=starter.author, type=THREAD_STARTER_MESSAGE, reference_id=starter.id,
                    reference_channel_id=parent.id,
                )
            )  # fmt: skip
            self.gateway.dispatch_message(
                "MESSAGE_UPDATE", event_payload(self, starter), parent.guild_id  # type: ignore[arg-type]
            )
        return thread

    def expire_slowmode(self, channel: Channel | None = None) -> None:
        """End every running slowmode wait (in ``channel``, or everywhere)."""
        for ch in [channel] if channel is not None else list(self.world.channels.values()):
            ch.slowmode_sent.clear()
            ch.slowmode_threads.clear()
        self.world.changed()

    # ---------------------------------------------------------------- waiting
    def messages_in(self, channel: Channel) -> list[Message]:
        """Visible messages of ``channel``, oldest first."""
        return self.world.history(channel.id)

    async def wait_for_message(
        self,
        channel: Channel,
        *,
        after: Message | None = None,
        author: User | Actor | None = None,
        check: Callable[[Message], bool] | None = None,
        timeout: float = 5.0,
    ) -> Message:
        """The first message in ``channel`` newer than ``after`` (default: by
        the bot) matching ``check``; waits without sleeping."""
        who = self.world.bot_user if author is None else getattr(author, "user", author)

        def find() -> Message | None:
            for msg in self.world.history(channel.id):
                if after is not None and msg.id <= after.id:
                    continue
                if msg.author.id == who.id and (check is None or check(msg)):
                    return msg
            return None

        return await self.world.notifier.wait_for(
            find, timeout, f"a message by {who.username} in {channel.name}"
        )

"""Discord permission arithmetic.

Implements the algorithm from Discord's "Permissions" documentation:

1. Base permissions: the guild owner has everything; otherwise OR the
   ``@everyone`` role with every role of the member.  ``ADMINISTRATOR``
   grants everything.
2. Channel overwrites, in this order: the ``@everyone`` overwrite, then all
   role overwrites of the member combined (deny first, then allow), then the
   member-specific overwrite.  Threads use their parent channel's overwrites.
3. Implicit rules: without ``VIEW_CHANNEL`` a member has no permissions in
   the channel; without ``SEND_MESSAGES`` the message-dependent ones
   (mention everyone, attach, embed links, TTS) are dropped too.
"""

from __future__ import annotations

from enum import IntFlag
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import Channel, Guild, Member


class P(IntFlag):
    """Permission bits (same values as ``discord.Permissions``)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    PRIORITY_SPEAKER = 1 << 8
    STREAM = 1 << 9
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    VIEW_GUILD_INSIGHTS = 1 << 19
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    MUTE_MEMBERS = 1 << 22
    DEAFEN_MEMBERS = 1 << 23
    MOVE_MEMBERS = 1 << 24
    USE_VAD = 1 << 25
    CHANGE_NICKNAME = 1 << 26
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    MANAGE_GUILD_EXPRESSIONS = 1 << 30
    USE_APPLICATION_COMMANDS = 1 << 31
    REQUEST_TO_SPEAK = 1 << 32
    MANAGE_EVENTS = 1 << 33
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    USE_EXTERNAL_STICKERS = 1 << 37
    SEND_MESSAGES_IN_THREADS = 1 << 38
    USE_EMBEDDED_ACTIVITIES = 1 << 39
    MODERATE_MEMBERS = 1 << 40
    BYPASS_SLOWMODE = 1 << 52


#: Permissions that exempt a member from a channel's slowmode (Discord's
#: channel docs: ``manage_messages`` or ``manage_channel``; threads also
#: ``manage_threads``; plus ``BYPASS_SLOWMODE``).  Bots are never affected.
SLOWMODE_EXEMPT = int(P.MANAGE_MESSAGES | P.MANAGE_CHANNELS | P.BYPASS_SLOWMODE)
SLOWMODE_EXEMPT_IN_THREADS = SLOWMODE_EXEMPT | int(P.MANAGE_THREADS)


ALL = 0
for _flag in P:
    ALL |= int(_flag)

# What a fresh guild's @everyone role gets (Discord's default, 0x640 | ...).
DEFAULT_EVERYONE = int(
    P.CREATE_INSTANT_INVITE
    | P.ADD_REACTIONS
    | P.STREAM
    | P.VIEW_CHANNEL
    | P.SEND_MESSAGES
    | P.EMBED_LINKS
    | P.ATTACH_FILES
    | P.READ_MESSAGE_HISTORY
    | P.MENTION_EVERYONE
    | P.USE_EXTERNAL_EMOJIS
    | P.CONNECT
    | P.SPEAK
    | P.USE_VAD
    | P.CHANGE_NICKNAME
    | P.USE_APPLICATION_COMMANDS
    | P.CREATE_PUBLIC_THREADS
    | P.CREATE_PRIVATE_THREADS
    | P.SEND_MESSAGES_IN_THREADS
    | P.USE_EXTERNAL_STICKERS
)

_NEEDS_SEND = int(P.MENTION_EVERYONE | P.ATTACH_FILES | P.EMBED_LINKS | P.SEND_TTS_MESSAGES)


def base_permissions(guild: Guild, member: Member) -> int:
    """Guild-level permissions of ``member`` (step 1 above)."""
    if member.user.id == guild.owner_id:
        return ALL
    perms = guild.everyone_role.permissions
    for role_id in member.roles:
        role = guild.roles.get(role_id)
        if role is not None:
            perms |= role.permissions
    if perms & P.ADMINISTRATOR:
        return ALL
    return perms


def channel_permissions(guild: Guild, channel: Channel | None, member: Member) -> int:
    """Permissions of ``member`` in ``channel`` (steps 1-3 above)."""
    perms = base_permissions(guild, member)
    if perms & P.ADMINISTRATOR or channel is None:
        return perms
    source = guild.channels.get(channel.parent_id) if channel.is_thread else channel
    overwrites = {ow.id: ow for ow in (source.overwrites if source else [])}
    everyone = overwrites.get(guild.id)
    if everyone is not None:
        perms = (perms & ~everyone.deny) | everyone.allow
    allow = deny = 0
    for role_id in member.roles:
        ow = overwrites.get(role_id)
        if ow is not None and ow.type == 0:
            allow |= ow.allow
            deny |= ow.deny
    perms = (perms & ~deny) | allow
    own = overwrites.get(member.user.id)
    if own is not None and own.type == 1:
        perms = (perms & ~own.deny) | own.allow
    if not perms & P.VIEW_CHANNEL:
        return 0
    send_bit = P.SEND_MESSAGES_IN_THREADS if channel.is_thread else P.SEND_MESSAGES
    if not perms & send_bit:
        perms &= ~_NEEDS_SEND
    return perms


def has(perms: int, needed: int) -> bool:
    """True if every bit of ``needed`` is in ``perms`` (administrators pass)."""
    return bool(perms & P.ADMINISTRATOR) or (perms & needed) == needed


def names(bits: int) -> list[str]:
    """Human-readable names of the permission bits set in ``bits``."""
    return [f.name for f in P if bits & f and f.name]

"""The Discord permissions the bot asks for, and how they are named to people."""

from __future__ import annotations

import discord

CHANNEL_POST_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
)
"""What the bot needs in a channel it posts to (review posts carry embeds and JSONL files)."""

INVITE_PERMISSIONS = CHANNEL_POST_PERMISSIONS | discord.Permissions(
    send_messages_in_threads=True,
    read_message_history=True,
)
"""Everything the bot needs server-wide; the invite URL asks for exactly these."""

INVITE_SCOPES = ("bot", "applications.commands")

_DISPLAY_NAMES = {  # where Discord's screens differ from discord.py's flag names
    "read_messages": "View Channel",
    "manage_guild": "Manage Server",
    "send_messages_in_threads": "Send Messages in Threads",
    "use_application_commands": "Use Application Commands",
}


def permission_name(flag: str) -> str:
    """How Discord's settings screens name a permission flag (``embed_links`` -> Embed Links)."""
    return _DISPLAY_NAMES.get(flag) or flag.replace("_", " ").title()


def permission_names(permissions: discord.Permissions) -> list[str]:
    """The display names of the permissions set in ``permissions``, in Discord's bit order."""
    return [permission_name(flag) for flag, granted in permissions if granted]


def missing_permissions(
    channel: discord.abc.GuildChannel | discord.Thread,
    member: discord.Member,
    needed: discord.Permissions = CHANNEL_POST_PERMISSIONS,
) -> list[str]:
    """Display names of the ``needed`` permissions ``member`` lacks in ``channel``."""
    have = channel.permissions_for(member)
    return permission_names(discord.Permissions(needed.value & ~have.value))


def invite_url(application_id: int) -> str:
    """The OAuth2 URL that adds the bot to a server with exactly :data:`INVITE_PERMISSIONS`."""
    return discord.utils.oauth_url(
        application_id, permissions=INVITE_PERMISSIONS, scopes=INVITE_SCOPES
    )

"""Run-time permission checks every cog can use.

``default_member_permissions`` only hides a command in the Discord client, and a server
admin can change it; these checks run in the bot on every invocation. A failed check
raises an error that is both a :class:`~bot.errors.UserError` (its message names the
permission or role needed) and a discord.py ``CheckFailure`` (so the command tree routes
it to the one error handler).

* **admin**: Manage Server (Administrator and the owner include it).
* **curator**: Manage Messages in the channel, or the guild's curator role
  (``/config curator-role``).

Use them as a cog's ``interaction_check`` (every command of the cog) or per command with
:func:`admin_only` / :func:`curator_only`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

import discord
from discord import app_commands

from bot.errors import GuildOnly, MissingPermission
from storage.records import GuildSettings

if TYPE_CHECKING:
    from bot.client.bot import TunecordBot

T = TypeVar("T")

ADMIN_NEEDS = "the Manage Server permission"


class PermissionCheckFailure(MissingPermission, app_commands.CheckFailure):
    """A missing permission or role, raised from a check."""


class GuildOnlyCheckFailure(GuildOnly, app_commands.CheckFailure):
    """A guild-only check run in DMs."""


def guild_of(interaction: discord.Interaction) -> discord.Guild:
    """The interaction's guild; raises a guild-only failure in DMs."""
    if interaction.guild is None:
        raise GuildOnlyCheckFailure()
    return interaction.guild


def is_admin(interaction: discord.Interaction) -> bool:
    """Whether the member may change the guild's settings."""
    return interaction.guild is not None and interaction.permissions.manage_guild


def is_curator(interaction: discord.Interaction, settings: GuildSettings) -> bool:
    """Whether the member may review examples in this channel."""
    if interaction.guild is None:
        return False
    if interaction.permissions.manage_messages:
        return True
    return _holds_role(interaction, settings.curator_role_id)


def _holds_role(interaction: discord.Interaction, role_id: int | None) -> bool:
    member = interaction.user
    return (
        role_id is not None
        and isinstance(member, discord.Member)
        and member.get_role(role_id) is not None
    )


def require_admin(interaction: discord.Interaction) -> bool:
    """True for an admin; raises :class:`PermissionCheckFailure` for anyone else."""
    guild_of(interaction)
    if not is_admin(interaction):
        raise PermissionCheckFailure(ADMIN_NEEDS)
    return True


async def require_curator(interaction: discord.Interaction) -> bool:
    """True for a curator; raises :class:`PermissionCheckFailure` for anyone else."""
    guild = guild_of(interaction)
    bot = cast("TunecordBot", interaction.client)
    settings = await bot.services.guild_config.get(guild.id)
    if not is_curator(interaction, settings):
        role = f" or the <@&{settings.curator_role_id}> role" if settings.curator_role_id else ""
        raise PermissionCheckFailure(f"the Manage Messages permission{role}")
    return True


async def require_trainer(interaction: discord.Interaction) -> bool:
    """Admins and members with the guild's trainer role (``/config trainer-role``); raises
    :class:`PermissionCheckFailure` for anyone else."""
    guild = guild_of(interaction)
    if is_admin(interaction):
        return True
    bot = cast("TunecordBot", interaction.client)
    role_id = (await bot.services.guild_config.get(guild.id)).trainer_role_id
    if _holds_role(interaction, role_id):
        return True
    role = f" or the <@&{role_id}> role" if role_id else ""
    raise PermissionCheckFailure(f"{ADMIN_NEEDS}{role}")


def require_manage_channels(interaction: discord.Interaction) -> bool:
    """True for a member with Manage Channels; raises a permission failure otherwise."""
    guild_of(interaction)
    if not interaction.permissions.manage_channels:
        raise PermissionCheckFailure("the Manage Channels permission")
    return True


def admin_only() -> Callable[[T], T]:
    """For one command: hidden from non-admins by default, and checked at run time."""

    def decorate(command: T) -> T:
        command = app_commands.guild_only()(command)
        command = app_commands.default_permissions(manage_guild=True)(command)
        return app_commands.check(require_admin)(command)

    return decorate


def curator_only() -> Callable[[T], T]:
    """For one command: checked at run time. It stays visible to everyone, because a
    curator role cannot be expressed as a default permission."""

    def decorate(command: T) -> T:
        command = app_commands.guild_only()(command)
        return app_commands.check(require_curator)(command)

    return decorate

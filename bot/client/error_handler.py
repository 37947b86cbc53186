"""The one handler for every failed app command, button, select and modal.

Order of decisions:

1. a :class:`~bot.errors.UserError` (raised by a service, or a permission check) is shown
   to the member, ephemerally, with its own message;
2. discord.py's own check failures (missing permissions or roles, DMs, cooldowns, bad
   option values) and Discord refusing the bot a permission get a plain sentence naming
   what is missing;
3. anything else is a bug: the member gets a short apology with a reference code, and the
   log gets the traceback with the same reference, the guild, the user and the command.

The reply is a follow-up when the interaction was already acknowledged (deferred or
answered), the initial response otherwise.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import discord
from discord import app_commands

from bot.client.permissions import permission_name
from bot.errors import GuildOnly, UserError

log = logging.getLogger(__name__)


def reference_code() -> str:
    """A short code that ties the apology a member sees to the logged traceback."""
    return secrets.token_hex(4).upper()


def _unwrap(error: BaseException) -> BaseException:
    """The exception the command or component raised, without discord.py's wrapper."""
    if isinstance(error, app_commands.CommandInvokeError):
        return error.original
    return error


def _names(flags: list[str]) -> str:
    return ", ".join(permission_name(flag) for flag in flags)


def expected_message(error: BaseException) -> str | None:
    """What to tell the member about an expected failure; ``None`` for a bug."""
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, app_commands.MissingPermissions):
        return f"You need the {_names(error.missing_permissions)} permission to use this command."
    if isinstance(error, app_commands.BotMissingPermissions):
        return (
            f"I need the {_names(error.missing_permissions)} permission here to do that; "
            "ask an admin to grant it to my role."
        )
    if isinstance(error, app_commands.MissingRole):
        return f"You need the {error.missing_role} role to use this command."
    if isinstance(error, app_commands.MissingAnyRole):
        roles = ", ".join(str(role) for role in error.missing_roles)
        return f"You need one of these roles to use this command: {roles}."
    if isinstance(error, app_commands.NoPrivateMessage):
        return str(GuildOnly())
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f} seconds."
    if isinstance(error, app_commands.TransformerError):
        return f"{error.value!r} is not a valid {error.type.name.lower()} here."
    if isinstance(error, (app_commands.CommandNotFound, app_commands.CommandSignatureMismatch)):
        return (
            "This command changed since your Discord app loaded it; "
            "try again in a minute (or restart Discord)."
        )
    if isinstance(error, app_commands.CheckFailure):
        return "You cannot use this command here."
    if isinstance(error, discord.Forbidden):
        return (
            f"Discord refused me a permission for that ({error.text or 'Missing Permissions'}); "
            "ask an admin to check my role's permissions in this channel."
        )
    return None


def describe_source(interaction: discord.Interaction) -> str:
    """The command or component an interaction came from, for logs."""
    command = interaction.command
    if command is not None:
        return f"/{command.qualified_name}"
    data: dict[str, Any] = dict(interaction.data or {})
    custom_id = data.get("custom_id")
    return f"{interaction.type.name} {custom_id}" if custom_id else interaction.type.name


async def handle_interaction_error(
    interaction: discord.Interaction, error: BaseException, *, source: str | None = None
) -> None:
    """Tell the member what went wrong and log what needs logging (see module docstring)."""
    cause = _unwrap(error)
    where = source or describe_source(interaction)
    message = expected_message(cause)
    if message is None:
        reference = reference_code()
        log.error(
            "unexpected error (reference %s) in %s; guild %s, user %s",
            reference, where, interaction.guild_id, interaction.user.id,
            exc_info=(type(cause), cause, cause.__traceback__),
        )  # fmt: skip
        message = (
            "Sorry, something went wrong on my side. If it keeps happening, "
            f"give an admin this reference: {reference}."
        )
    else:
        log.info("refused %s for user %s in guild %s: %s",
                 where, interaction.user.id, interaction.guild_id, message)  # fmt: skip
    await _reply(interaction, message)


async def _reply(interaction: discord.Interaction, message: str) -> None:
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException as exc:  # the interaction expired or was deleted meanwhile
        log.warning("could not tell user %s about a failed %s: %s",
                    interaction.user.id, describe_source(interaction), exc)  # fmt: skip

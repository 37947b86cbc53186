"""The command tree: it owns the error handler for every app command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import discord
from discord import app_commands

from bot.client.error_handler import handle_interaction_error

if TYPE_CHECKING:
    from bot.client.bot import TunecordBot


class TunecordTree(app_commands.CommandTree[Any]):
    """Counts each command while it runs and routes its failures to one handler."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        cast("TunecordBot", self.client).in_flight.track_current()
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        await handle_interaction_error(interaction, error)

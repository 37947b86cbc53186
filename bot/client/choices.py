"""Autocomplete shared by the cogs: the guild's datasets and the catalogue's models."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, cast

import discord
from discord import app_commands

if TYPE_CHECKING:
    from bot.client.bot import TunecordBot

CHOICES_MAX = 25
"""Discord shows at most 25 choices."""


async def dataset_choices(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """The guild's datasets whose names contain what was typed."""
    if interaction.guild_id is None:
        return []
    bot = cast("TunecordBot", interaction.client)
    names = await bot.services.datasets.names(interaction.guild_id, current, CHOICES_MAX)
    return [app_commands.Choice(name=name, value=name) for name in names]


async def model_choices(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """Fine-tunable models of the price catalogue whose names contain what was typed
    (retired ones left out)."""
    bot = cast("TunecordBot", interaction.client)
    needle = current.strip().lower()
    today = date.today()
    models = [
        p for p in bot.catalogue.models() if needle in p.model.lower() and not p.retired(today)
    ]
    models.sort(key=lambda p: p.model)
    return [app_commands.Choice(name=p.model, value=p.model) for p in models[:CHOICES_MAX]]

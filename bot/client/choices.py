"""Autocomplete shared by the cogs: the guild's datasets and the catalogue's models."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import TYPE_CHECKING, cast

import discord
from discord import app_commands

from bot.providers.errors import ProviderError

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


BACKEND_LIST_SECONDS = 1.5
"""How long autocomplete waits for the backend's model list (Discord allows 3 s)."""
BACKEND_LIST_TTL = 60.0
"""How long a fetched model list is reused."""

_backend_models: dict[int, tuple[float, frozenset[str]]] = {}


async def backend_models(bot: TunecordBot) -> frozenset[str]:
    """The catalogue names of the models the bot's backend serves (cached a minute; empty
    when the backend does not answer in time: autocomplete must not wait)."""
    now = asyncio.get_running_loop().time()
    cached = _backend_models.get(id(bot.provider))
    if cached is not None and now - cached[0] < BACKEND_LIST_TTL:
        return cached[1]
    try:
        listed = await asyncio.wait_for(bot.provider.list_models(), BACKEND_LIST_SECONDS)
    except (TimeoutError, ProviderError):
        return cached[1] if cached is not None else frozenset()
    names = frozenset(
        price.model
        for info in listed
        if not info.id.startswith("ft:") and (price := bot.catalogue.find(info.id)) is not None
    )
    _backend_models[id(bot.provider)] = (now, names)
    return names


async def model_choices(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """Fine-tunable models of the price catalogue whose names contain what was typed
    (retired ones left out), those the backend serves first and marked."""
    bot = cast("TunecordBot", interaction.client)
    needle = current.strip().lower()
    today = date.today()
    served = await backend_models(bot)
    models = [
        p for p in bot.catalogue.models() if needle in p.model.lower() and not p.retired(today)
    ]
    models.sort(key=lambda p: (p.model not in served, p.model))
    return [
        app_commands.Choice(
            name=f"{p.model} (on this bot's backend)" if p.model in served else p.model,
            value=p.model,
        )
        for p in models[:CHOICES_MAX]
    ]

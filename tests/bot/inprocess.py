"""The bot built by the same factory as ``python -m bot``, run in the test's event loop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from discord.ext import commands

from bot.client.bot import TunecordBot, create_bot
from bot.dataset.pricing import PriceCatalogue
from bot.settings import Settings
from storage.store import Storage
from tests.standins.discord import DiscordStandIn
from tests.standins.discord.fixtures import running_bot


@contextlib.asynccontextmanager
async def running_tunecord(
    server: DiscordStandIn,
    tmp_path: Path,
    *,
    extra_cogs: Iterable[commands.Cog] = (),
    **settings: object,
) -> AsyncIterator[TunecordBot]:
    """A started bot (its cogs, synced commands) with a fresh database under ``tmp_path``."""
    config = Settings(
        discord_token=server.bot_token,
        database_path=tmp_path / "tunecord.sqlite3",
        start_trainer=False,
        **settings,  # type: ignore[arg-type]
    )
    storage = await Storage.open(config.database_path)
    try:
        bot = create_bot(config, storage, PriceCatalogue.load(), guild_ready_timeout=0.01)
        for cog in extra_cogs:
            await bot.add_cog(cog)
        async with running_bot(bot, server):
            try:
                yield bot
            finally:  # as `python -m bot` does on SIGTERM: let answers in progress finish
                await bot.in_flight.drain(timeout=10)
    finally:
        await storage.close()

"""A stop signal lets the interaction in progress finish (and its write land) before closing."""

from __future__ import annotations

import asyncio

import discord
from discord import app_commands
from discord.ext import commands

from bot.client.bot import create_bot
from bot.client.lifecycle import serve
from bot.dataset.pricing import PriceCatalogue
from bot.settings import Settings
from storage.store import Storage
from tests.standins.discord.fixtures import pointed_at

pytest_plugins = ("tests.standins.discord.fixtures",)


class Slow(commands.Cog):
    def __init__(self) -> None:
        self.started = asyncio.Event()

    @app_commands.command(name="slow", description="takes a while, then writes")
    async def slow(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        self.started.set()
        await asyncio.sleep(0.3)
        assert interaction.guild_id is not None
        services = interaction.client.services  # type: ignore[attr-defined]
        await services.guild_config.set_vote_threshold(interaction.guild_id, 9)
        await interaction.followup.send("saved", ephemeral=True)


async def test_stop_waits_for_the_interaction_in_progress(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ")
    alice = guild.add_member("alice")
    settings = Settings(database_path=tmp_path / "db.sqlite3", start_trainer=False)
    storage = await Storage.open(settings.database_path)
    bot = create_bot(settings, storage, PriceCatalogue.load(), guild_ready_timeout=0.01)
    slow = Slow()
    await bot.add_cog(slow)
    stop = asyncio.Event()
    try:
        with pointed_at(discord_server):
            serving = asyncio.create_task(serve(bot, discord_server.bot_token, stop))
            gateway = discord_server.gateway
            await gateway.wait_for(lambda: gateway.active, what="the bot's gateway session")
            handle = await alice.slash("slow")
            await slow.started.wait()
            stop.set()
            await asyncio.wait_for(serving, 10)
    finally:
        await storage.close()
    assert bot.is_closed()
    assert (await handle.next_followup()).content == "saved"
    async with await Storage.open(settings.database_path) as reopened:
        assert (await reopened.guilds.get(guild.id)).vote_threshold == 9

"""Commands are synced when the tree changed, and only then."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from tests.bot.inprocess import running_tunecord

pytest_plugins = ("tests.standins.discord.fixtures",)

GLOBAL_SYNC = "/applications/{application_id}/commands"
GUILD_SYNC = "/applications/{application_id}/guilds/{guild_id}/commands"


class Extra(commands.Cog):
    @app_commands.command(name="extra", description="a new command", extras={"public": True})
    async def extra(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("extra", ephemeral=True)


async def test_a_changed_tree_is_synced_again(discord_server, tmp_path):
    guild = discord_server.create_guild()
    for cogs, syncs in (([], 1), ([], 1), ([Extra()], 2), ([Extra()], 2), ([], 3)):
        async with running_tunecord(discord_server, tmp_path, extra_cogs=cogs):
            assert len(discord_server.calls("PUT", GLOBAL_SYNC)) == syncs
    assert "extra" not in {c["name"] for c in discord_server.commands}
    assert "config" in {c["name"] for c in discord_server.commands}

    # A dev guild is its own scope: synced once there, global left alone.
    for _ in range(2):
        async with running_tunecord(discord_server, tmp_path, dev_guild_id=guild.id):
            assert len(discord_server.calls("PUT", GUILD_SYNC)) == 1
    assert len(discord_server.calls("PUT", GLOBAL_SYNC)) == 3

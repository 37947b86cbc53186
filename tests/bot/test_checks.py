"""Run-time checks: admin (Manage Server) and curator (Manage Messages or the curator role)."""

from __future__ import annotations

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot.client.checks import curator_only
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import P

pytest_plugins = ("tests.standins.discord.fixtures",)


class Reviewing(commands.Cog):
    @app_commands.command(name="review", description="curators only")
    @curator_only()
    async def review(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("reviewing", ephemeral=True)


async def test_curators_have_manage_messages_or_the_curator_role(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ")
    curators = guild.create_role("curators")
    mods = guild.create_role("mods", permissions=P.MANAGE_MESSAGES)
    alice = guild.add_member("alice")
    carol = guild.add_member("carol", roles=[curators])
    mod = guild.add_member("mod", roles=[mods])
    async with running_tunecord(discord_server, tmp_path, extra_cogs=[Reviewing()]) as bot:
        assert (await mod.slash("review")).content == "reviewing"
        refused = await carol.slash("review")
        assert refused.content == "You need the Manage Messages permission to use this command."

        await bot.services.guild_config.set_curator_role(guild.id, curators.id)
        assert (await carol.slash("review")).content == "reviewing"
        refused = await alice.slash("review")
        assert refused.content == (
            f"You need the Manage Messages permission or the <@&{curators.id}> role "
            "to use this command."
        )
        assert refused.ephemeral


@pytest.mark.parametrize("perm", [P.MANAGE_GUILD, P.ADMINISTRATOR])
async def test_admins_have_manage_server(discord_server, tmp_path, perm):
    guild = discord_server.create_guild("HQ")
    boss = guild.add_member("boss", roles=[guild.create_role("boss", permissions=perm)])
    async with running_tunecord(discord_server, tmp_path):
        assert (await boss.slash("config show")).message.embeds

"""``python -m bot`` itself, as a subprocess against the Discord stand-in."""

from __future__ import annotations

import signal
import sqlite3

import pytest

from bot.client.permissions import INVITE_PERMISSIONS
from tests.bot.process import BotProcess, bot_env

pytest_plugins = ("tests.standins.discord.fixtures",)

GLOBAL_SYNC = "/applications/{application_id}/commands"
GUILD_SYNC = "/applications/{application_id}/guilds/{guild_id}/commands"
COMMANDS = {
    "config", "dataset", "example", "privacy", "finetune", "model", "chat", "Add to dataset"
}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_bot_comes_online_answers_and_stops_cleanly(discord_server, tmp_path, sig):
    guild = discord_server.create_guild("HQ")
    env = bot_env(tmp_path, discord_server)
    process = await BotProcess.start(env, tmp_path)
    try:
        await process.wait_for_line("is online as")
        assert len(discord_server.calls("PUT", GLOBAL_SYNC)) == 1
        assert {c["name"] for c in discord_server.commands} == COMMANDS
        invite = await process.wait_for_line("invite link")
        app_id = discord_server.world.application.id
        assert (
            f"https://discord.com/oauth2/authorize?client_id={app_id}"
            f"&scope=bot+applications.commands&permissions={INVITE_PERMISSIONS.value}"
        ) in invite

        result = await guild.owner.slash("config show")
        assert result.ephemeral
        assert result.message.embeds[0]["title"] == "tunecord settings for HQ"

        assert await process.stop(sig) == 0
    finally:
        await process.kill()
    assert "Traceback" not in process.output
    assert "database closed" in process.output
    db = tmp_path / "bot.sqlite3"
    assert not (tmp_path / "bot.sqlite3-wal").exists()  # the last connection closed cleanly
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM command_syncs").fetchone() == (1,)


async def test_a_restart_does_not_resync_an_unchanged_tree(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ")
    env = bot_env(tmp_path, discord_server)
    for run in range(2):
        process = await BotProcess.start(env, tmp_path)
        try:
            await process.wait_for_line("is online as")
            result = await guild.owner.slash("config vote-threshold", value=4 + run)
            assert (
                await result.next_followup()
            ).content == f"An example now needs {4 + run} approving votes."
            assert await process.stop() == 0
        finally:
            await process.kill()
    assert len(discord_server.calls("PUT", GLOBAL_SYNC)) == 1
    assert "slash commands unchanged since the last sync" in process.output


async def test_dev_guild_gets_the_commands_instead_of_global(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ")
    env = bot_env(tmp_path, discord_server, DEV_GUILD_ID=str(guild.id))
    process = await BotProcess.start(env, tmp_path)
    try:
        await process.wait_for_line("is online as")
        assert discord_server.calls("PUT", GLOBAL_SYNC) == []
        assert {c["name"] for c in discord_server.guild_commands(guild)} == COMMANDS
        result = await guild.owner.slash("config show")
        assert result.message.embeds
        assert await process.stop() == 0
    finally:
        await process.kill()

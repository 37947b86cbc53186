"""TUNECORD_LOG_LEVEL is applied to every logger of the process."""

from __future__ import annotations

import logging

import pytest

from bot.log_setup import configure_logging
from tests.bot.process import bot_env, run_to_exit

pytest_plugins = ("tests.standins.discord.fixtures",)


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_level_is_applied_to_the_root_logger(restore_root_logger):
    configure_logging("WARNING")
    assert logging.getLogger().level == logging.WARNING
    assert not logging.getLogger("discord.client").isEnabledFor(logging.INFO)
    configure_logging("DEBUG")
    assert logging.getLogger("bot.client").isEnabledFor(logging.DEBUG)


async def test_the_bot_process_logs_at_the_configured_level(discord_server, tmp_path):
    discord_server.create_guild()
    env = bot_env(tmp_path, discord_server, DISCORD_TOKEN="tok-SECRET-42")
    _, _, quiet = await run_to_exit({**env, "TUNECORD_LOG_LEVEL": "WARNING"}, tmp_path)
    assert quiet.strip().splitlines() == [
        next(line for line in quiet.splitlines() if line.startswith("tunecord: "))
    ]
    _, _, chatty = await run_to_exit({**env, "TUNECORD_LOG_LEVEL": "DEBUG"}, tmp_path)
    assert " DEBUG    discord.http: " in chatty
    assert " INFO     discord.client: logging in using static token" in chatty
    assert "SECRET" not in chatty

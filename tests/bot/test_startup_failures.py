"""Every way ``python -m bot`` fails to start ends with one sentence and a non-zero exit."""

from __future__ import annotations

import pytest

from tests.bot.process import bot_env, run_to_exit

pytest_plugins = ("tests.standins.discord.fixtures",)


def assert_one_sentence(stderr: str, *fragments: str) -> str:
    """The last line is the sentence (naming each fragment), alone, with no traceback."""
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    sentence = lines[-1]
    assert sentence.startswith("tunecord: ") and sentence.endswith(".")
    assert [line for line in lines if line.startswith("tunecord: ")] == [sentence]
    assert not [line for line in lines[:-1] if " ERROR " in line or " CRITICAL " in line]
    for fragment in fragments:
        assert fragment in sentence
    return sentence


async def test_no_token_says_how_to_get_one(tmp_path):
    code, out, err = await run_to_exit(bot_env(tmp_path), tmp_path)
    assert code == 2 and out == ""
    assert "Traceback" not in err
    assert "tunecord needs a Discord bot token" in err and "DISCORD_TOKEN=" in err


async def test_a_refused_token_says_to_reset_it(discord_server, tmp_path):
    discord_server.create_guild()
    env = bot_env(tmp_path, discord_server, DISCORD_TOKEN="not.the.right.token")
    code, out, err = await run_to_exit(env, tmp_path)
    assert code == 1 and out == ""
    assert_one_sentence(err, "refused the bot token", "DISCORD_TOKEN", "discord.com/developers")
    assert [e.status for e in discord_server.calls("GET", "/users/@me")] == [401]


async def test_a_missing_privileged_intent_names_the_switch(discord_server, tmp_path):
    discord_server.create_guild()
    discord_server.world.application.privileged_intents = 0
    code, out, err = await run_to_exit(bot_env(tmp_path, discord_server), tmp_path)
    assert code == 1 and out == ""
    assert_one_sentence(
        err, '"Message Content Intent"', "Privileged Gateway Intents",
        "read messages in chat channels", '"Add to dataset"',
    )  # fmt: skip
    identify = discord_server.gateway.last_identify
    assert identify["intents"] == (1 << 0) | (1 << 9) | (1 << 15)  # guilds, messages, content


@pytest.mark.parametrize("layout", ["parent is a file", "path is a folder", "not a database"])
async def test_an_unusable_database_path_names_it(tmp_path, layout):
    if layout == "parent is a file":
        (tmp_path / "plain-file").write_text("")
        db = tmp_path / "plain-file" / "tunecord.sqlite3"
    elif layout == "path is a folder":
        db = tmp_path / "a-folder"
        db.mkdir()
    else:
        db = tmp_path / "notes.txt"
        db.write_text("these are not the tables you are looking for\n" * 100)
    env = bot_env(tmp_path, TUNECORD_DB=str(db), DISCORD_TOKEN="any")
    code, out, err = await run_to_exit(env, tmp_path)
    assert code == 1 and out == ""
    assert_one_sentence(err, str(db.parent if layout == "parent is a file" else db), "TUNECORD_DB")


async def test_an_unreachable_discord_names_the_address(tmp_path, unused_tcp_port):
    api = f"http://127.0.0.1:{unused_tcp_port}/api/v10"
    env = bot_env(tmp_path, DISCORD_TOKEN="any", DISCORD_API_BASE=api)
    code, out, err = await run_to_exit(env, tmp_path)
    assert code == 1 and out == ""
    assert_one_sentence(err, "cannot reach Discord", api)


async def test_a_bad_setting_is_a_configuration_error(tmp_path):
    env = bot_env(tmp_path, DISCORD_TOKEN="any", TUNECORD_LOG_LEVEL="LOUD")
    code, out, err = await run_to_exit(env, tmp_path)
    assert code == 2 and out == ""
    assert err.strip() == (
        "tunecord: configuration error: TUNECORD_LOG_LEVEL must be one of "
        "DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'LOUD'"
    )

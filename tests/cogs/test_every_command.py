"""Properties every command of the bot keeps, checked over the whole synced command tree,
so a command added later is covered without a new test:

* a member forcing an admin or curator command past the Discord client (``force=True``)
  is refused at run time with the permission it needs, and the database does not change;
* a dataset name or an example id of another guild behaves as not found.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from discord import app_commands
from discord.ext import commands

from bot.client.bot import TunecordBot
from storage.records import ExampleStatus
from tests.bot.inprocess import running_tunecord
from tests.standins.discord.messages import Upload
from tests.storage.helpers import example

pytest_plugins = ("tests.standins.discord.fixtures",)

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(3, 12)
SKIPPED_TABLES = {"command_syncs", "schema_migrations"}


def leaves(commands_payload: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``("dataset stats", leaf)`` for every chat-input command and subcommand."""
    for command in commands_payload:
        if command.get("type", 1) != 1:
            continue
        subs = [o for o in command.get("options") or [] if o["type"] == SUB_COMMAND]
        groups = [o for o in command.get("options") or [] if o["type"] == SUB_COMMAND_GROUP]
        if not subs and not groups:
            yield command["name"], command
        for sub in subs:
            yield f"{command['name']} {sub['name']}", sub
        for group in groups:
            for sub in group.get("options") or []:
                yield f"{command['name']} {group['name']} {sub['name']}", sub


def app_command(bot: TunecordBot, path: str) -> app_commands.Command[Any, ..., Any]:
    found = bot.tree.get_command(path.split()[0])
    for word in path.split()[1:]:
        assert isinstance(found, app_commands.Group)
        found = found.get_command(word)
    assert isinstance(found, app_commands.Command), path
    return found


def is_public(bot: TunecordBot, path: str) -> bool:
    command = app_command(bot, path)
    cog = command.binding
    cog_checked = (
        isinstance(cog, commands.Cog)
        and type(cog).interaction_check is not commands.Cog.interaction_check
    )
    return bool(command.extras.get("public")) and not cog_checked and not command.checks


def option_values(
    leaf: dict[str, Any], guild: Any, *, dataset: str, example_id: int
) -> dict[str, Any]:
    """A value the Discord client would accept for every required option (and ``dataset``
    and ``id`` options, which the tests aim at)."""
    values: dict[str, Any] = {}
    for option in leaf.get("options") or []:
        name, kind = option["name"], option["type"]
        if not option.get("required") and name not in ("dataset",):
            continue
        if option.get("choices"):
            values[name] = option["choices"][0]["value"]
        elif name == "dataset":
            values[name] = dataset
        elif name in ("id", "example", "example_id"):
            values[name] = example_id
        elif kind == STRING:
            values[name] = "forced-value"
        elif kind in (INTEGER, NUMBER):
            values[name] = option.get("min_value", 1)
        elif kind == BOOLEAN:
            values[name] = True
        elif kind == CHANNEL:
            values[name] = guild.channel("general")
        elif kind == ROLE:
            values[name] = guild.create_role(f"role-{len(values)}-{name}")
        elif kind in (USER, MENTIONABLE):
            values[name] = guild.owner
        elif kind == ATTACHMENT:
            values[name] = Upload("data.jsonl", example(99).to_json().encode() + b"\n")
    return values


def database_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but the bookkeeping ones), through a separate connection."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if r[0] not in SKIPPED_TABLES and not r[0].startswith("sqlite_")
        ]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}  # noqa: S608
    finally:
        conn.close()


async def reply_text(handle: Any) -> str:
    if handle.deferred:
        return (await handle.next_followup()).content
    return handle.content or ""


@pytest.fixture
async def world(discord_server, tmp_path):
    home = discord_server.create_guild("Home", channels=("general", "reviews"))
    away = discord_server.create_guild("Away", channels=("general",))
    async with running_tunecord(discord_server, tmp_path) as bot:
        services = bot.services
        marv = await services.datasets.create(home.id, "marv", system_prompt="You are Marv.")
        away_only = await services.datasets.create(away.id, "away-only")
        alice = home.add_member("alice")
        away_member = away.add_member("carol")
        added = await services.contributions.add(marv, alice.id, example(1))
        await services.curation.decide(home.id, added.record.id, ExampleStatus.APPROVED)
        foreign = await services.contributions.add(away_only, away_member.id, example(2))
        yield {
            "bot": bot,
            "home": home,
            "alice": alice,
            "db": tmp_path / "tunecord.sqlite3",
            "home_example": added.record.id,
            "foreign_example": foreign.record.id,
        }


async def test_a_member_forcing_a_guarded_command_is_refused_and_nothing_changes(world):
    bot, home, alice = world["bot"], world["home"], world["alice"]
    guarded = [
        (path, leaf)
        for path, leaf in leaves(home.server.commands)
        if not is_public(bot, path)
    ]
    assert {"config show", "dataset create", "dataset export", "example import"} <= {
        p for p, _ in guarded
    }
    for path, leaf in guarded:
        before = database_rows(world["db"])
        options = option_values(leaf, home, dataset="marv", example_id=world["home_example"])
        handle = await alice.slash(path, force=True, **options)
        text = await reply_text(handle)
        assert text.startswith("You need the "), (path, text)
        assert handle.ephemeral or handle.deferred, path
        assert database_rows(world["db"]) == before, path


async def test_another_guilds_dataset_names_and_example_ids_are_not_found(world):
    home = world["home"]
    owner = home.owner  # may use every command: only the guild boundary can refuse
    for path, leaf in leaves(home.server.commands):
        names = {o["name"] for o in leaf.get("options") or []}
        if not names & {"dataset", "id"}:
            continue
        before = database_rows(world["db"])
        options = option_values(
            leaf, home, dataset="away-only", example_id=world["foreign_example"]
        )
        handle = await owner.slash(path, **options)
        if handle.modal is not None:  # /example add opens the form before naming a dataset
            pytest.fail(f"/{path} opened a form for another guild's dataset")
        text = await reply_text(handle)
        lowered = text.lower()
        assert "no dataset named" in lowered or "no example #" in lowered, (path, text)
        assert database_rows(world["db"]) == before, path

"""The one error handler, for app commands, buttons and modals, before and after deferring."""

from __future__ import annotations

import logging
import re
from typing import Literal

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot.client.checks import admin_only, require_admin
from bot.client.ui import TunecordModal, TunecordView
from bot.errors import InvalidInput
from tests.bot.inprocess import running_tunecord

pytest_plugins = ("tests.standins.discord.fixtures",)

Kind = Literal["user", "permission", "bug"]
USER_MESSAGE = "Epochs must be a whole number between 1 and 25."
APOLOGY = re.compile(
    r"^Sorry, something went wrong on my side\. If it keeps happening, "
    r"give an admin this reference: ([0-9A-F]{8})\.$"
)


def fail(kind: Kind, interaction: discord.Interaction) -> None:
    if kind == "user":
        raise InvalidInput(USER_MESSAGE)
    if kind == "permission":
        require_admin(interaction)
    raise RuntimeError("the database is on fire")


class FailingModal(TunecordModal, title="Describe it"):
    text = discord.ui.TextInput(label="Text", custom_id="text")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        fail("bug", interaction)


class FailingView(TunecordView):
    @discord.ui.button(label="User error", custom_id="user")
    async def user(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        fail("user", interaction)

    @discord.ui.button(label="Bug after defer", custom_id="bug")
    async def bug(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        fail("bug", interaction)

    @discord.ui.button(label="Form", custom_id="form")
    async def form(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_modal(FailingModal())


class Failing(commands.Cog):
    @app_commands.command(name="fail", description="fails on purpose")
    async def fail_command(
        self, interaction: discord.Interaction, kind: Kind, defer: bool = False
    ) -> None:
        if defer:
            await interaction.response.defer(ephemeral=True, thinking=True)
        fail(kind, interaction)

    @app_commands.command(name="admin-thing", description="admins only")
    @admin_only()
    async def admin_thing(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("done", ephemeral=True)

    @app_commands.command(name="managers", description="discord.py's own permission check")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def managers(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("done", ephemeral=True)

    @app_commands.command(name="panel", description="buttons that fail")
    async def panel(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("panel", view=FailingView())


@pytest.fixture
async def world(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ")
    alice = guild.add_member("alice")
    async with running_tunecord(discord_server, tmp_path, extra_cogs=[Failing()]) as bot:
        yield guild, alice, bot


async def reply_to(handle) -> discord.Message:
    """The message the member sees: the response, or the follow-up after a deferral."""
    return await handle.next_followup() if handle.deferred else handle.message


@pytest.mark.parametrize("defer", [False, True])
async def test_a_user_error_is_shown_ephemerally_as_is(world, defer, caplog):
    guild, alice, _ = world
    handle = await alice.slash("fail", kind="user", defer=defer)
    message = await reply_to(handle)
    assert message.content == USER_MESSAGE and message.ephemeral
    assert handle.deferred is defer
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("defer", [False, True])
async def test_a_permission_failure_names_what_is_needed(world, defer):
    guild, alice, _ = world
    handle = await alice.slash("fail", kind="permission", defer=defer)
    message = await reply_to(handle)
    assert message.content == "You need the Manage Server permission to use this command."
    assert message.ephemeral


async def test_a_check_refuses_a_member_forcing_a_hidden_command(world):
    guild, alice, _ = world
    handle = await alice.slash("admin-thing", force=True)
    assert handle.content == "You need the Manage Server permission to use this command."
    assert handle.ephemeral
    assert (await guild.owner.slash("admin-thing")).content == "done"
    handle = await alice.slash("managers")
    assert handle.content == "You need the Manage Server permission to use this command."


@pytest.mark.parametrize("defer", [False, True])
async def test_an_unexpected_error_apologises_with_a_reference_in_the_log(world, defer, caplog):
    guild, alice, _ = world
    with caplog.at_level(logging.ERROR, logger="bot.client.error_handler"):
        handle = await alice.slash("fail", kind="bug", defer=defer)
        message = await reply_to(handle)
    assert message.ephemeral
    match = APOLOGY.match(message.content)
    assert match, message.content
    assert "fire" not in message.content
    [record] = [r for r in caplog.records if r.name == "bot.client.error_handler"]
    logged = record.getMessage()
    assert match.group(1) in logged and "/fail" in logged
    assert str(guild.id) in logged and str(alice.id) in logged
    assert record.exc_info and isinstance(record.exc_info[1], RuntimeError)


async def test_components_and_modals_use_the_same_handler(world, caplog):
    guild, alice, _ = world
    panel = await alice.slash("panel")
    clicked = await alice.click(panel.message, "User error")
    assert clicked.content == USER_MESSAGE and clicked.ephemeral

    with caplog.at_level(logging.ERROR, logger="bot.client.error_handler"):
        clicked = await alice.click(panel.message, "Bug after defer")
        after_defer = await clicked.next_followup()
        form = await alice.click(panel.message, "Form")
        submitted = await alice.submit_modal(form, text="hello")
    assert APOLOGY.match(after_defer.content) and after_defer.ephemeral
    assert APOLOGY.match(submitted.content) and submitted.ephemeral
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.client.error_handler"]
    assert len(logged) == 2
    assert "component bug" in logged[0] and "modal Describe it" in logged[1]

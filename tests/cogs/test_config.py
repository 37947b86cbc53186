"""``/config``: admins change the server's settings; everyone else is refused at run time."""

from __future__ import annotations

import discord
import pytest

from bot.errors import InvalidInput
from bot.services.guild_config import GuildConfigService
from storage.store import Storage
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import CommandNotPermitted, P

pytest_plugins = ("tests.standins.discord.fixtures",)

SUBCOMMANDS = {
    "config show": {},
    "config review-channel": {},
    "config curator-role": {},
    "config vote-threshold": {"value": 9},
    "config max-pending": {"value": 9},
    "config capture-depth": {"value": 9},
    "config trainer-role": {},
    "config training-channel": {},
    "config budget": {"usd": 5.0},
}


@pytest.fixture
async def world(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ", channels=("general", "reviews"))
    managers = guild.create_role("managers", permissions=P.MANAGE_GUILD)
    curators = guild.create_role("curators")
    alice = guild.add_member("alice")
    mod = guild.add_member("mod", roles=[guild.create_role("mods", permissions=P.MANAGE_MESSAGES)])
    manager = guild.add_member("manager", roles=[managers])
    async with running_tunecord(discord_server, tmp_path) as bot:
        yield guild, bot, {"alice": alice, "mod": mod, "manager": manager, "curators": curators}


def fields(message) -> dict[str, str]:
    [embed] = message.embeds
    return {f["name"]: f["value"] for f in embed["fields"]}


async def test_config_is_registered_for_admins_in_servers_only(world):
    guild, bot, _ = world
    command = guild.server.command("config")
    assert command["default_member_permissions"] == str(
        discord.Permissions(manage_guild=True).value
    )
    assert command["contexts"] == [0]
    assert {o["name"] for o in command["options"]} == {s.split()[1] for s in SUBCOMMANDS}


async def test_show_lists_every_setting_with_defaults(world):
    guild, bot, people = world
    handle = await people["manager"].slash("config show")
    assert handle.ephemeral
    shown = fields(handle.message)
    assert shown == {
        "Default dataset": "not set",
        "Review channel": "not set",
        "Curator role": "not set (members with Manage Messages curate)",
        "Admin role": "not set",
        "Vote threshold": "3 approving votes",
        "Pending examples per member": "20",
        "Capture depth": "6 messages of a reply chain",
        "Chat replies": "off",
        "Capture": "off",
        "Default base model": "smollm2-135m-instruct (bot default)",
        "Provider": "trainer (bot default)",
        "Monthly budget": "no limit",
        "Trainer role": "not set (members with Manage Server train)",
        "Training channel": "not set (where a fine-tune was started)",
    }


async def test_an_admin_changes_each_setting(world):
    guild, bot, people = world
    admin = people["manager"]
    reviews, curators = guild.channel("reviews"), people["curators"]

    done = await admin.slash("config review-channel", channel=reviews)
    assert done.deferred
    reply = await done.next_followup()
    assert (
        reply.ephemeral
        and reply.content == f"New examples will be posted for review in <#{reviews.id}>."
    )
    done = await admin.slash("config curator-role", role=curators)
    assert (await done.next_followup()).content.startswith(f"Members with <@&{curators.id}>")
    done = await admin.slash("config vote-threshold", value=7)
    assert (await done.next_followup()).content == "An example now needs 7 approving votes."
    done = await admin.slash("config max-pending", value=5)
    assert (
        await done.next_followup()
    ).content == "Each member may now have 5 examples waiting for review."
    done = await admin.slash("config capture-depth", value=10)
    assert (
        await done.next_followup()
    ).content == "Add to dataset now follows a reply chain up to 10 messages."

    settings = await bot.services.guild_config.get(guild.id)
    assert (settings.review_channel_id, settings.curator_role_id) == (reviews.id, curators.id)
    assert (settings.vote_threshold, settings.max_pending_per_member) == (7, 5)
    assert settings.capture_depth == 10
    shown = fields((await admin.slash("config show")).message)
    assert shown["Review channel"] == f"<#{reviews.id}>"
    assert shown["Curator role"] == f"<@&{curators.id}>"
    assert shown["Vote threshold"] == "7 approving votes"
    assert shown["Pending examples per member"] == "5"

    done = await admin.slash("config trainer-role", role=curators)
    assert (await done.next_followup()).content.startswith(f"Members with <@&{curators.id}>")
    done = await admin.slash("config training-channel", channel=reviews)
    assert (await done.next_followup()).content == (
        f"Fine-tunes will be announced and followed in <#{reviews.id}>."
    )
    done = await admin.slash("config budget", usd=12.5)
    assert (await done.next_followup()).content == "Fine-tunes may now cost up to $12.50 per month."
    settings = await bot.services.guild_config.get(guild.id)
    assert (settings.trainer_role_id, settings.training_channel_id) == (curators.id, reviews.id)
    assert str(settings.monthly_budget_usd) == "12.5"
    shown = fields((await admin.slash("config show")).message)
    assert shown["Training channel"] == f"<#{reviews.id}>"
    assert shown["Monthly budget"] == "$12.50"
    done = await admin.slash("config budget")
    assert (await done.next_followup()).content == "Fine-tunes now have no monthly limit."

    done = await admin.slash("config review-channel")
    assert (await done.next_followup()).content == "Review channel cleared."
    assert (await bot.services.guild_config.get(guild.id)).review_channel_id is None


async def test_setting_a_channel_the_bot_cannot_post_in_names_the_missing_permissions(world):
    guild, bot, people = world
    reviews = guild.channel("reviews")
    guild.set_overwrite(reviews, guild.bot_role, deny=P.SEND_MESSAGES | P.ATTACH_FILES)
    done = await guild.owner.slash("config review-channel", channel=reviews)
    reply = await done.next_followup()
    assert "Warning: I am missing Send Messages, Embed Links, Attach Files" in reply.content
    shown = fields((await guild.owner.slash("config show")).message)
    assert "Send Messages, Embed Links, Attach Files" in shown["Warning"]

    guild.set_overwrite(reviews, guild.bot_role, allow=P.SEND_MESSAGES | P.ATTACH_FILES)
    shown = fields((await guild.owner.slash("config show")).message)
    assert "Warning" not in shown


async def test_everyone_cannot_be_the_curator_role(world):
    guild, bot, _ = world
    done = await guild.owner.slash("config curator-role", role=guild.everyone)
    reply = await done.next_followup()
    assert reply.content == "Pick a specific role: @everyone cannot be the curator role."
    assert reply.ephemeral


@pytest.mark.parametrize("who", ["alice", "mod"])
@pytest.mark.parametrize("subcommand", sorted(SUBCOMMANDS))
async def test_a_member_forcing_config_is_refused_and_nothing_changes(world, who, subcommand):
    guild, bot, people = world
    member = people[who]
    options = dict(SUBCOMMANDS[subcommand])
    if subcommand.endswith("review-channel"):
        options["channel"] = guild.channel("reviews")
    if subcommand.endswith("curator-role") or subcommand.endswith("trainer-role"):
        options["role"] = people["curators"]
    if subcommand.endswith("training-channel"):
        options["channel"] = guild.channel("reviews")
    with pytest.raises(CommandNotPermitted):
        await member.slash(subcommand, **options)  # the client hides it
    handle = await member.slash(subcommand, force=True, **options)
    assert handle.content == "You need the Manage Server permission to use this command."
    assert handle.ephemeral and not handle.deferred
    assert (await bot.storage.guilds.get(guild.id)).updated_at is None  # never written


async def test_the_service_refuses_values_out_of_range(tmp_path):
    async with await Storage.open(tmp_path / "db.sqlite3") as storage:
        service = GuildConfigService(storage.guilds)
        for bad in (0, 101):
            with pytest.raises(InvalidInput, match="between 1 and 100"):
                await service.set_vote_threshold(1, bad)
        with pytest.raises(InvalidInput, match="between 1 and 1000"):
            await service.set_max_pending(1, 0)
        for bad in (1, 26):
            with pytest.raises(InvalidInput, match="between 2 and 25"):
                await service.set_capture_depth(1, bad)
        assert (await service.set_vote_threshold(1, 100)).vote_threshold == 100
        assert (await service.get(1)).max_pending_per_member == 20

"""Permission arithmetic, command permissions and forced invocations."""

from __future__ import annotations

import discord
import pytest

from tests.standins.discord import ActionNotPermitted, CommandNotPermitted, DiscordStandIn, P
from tests.standins.discord.permissions import (
    ALL,
    DEFAULT_EVERYONE,
    base_permissions,
    channel_permissions,
)

pytest_plugins = ("tests.standins.discord.fixtures", "tests.standins.discord.samplebot")


def test_base_and_channel_permissions_follow_discords_algorithm():
    server = DiscordStandIn()
    g = server.create_guild()
    muted = g.create_role("muted")
    helper = g.create_role("helper", permissions=P.MANAGE_MESSAGES)
    admin = g.create_role("admin", permissions=P.ADMINISTRATOR)
    alice = g.add_member("alice", roles=[muted, helper])
    root = g.add_member("root", roles=[admin])
    ch = g.channel("general")
    guild = g.guild
    assert base_permissions(guild, alice.member) == DEFAULT_EVERYONE | P.MANAGE_MESSAGES
    assert base_permissions(guild, g.owner.member) == ALL
    assert base_permissions(guild, root.member) == ALL
    # @everyone overwrite, then roles (deny then allow), then the member
    g.set_overwrite(ch, g.everyone, deny=P.SEND_MESSAGES | P.ADD_REACTIONS)
    g.set_overwrite(ch, muted, deny=P.EMBED_LINKS)
    g.set_overwrite(ch, helper, allow=P.SEND_MESSAGES | P.EMBED_LINKS)
    perms = channel_permissions(guild, ch, alice.member)
    assert perms & P.SEND_MESSAGES and perms & P.EMBED_LINKS and not perms & P.ADD_REACTIONS
    g.set_overwrite(ch, alice, deny=P.SEND_MESSAGES)
    perms = channel_permissions(guild, ch, alice.member)
    assert not perms & P.SEND_MESSAGES
    assert not perms & P.EMBED_LINKS  # implicit: needs SEND_MESSAGES
    # no VIEW_CHANNEL means nothing at all; admins bypass overwrites
    g.set_overwrite(ch, alice, deny=P.VIEW_CHANNEL)
    assert channel_permissions(guild, ch, alice.member) == 0
    g.set_overwrite(ch, root, deny=P.VIEW_CHANNEL)
    assert channel_permissions(guild, ch, root.member) == ALL
    # threads use the parent's overwrites
    thread = g.create_thread(ch, "t")
    assert channel_permissions(guild, thread, alice.member) == 0


async def test_command_with_default_member_permissions_is_hidden_from_members(sample_world, sample_bot):
    with pytest.raises(CommandNotPermitted, match="MANAGE_MESSAGES"):
        await sample_world.alice.slash("admin purge", count=3)
    allowed = await sample_world.bob.slash("admin purge", count=3)  # bob is a mod
    assert allowed.content == "purged 3"
    owner = await sample_world.guild.owner.slash("admin purge", count=1)
    assert owner.content == "purged 1"


async def test_forced_invocation_proves_the_bot_checks_at_run_time(sample_world, sample_bot):
    forced = await sample_world.alice.slash("admin purge", count=3, force=True)
    assert forced.content == "denied: you need Manage Messages" and forced.ephemeral
    assert int(forced.record.payload["member"]["permissions"]) & P.MANAGE_MESSAGES == 0


async def test_channel_overwrite_can_grant_command_permission(sample_world, sample_bot):
    guild = sample_world.guild
    guild.set_overwrite(sample_world.general, sample_world.alice, allow=P.MANAGE_MESSAGES)
    result = await sample_world.alice.slash("admin purge", count=2)
    assert result.content == "purged 2"


async def test_use_application_commands_is_required(sample_world, sample_bot):
    guild = sample_world.guild
    guild.set_overwrite(sample_world.general, guild.everyone, deny=P.USE_APPLICATION_COMMANDS)
    with pytest.raises(CommandNotPermitted, match="USE_APPLICATION_COMMANDS"):
        await sample_world.alice.slash("ping")


async def test_interaction_carries_member_and_app_permissions(sample_world, sample_bot):
    guild, general = sample_world.guild, sample_world.general
    guild.set_overwrite(general, guild.everyone, deny=P.ADD_REACTIONS)
    guild.set_overwrite(general, guild.bot_role, deny=P.EMBED_LINKS)
    result = await sample_world.alice.slash("perms")
    expected_user = guild.guild.permissions_for(sample_world.alice.id, general)
    expected_app = guild.guild.permissions_for(sample_bot.user.id, general)
    assert result.content == f"user={expected_user} app={expected_app}"
    assert not expected_user & P.ADD_REACTIONS and not expected_app & P.EMBED_LINKS
    # and discord.py's own computation from the cached guild agrees (it also
    # strips voice-only permissions for text channels)
    channel = sample_bot.get_channel(general.id)
    member = channel.guild.get_member(sample_world.alice.id)
    assert channel.permissions_for(member).value == expected_user & ~discord.Permissions.voice().value


async def test_bot_without_send_permission_gets_403(sample_world, sample_bot):
    guild = sample_world.guild
    guild.set_overwrite(sample_world.general, guild.bot_role, deny=P.SEND_MESSAGES)
    channel = sample_bot.get_channel(sample_world.general.id)
    with pytest.raises(discord.Forbidden) as info:
        await channel.send("hello")
    assert info.value.code == 50013
    guild.set_overwrite(sample_world.general, guild.bot_role, deny=P.VIEW_CHANNEL)
    with pytest.raises(discord.Forbidden) as info:
        await channel.send("hello")
    assert info.value.code == 50001


async def test_members_without_permission_cannot_act(sample_world, sample_bot):
    guild = sample_world.guild
    guild.set_overwrite(sample_world.general, sample_world.alice, deny=P.SEND_MESSAGES | P.ADD_REACTIONS)
    with pytest.raises(ActionNotPermitted, match="SEND_MESSAGES"):
        await sample_world.alice.send(sample_world.general, "hi")
    msg = await sample_world.bob.send(sample_world.general, "react to this")
    with pytest.raises(ActionNotPermitted, match="ADD_REACTIONS"):
        await sample_world.alice.react(msg, "👍")
    await sample_world.bob.react(msg, "👍")
    await sample_world.alice.react(msg, "👍")  # joining an existing reaction is allowed
    assert msg.reactions["👍"] == [sample_world.bob.id, sample_world.alice.id]

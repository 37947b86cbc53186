"""Gateway behaviour of the Discord stand-in, driven by the real discord.py client."""

from __future__ import annotations

import asyncio
import math
import sys
import time

import discord
import pytest

from tests.standins.discord import P
from tests.standins.discord.fixtures import running_bot
from tests.standins.discord.samplebot import SampleBot, build_sample_world

pytest_plugins = ("tests.standins.discord.fixtures", "tests.standins.discord.samplebot")


async def test_bot_logs_in_identifies_and_is_ready_fast(discord_server, sample_world):
    bot = SampleBot()
    start = time.monotonic()
    async with running_bot(bot, discord_server):
        elapsed = time.monotonic() - start
        assert elapsed < 1.0
        identify = discord_server.gateway.last_identify
        assert identify["intents"] == bot.intents.value
        assert identify["token"] == discord_server.bot_token
        assert identify["properties"]["browser"] == "discord.py"
        # READY carried resume_gateway_url and application
        assert str(bot.ws.gateway) == discord_server.gateway_url
        assert bot.application_id == discord_server.world.application.id
        assert bot.user.id == discord_server.bot_user.id
        # login order as discord.py does it
        first = [(e.method, e.route) for e in discord_server.exchanges[:2]]
        assert first == [("GET", "/users/@me"), ("GET", "/oauth2/applications/@me")]


async def test_guild_create_carries_roles_channels_members_and_overwrites(discord_server):
    world = build_sample_world(discord_server)
    secret = world.guild.create_channel("mods-only")
    world.guild.set_overwrite(secret, world.guild.everyone, deny=P.VIEW_CHANNEL)
    world.guild.set_overwrite(secret, world.mods, allow=P.VIEW_CHANNEL)
    async with running_bot(SampleBot(), discord_server) as bot:
        guild = bot.get_guild(world.guild.id)
        assert guild is not None and guild.name == "Tunecord HQ"
        assert {r.name for r in guild.roles} >= {"@everyone", "mods", "tunecord-test"}
        assert guild.get_role(world.mods.id).permissions.manage_messages
        assert {c.name for c in guild.text_channels} == {"general", "mods-only"}
        channel = guild.get_channel(secret.id)
        assert channel.overwrites_for(guild.default_role).view_channel is False
        assert channel.overwrites_for(guild.get_role(world.mods.id)).view_channel is True
        bob = guild.get_member(world.bob.id)
        assert [r.name for r in bob.roles if not r.is_default()] == ["mods"]
        assert channel.permissions_for(bob).view_channel
        assert not channel.permissions_for(guild.get_member(world.alice.id)).view_channel


async def test_heartbeat_is_acked_and_server_can_request_one(sample_world, sample_bot):
    gw = sample_world.server.gateway
    await gw.wait_for(lambda: gw.heartbeats >= 1, what="first heartbeat")
    await gw.wait_for(lambda: math.isfinite(sample_bot.latency), what="heartbeat ACK")
    before = gw.heartbeats
    await gw.request_heartbeat()
    await gw.wait_for(lambda: gw.heartbeats > before, what="requested heartbeat")
    assert gw.connections[-1].last_heartbeat_seq is not None


async def test_disconnect_resumes_and_replays_missed_events(sample_world, sample_bot):
    gw = sample_world.server.gateway
    session_id = sample_bot.ws.session_id
    await gw.disconnect(4000)
    # dispatched while the bot is away: buffered and replayed on RESUME
    await sample_world.alice.send(sample_world.general, "sent while you were away")
    await sample_bot.seen.wait("resumed")
    msg = await sample_bot.seen.wait("message", lambda m: m.content == "sent while you were away")
    assert msg.author.id == sample_world.alice.id
    assert len(gw.identifies) == 1
    assert gw.resumes[-1]["session_id"] == session_id
    assert isinstance(gw.resumes[-1]["seq"], int)
    assert 4000 in gw.client_close_codes or gw.connects == 2


async def test_reconnect_opcode_makes_client_resume(sample_world, sample_bot):
    gw = sample_world.server.gateway
    await gw.send_reconnect()
    await sample_bot.seen.wait("resumed")
    assert len(gw.resumes) == 1 and len(gw.identifies) == 1
    reply_to = await sample_world.alice.send(sample_world.general, "!ping")
    reply = await sample_world.server.wait_for_message(sample_world.general, after=reply_to)
    assert reply.content == "pong"


async def test_invalid_session_forces_new_identify(sample_world, sample_bot):
    gw = sample_world.server.gateway
    old_session = sample_bot.ws.session_id
    await gw.invalidate_session(resumable=False)
    await sample_bot.seen.wait("ready", count=2)
    assert len(gw.identifies) == 2
    assert sample_bot.ws.session_id != old_session
    assert sample_bot.get_guild(sample_world.guild.id) is not None


async def test_expired_session_on_resume_gets_invalid_session_then_identify(sample_world, sample_bot):
    gw = sample_world.server.gateway
    gw.fail_next_resume()
    await gw.disconnect(4000)
    await sample_bot.seen.wait("ready", count=2)
    assert len(gw.resumes) == 1 and len(gw.identifies) == 2


async def test_fatal_close_code_stops_the_client(sample_world, sample_bot):
    await sample_world.server.gateway.disconnect(4004, "Authentication failed.")
    with pytest.raises(discord.ConnectionClosed) as info:
        await asyncio.wait_for(sample_bot.standin_task, 5)
    assert info.value.code == 4004


async def test_privileged_intents_not_granted_close_4014(discord_server, sample_world):
    discord_server.world.application.privileged_intents = 0
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with running_bot(SampleBot(), discord_server):
            pass
    assert discord_server.gateway.client_close_codes


async def test_message_content_intent_is_honoured(discord_server, sample_world):
    intents = discord.Intents.default()  # no message_content
    async with running_bot(SampleBot(intents=intents), discord_server) as bot:
        assert discord_server.gateway.last_identify["intents"] & (1 << 15) == 0
        await sample_world.alice.send(sample_world.general, "secret words")
        await sample_world.alice.send(sample_world.general, f"{bot.user.mention} hi bot")
        plain = await bot.seen.wait("message")
        mentioned = await bot.seen.wait("message", count=2)
        assert plain.content == ""
        assert mentioned.content.endswith("hi bot")


async def test_live_world_changes_are_dispatched(sample_world, sample_bot):
    server, guild = sample_world.server, sample_world.guild
    carol = guild.add_member("carol")
    member = await sample_bot.seen.wait("member_join")
    assert member.id == carol.id
    carol.add_roles(sample_world.mods)
    _, after = await sample_bot.seen.wait("member_update")
    assert [r.name for r in after.roles if not r.is_default()] == ["mods"]
    role = guild.create_role("helpers", mentionable=True)
    assert (await sample_bot.seen.wait("role_create")).id == role.id
    ch = guild.create_channel("datasets", topic="share data")
    created = await sample_bot.seen.wait("channel_create")
    assert (created.id, created.topic) == (ch.id, "share data")
    thread = guild.create_thread(ch, "ideas", owner=carol)
    seen_thread = await sample_bot.seen.wait("thread_create")
    assert (seen_thread.id, seen_thread.parent_id, seen_thread.owner_id) == (thread.id, ch.id, carol.id)
    new_guild = server.create_guild("Second")
    joined = await sample_bot.seen.wait("guild_join")
    assert joined.id == new_guild.id
    await carol.start_typing(ch)
    assert (await sample_bot.seen.wait("typing")).id == carol.id


async def test_request_guild_members_gets_a_chunk(sample_world, sample_bot):
    guild = sample_bot.get_guild(sample_world.guild.id)
    members = await guild.query_members("bo")
    assert [m.name for m in members] == ["bob"]
    request = sample_world.server.gateway.member_requests[-1]
    assert request["query"] == "bo" and int(request["guild_id"]) == sample_world.guild.id


async def test_latency_is_realistic_and_heartbeats_keep_up(caplog):
    """discord.py's keep-alive thread stamps a beat's send time only after the
    send finished; an instant loopback ACK used to be measured against the
    previous beat (latency = the heartbeat interval, "Can't keep up" above 10 s)."""

    caplog.set_level("WARNING", logger="discord.gateway")
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.02)  # a busy interpreter: the thread waits longer for the GIL
    try:
        await _latency_check(caplog)
    finally:
        sys.setswitchinterval(switch)
    assert not [r for r in caplog.records if "Can't keep up" in r.getMessage()]


async def _latency_check(caplog):
    from tests.standins.discord import DiscordStandIn

    async with DiscordStandIn(heartbeat_interval_ms=300) as server:
        build_sample_world(server)
        gw = server.gateway
        async with running_bot(SampleBot(), server) as bot:
            # the first beat follows HELLO; the next ones come from the keep-alive thread
            latencies = []
            for n in range(2, 7):
                await gw.wait_for(lambda n=n: gw.heartbeat_acks >= n, timeout=10, what=f"ACK #{n}")
                await asyncio.sleep(0.03)  # let the client read the ACK
                latencies.append(bot.latency)
            # ~ heartbeat_ack_delay (0.05 s) each time, never ~ the 0.3 s interval
            assert all(0 < latency < 0.2 for latency in latencies), latencies
            conn = gw.connections[0]
            assert len(gw.connections) == 1 and conn.acks >= 6
            # each ACK left a realistic round trip after its heartbeat
            pairs = list(zip(conn.heartbeats_at, conn.acks_at, strict=False))
            assert all(ack - beat >= gw.heartbeat_ack_delay * 0.9 for beat, ack in pairs), pairs

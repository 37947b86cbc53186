"""Faults on demand: 429s (route and global), 5xx and slow responses."""

from __future__ import annotations

import time

import discord
import pytest

pytest_plugins = ("tests.standins.discord.fixtures", "tests.standins.discord.samplebot")

SEND = "POST /channels/{channel_id}/messages"
CALLBACK = "POST /interactions/{interaction_id}/{token}/callback"


async def test_route_429_is_retried_by_discord_py(sample_world, sample_bot):
    server = sample_world.server
    fault = server.faults.rate_limit(SEND, retry_after=0.05)
    channel = sample_bot.get_channel(sample_world.general.id)
    start = time.monotonic()
    sent = await channel.send("after a rate limit")
    assert time.monotonic() - start >= 0.05
    assert sent.content == "after a rate limit" and fault.hits == 1
    first, second = server.calls("POST", "/channels/{channel_id}/messages")
    assert (first.status, second.status) == (429, 200)
    assert first.response_json == {"message": "You are being rate limited.", "retry_after": 0.05,
                                   "global": False, "code": 0}  # fmt: skip
    assert len(server.messages_in(sample_world.general)) == 1


async def test_429_headers(discord_server, sample_world):
    from aiohttp import ClientSession

    discord_server.faults.rate_limit("GET /users/@me", retry_after=1.5, is_global=True)
    async with ClientSession() as session:
        headers = {"Authorization": f"Bot {discord_server.bot_token}"}
        async with session.get(discord_server.api_base + "/users/@me", headers=headers) as resp:
            assert resp.status == 429
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.headers["Via"] == "1.1 google"
            assert resp.headers["Retry-After"] == "2"
            assert resp.headers["X-RateLimit-Global"] == "true"
            assert resp.headers["X-RateLimit-Scope"] == "global"
            assert resp.headers["X-RateLimit-Remaining"] == "0"
            assert resp.headers["X-RateLimit-Reset-After"] == "1.500"
            assert "X-RateLimit-Bucket" in resp.headers and "X-RateLimit-Limit" in resp.headers
            assert (await resp.json())["global"] is True
        async with session.get(discord_server.api_base + "/users/@me", headers=headers) as resp:
            assert resp.status == 200 and resp.headers["X-RateLimit-Remaining"] != "0"


async def test_global_429_blocks_then_retries(sample_world, sample_bot):
    server = sample_world.server
    server.faults.rate_limit(retry_after=0.05, is_global=True)  # any route
    guild = await sample_bot.fetch_guild(sample_world.guild.id)
    assert guild.id == sample_world.guild.id
    statuses = [e.status for e in server.exchanges[-2:]]
    assert statuses == [429, 200]
    assert server.exchanges[-2].fault == "429"


async def test_429_on_interaction_callback_is_retried_by_the_webhook_adapter(sample_world, sample_bot):
    server = sample_world.server
    server.faults.rate_limit(CALLBACK, retry_after=0.05)
    result = await sample_world.alice.slash("ping")
    assert result.content == "pong"
    assert [e.status for e in server.calls("POST", "/interactions/{interaction_id}/{token}/callback")] == [429, 200]


async def test_repeated_429s_are_each_retried(sample_world, sample_bot):
    """Every 429 carries ``Via`` (without it discord.py assumes a Cloudflare
    ban and raises), so discord.py keeps honouring ``retry_after``."""
    server = sample_world.server
    server.faults.rate_limit(SEND, retry_after=0.01, times=2)
    channel = sample_bot.get_channel(sample_world.general.id)
    await channel.send("twice limited")
    assert [e.status for e in server.calls("POST", "/channels/{channel_id}/messages")] == [429, 429, 200]


async def test_5xx_is_retried(sample_world, sample_bot):
    server = sample_world.server
    server.faults.server_error(SEND, status=502)
    channel = sample_bot.get_channel(sample_world.general.id)
    sent = await channel.send("survived a 502")  # discord.py backs off 1 s, then retries
    assert sent.content == "survived a 502"
    assert [e.status for e in server.calls("POST", "/channels/{channel_id}/messages")] == [502, 200]


async def test_non_retryable_5xx_surfaces(sample_world, sample_bot):
    server = sample_world.server
    server.faults.server_error("GET /guilds/{guild_id}", status=503)
    with pytest.raises(discord.DiscordServerError) as info:
        await sample_bot.fetch_guild(sample_world.guild.id)
    assert info.value.status == 503


async def test_slow_response(sample_world, sample_bot):
    server = sample_world.server
    server.faults.slow("GET /channels/{channel_id}", delay=0.2)
    start = time.monotonic()
    channel = await sample_bot.fetch_channel(sample_world.general.id)
    assert time.monotonic() - start >= 0.2 and channel.name == "general"
    # a slow callback still counts from when Discord received it
    server.interactions.ack_deadline = 0.15
    server.faults.slow(CALLBACK, delay=0.3)
    result = await sample_world.alice.slash("ping", timeout=2)
    assert result.content == "pong"


async def test_any_stand_in_crash_fails_the_test():
    """REST handlers, the CDN, bad headers and the gateway: every unhandled
    exception is answered (500 / close 1011) and fails the test at teardown."""
    import aiohttp

    from tests.standins.discord import DiscordStandIn
    from tests.standins.discord.state import Attachment

    server = DiscordStandIn()

    async def boom(request):
        raise RuntimeError("kaboom in a handler")

    server.app.router.add_get("/boom", boom)
    with pytest.raises(AssertionError, match="kaboom in a handler"):
        async with server:
            guild = server.create_guild()
            channel = guild.channel("general")
            server.cdn[(channel.id, 1)] = Attachment(1, "x.txt", b"x", "text/plain\r\nX-Evil: 1", "")
            async with aiohttp.ClientSession() as http:
                async with http.get(server.url + "/boom") as resp:
                    assert resp.status == 500
                async with http.get(f"{server.url}/attachments/{channel.id}/1/x.txt") as resp:
                    assert resp.status == 500
                async with http.ws_connect(server.gateway_url) as ws:
                    assert (await ws.receive_json())["op"] == 10
                    await ws.send_json({"op": 2, "d": {"token": server.bot_token, "intents": 1}})
                    assert (await ws.receive_json())["t"] == "READY"
                    await ws.send_json({"op": 8, "d": {"guild_id": "not-a-snowflake"}})
                    while not ws.closed:
                        await ws.receive()
                    assert ws.close_code == 1011
            assert len(server.internal_errors) == 3
            assert "GET /attachments" in server.internal_errors[1]
            assert "gateway op 8" in server.internal_errors[2]
            with pytest.raises(AssertionError, match="stand-in handler crashed"):
                server.assert_spec_conformance()

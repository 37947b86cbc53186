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

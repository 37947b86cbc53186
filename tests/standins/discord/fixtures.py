"""pytest fixtures and helpers to run a real discord.py bot against the stand-in.

Use in a test module::

    pytest_plugins = ("tests.standins.discord.fixtures",)

    async def test_ping(discord_server):
        guild = discord_server.create_guild()
        alice = guild.add_member("alice")
        bot = make_my_bot(**standin_client_kwargs())
        async with running_bot(bot, discord_server):
            result = await alice.slash("ping")
            assert result.content == "pong"

``running_bot`` points discord.py at the stand-in through its URL class
attributes (``discord.http.Route.BASE`` -- read when each ``Route`` is built,
also used by the webhook adapter for interaction callbacks -- and
``DiscordWebSocket.DEFAULT_GATEWAY``), starts ``bot.start(token)`` in the
running loop, waits for ``on_ready`` (or re-raises a startup failure), and
on exit closes the bot and restores the attributes.  The ``discord_server``
fixture validates every recorded REST exchange against the OpenAPI spec at
teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import discord
import discord.gateway
import discord.http
import pytest
import yarl

from .server import DiscordStandIn


def standin_client_kwargs(**overrides: Any) -> dict[str, Any]:
    """Client kwargs that make startup fast against the stand-in.

    ``guild_ready_timeout`` is how long discord.py waits after the last
    ``GUILD_CREATE`` before ``on_ready`` (default 2 s).
    """
    kwargs: dict[str, Any] = {
        "intents": discord.Intents.default() | discord.Intents(message_content=True, members=True),
        "guild_ready_timeout": 0.01,
        "chunk_guilds_at_startup": False,
    }
    kwargs.update(overrides)
    return kwargs


@contextlib.contextmanager
def pointed_at(server: DiscordStandIn) -> Iterator[None]:
    """Temporarily point discord.py's REST and gateway URLs at ``server``."""
    old_base = discord.http.Route.BASE
    old_gw = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = server.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(server.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gw


@contextlib.asynccontextmanager
async def running_bot(
    bot: discord.Client,
    server: DiscordStandIn,
    *,
    ready_timeout: float = 10.0,
    token: str | None = None,
) -> AsyncIterator[discord.Client]:
    """Run ``bot`` against ``server`` until the block exits (see module doc).

    ``bot.standin_task`` is the task running ``bot.start``; a test expecting a
    fatal gateway close can await it.
    """
    with pointed_at(server):
        task = asyncio.create_task(bot.start(token or server.bot_token), name="standin-bot")
        bot.standin_task = task  # type: ignore[attr-defined]
        ready = asyncio.create_task(bot.wait_until_ready())
        try:
            done, _ = await asyncio.wait(
                {task, ready}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                task.result()  # re-raise the startup failure
                raise RuntimeError("bot.start() returned before the bot was ready")
            if ready not in done:
                raise TimeoutError(f"bot not ready after {ready_timeout}s")
            yield bot
        finally:
            ready.cancel()
            if not bot.is_closed():
                await bot.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=5)


@pytest.fixture
async def discord_server() -> AsyncIterator[DiscordStandIn]:
    """A started stand-in; REST traffic is spec-validated at teardown."""
    server = DiscordStandIn()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    server.assert_spec_conformance()

"""Running the bot until a signal, and turning Discord's refusals into one clear sentence."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import aiohttp
import discord

from bot.client.bot import TunecordBot
from bot.errors import StartupError

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0
"""How long a shutdown waits for the interactions in progress (and their writes)."""

PORTAL = "https://discord.com/developers/applications"

TOKEN_REFUSED = (
    "Discord refused the bot token in DISCORD_TOKEN: reset it on the Bot page of your "
    f"application at {PORTAL} and put the new token in DISCORD_TOKEN"
)

INTENT_MISSING = (
    'Discord refused the connection because the "Message Content Intent" is off: turn it on '
    f"at {PORTAL} > your application > Bot > Privileged Gateway Intents (tunecord needs it to "
    'read messages in chat channels and for the "Add to dataset" capture)'
)


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (Ctrl-C) instead of the default abrupt exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(sig, stop.set)
    return stop


def describe_failure(exc: BaseException, api_base: str | None) -> str | None:
    """One sentence for a known way the client fails to start or stay connected."""
    if isinstance(exc, StartupError):
        return str(exc)
    if isinstance(exc, discord.LoginFailure):
        return TOKEN_REFUSED
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return INTENT_MISSING
    if isinstance(exc, discord.ConnectionClosed):
        if exc.code == 4004:
            return TOKEN_REFUSED
        return (
            f"Discord closed the connection for good (code {exc.code}: {exc.reason or 'no reason'})"
        )
    if isinstance(exc, (aiohttp.ClientError, OSError, discord.GatewayNotFound)):
        where = f"{api_base} (DISCORD_API_BASE)" if api_base else "discord.com"
        return f"cannot reach Discord at {where}: {exc or type(exc).__name__}"
    return None


async def serve(bot: TunecordBot, token: str, stop: asyncio.Event) -> None:
    """Run ``bot`` until ``stop`` is set, then let in-flight interactions finish and close it.

    A failure to start (or a fatal disconnect) raises :class:`StartupError`.
    """
    async with bot:  # closes the gateway and HTTP session however this ends
        if stop.is_set():
            return
        client = asyncio.create_task(bot.start(token), name="discord-client")
        stopping = asyncio.create_task(stop.wait(), name="stop-signal")
        try:
            await asyncio.wait({client, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if client.done():
            exc = client.exception()
            if exc is None:
                return
            sentence = describe_failure(exc, bot.settings.discord_api_base)
            if sentence is None:
                raise exc
            raise StartupError(sentence) from exc
        log.info("stopping: waiting for %d interaction(s) in progress", bot.in_flight.count)
        left = await bot.in_flight.drain(SHUTDOWN_GRACE_SECONDS)
        if left:
            log.warning("stopping with %d interaction(s) still running", left)
        await bot.close()
        with contextlib.suppress(Exception):
            await client

"""Benchmark: messages per second through the bot in channels where chat is off.

    python -m bench.bench_message_throughput [--messages 20000] [--rounds 3]

One process, one event loop: the Discord stand-in (``tests/standins/discord``) and, in
alternating rounds, one of two clients connected to it:

* **tunecord**: the real bot built by the composition root
  (:func:`tests.bot.inprocess.running_tunecord`, a real SQLite file) with ``/chat enable``
  on ``#chat``, plus a counter added the way the bot's cogs read messages (a message
  reader, run in the bot's one ``on_message`` task with the chat cog's reader);
* **bare**: a bare ``discord.Client`` with the same intents whose ``on_message`` counts.

Before each burst the messages are created in the stand-in without dispatching them
(``create_message(..., dispatch=False)``), in ``#quiet`` where chat is off, by 50
different members, with their gateway payloads built; 200 warm-up events go first. Then
``t0`` is taken, every ``MESSAGE_CREATE`` is queued to the bot's gateway connection at once,
and the burst ends when the counter has seen the last message and the event loop has run
every callback queued before it (the chat cog's reader of the last message included: it
runs before the counter's and finishes in one step when the channel is cached as
off). The rate is messages / (end - ``t0``).

The stand-in serialises and writes each frame in the same process (as it does for both
clients), so the rates are lower bounds on what the clients could take; their ratio is
what to compare. Target: >= 5,000 messages/s through the bot.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import discord

from bench.bench_stats_million import cpu_model
from bench.common import median
from bot.client.bot import MessageReader, bot_intents
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import DiscordStandIn, P
from tests.standins.discord.fixtures import running_bot, standin_client_kwargs
from tests.standins.discord.messages import create_message, event_payload

TARGET = 5_000.0
WARMUP = 200
WORDS = "hello lol anyone here the a my server game tonight who what why nice".split()


class Tally:
    """Counts ``on_message`` calls; ``done`` is set once ``target`` is reached."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = asyncio.Event()

    def expect(self, n: int) -> None:
        self.count = 0
        self.target = n
        self.done = asyncio.Event()

    async def seen(self) -> None:
        self.count += 1
        if self.count == self.target:
            # every listener task of the last message was created with this one: let
            # them (and anything queued before) run before the burst counts as handled
            for _ in range(3):
                await asyncio.sleep(0)
            self.done.set()


def counting_reader(tally: Tally) -> MessageReader:
    """Counts the way a cog of the bot reads messages: a message reader (see
    ``TunecordBot.on_message``), run in the bot's own ``on_message`` task."""

    def count(message: discord.Message) -> Coroutine[Any, Any, None]:
        return tally.seen()

    return count


class BareClient(discord.Client):
    def __init__(self, tally: Tally, **options: Any) -> None:
        super().__init__(**options)
        self.tally = tally

    async def on_message(self, message: discord.Message) -> None:
        await self.tally.seen()


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


async def burst(server: DiscordStandIn, payloads: list[dict[str, Any]], guild_id: int,
                tally: Tally, freeze: bool) -> float:  # fmt: skip
    """Seconds from queueing every event to the client having handled the last one."""
    tally.expect(len(payloads))
    if freeze:
        gc.collect()
        gc.freeze()  # the stand-in's world (every message so far) out of the collector's way
    start = time.perf_counter()
    for payload in payloads:
        server.gateway.dispatch_message("MESSAGE_CREATE", payload, guild_id)
    await asyncio.wait_for(tally.done.wait(), timeout=600)
    return time.perf_counter() - start


async def run(messages: int, rounds: int, freeze: bool) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"tunecord": [], "bare": []}
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        folder = Path(tmp)
        async with DiscordStandIn() as server:
            guild = server.create_guild("HQ", channels=("general", "chat", "quiet"))
            keepers = guild.create_role("keepers", permissions=P.MANAGE_CHANNELS)
            keeper = guild.add_member("keeper", roles=[keepers])
            members = [guild.add_member(f"member{i}") for i in range(50)]
            quiet = guild.channel("quiet")

            def payloads(n: int, offset: int) -> list[dict[str, Any]]:
                out = []
                for i in range(offset, offset + n):
                    author = server.world.users[members[i % len(members)].user.id]
                    words = " ".join(WORDS[(i * 5 + k) % len(WORDS)] for k in range(3 + i % 12))
                    msg = create_message(server, quiet, author, {"content": words}, dispatch=False)
                    out.append(event_payload(server, msg))
                return out

            async with running_tunecord(server, folder):
                done = await keeper.slash("chat enable", channel=guild.channel("chat"))
                if not done.content:
                    await done.next_followup()
            offset = 0
            for r in range(rounds):
                order = ("tunecord", "bare") if r % 2 == 0 else ("bare", "tunecord")
                for kind in order:
                    warm = payloads(WARMUP, offset)
                    events = payloads(messages, offset + WARMUP)
                    offset += WARMUP + messages
                    if kind == "tunecord":
                        async with running_tunecord(server, folder) as bot:
                            bot.message_readers.append(counting_reader(tally))
                            await burst(server, warm, guild.id, tally, freeze)
                            seconds = await burst(server, events, guild.id, tally, freeze)
                    else:
                        client = BareClient(tally, **standin_client_kwargs(intents=bot_intents()))
                        async with running_bot(client, server):
                            await burst(server, warm, guild.id, tally, freeze)
                            seconds = await burst(server, events, guild.id, tally, freeze)
                    rates[kind].append(messages / seconds)
                    print(f"round {r + 1}/{rounds} {kind}: {messages / seconds:,.0f}/s", flush=True)
            server.check_internal_errors()
            # the bot answered nothing: chat is off in #quiet
            assert all(m.author.id != server.bot_user.id for m in server.messages_in(quiet))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="events per burst")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per client")
    parser.add_argument("--no-freeze", action="store_true",
                        help="leave the stand-in's objects to the garbage collector")  # fmt: skip
    args = parser.parse_args()
    print(f"load average before: {load()}")
    rates = asyncio.run(run(args.messages, args.rounds, not args.no_freeze))
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} CPUs, load average {load()}")
    print(f"{args.messages:,} MESSAGE_CREATE events per burst, {args.rounds} bursts each, "
          f"gc.freeze() before each burst: {not args.no_freeze}")  # fmt: skip
    print("| client | median msg/s | best | worst | vs bare |")
    print("|---|---|---|---|---|")
    bare = median(rates["bare"])
    for kind in ("tunecord", "bare"):
        values = rates[kind]
        print(f"| {kind} | {median(values):,.0f} | {max(values):,.0f} | {min(values):,.0f} "
              f"| {median(values) / bare:.2f}x |")  # fmt: skip
    ours = median(rates["tunecord"])
    verdict = "met" if ours >= TARGET else "NOT met"
    print(f"\nthrough the bot: {ours:,.0f} messages/s (target >= {TARGET:,.0f}/s): {verdict}")


if __name__ == "__main__":
    main()

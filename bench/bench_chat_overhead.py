"""Benchmark: the bot's own overhead per chat answer, against a bare discord.py echo bot.

    python -m bench.bench_chat_overhead [--messages 200] [--block 20]

One process, one event loop: the Discord stand-in (``tests/standins/discord``), the OpenAI
stand-in (``tests/standins/openai``, stream pace 0: the whole answer is written at once)
and, in alternating blocks, one of two bots connected to the Discord stand-in:

* **tunecord**: the real bot built by the composition root
  (:func:`tests.bot.inprocess.running_tunecord`, ``backend="openai"`` pointed at the
  OpenAI stand-in, a real SQLite file), a dataset on ``gpt-4o-mini`` and ``/chat enable``
  on ``#chat`` (run as a member with Manage Channels);
* **echo**: a bare ``discord.Client`` with the same intents that replies to every human
  message with its text (``message.reply``: the same ``POST /channels/{id}/messages``).

Each block starts the bot, sends two warm-up messages (not counted), then ``--block``
messages, each from a different member (the bot's per-member cooldown never applies) and
each after the previous answer is complete; then the bot is closed and the other one
runs. Blocks alternate (and which bot goes first alternates each round), so both see the
same machine load.

For each message, ``t0`` is the moment the stand-in dispatched ``MESSAGE_CREATE`` (the
member's ``send`` returns right after it, without awaiting); the stand-in records every
REST call with the time it arrived, and a timing middleware added to the OpenAI
stand-in's app records when each backend request arrived and when its answer was fully
written. Figures per answer:

* **to the answer**: ``t0`` -> the bot's ``POST /channels/{id}/messages`` (the answer's
  first message), minus the backend's time inside that window. This is the headline,
  compared with the echo bot's ``t0`` -> its reply ``POST``;
* the same, also minus the Discord stand-in's own handling time of the bot's earlier REST
  calls (history, typing): what is left is the bot's own code and its HTTP clients;
* **to the first REST call**: ``t0`` -> the first REST call of any kind (for tunecord the
  answer's ``POST`` now: the context comes from the gateway after the channel's first
  answer, and the typing indicator is sent only when the backend takes over 0.25 s).

* **minus the backend call as the bot sees it**: ``t0`` -> the answer's ``POST``, minus
  the time from the chat stream's request to its first text *measured in the bot* (a
  timing wrapper around the bot's provider): what is left is tunecord's own code,
  discord.py and the answer's ``POST``, without the ``openai`` SDK and its HTTP client.

It prints p50/p95 in milliseconds for each and the ratios of the p50s (target: the bot's
overhead to the answer <= 1.3x the echo bot's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
from aiohttp import web

from bench.bench_stats_million import cpu_model
from bench.common import percentile, shared_tiktoken
from bot.client.bot import bot_intents
from bot.services.chat import BASE_NOTE_PREFIX
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import Channel, DiscordStandIn, GuildDriver, P
from tests.standins.discord.fixtures import running_bot, standin_client_kwargs
from tests.standins.openai.server import OpenAIStandin

TARGET = 1.3
MESSAGES_ROUTE = "/channels/{channel_id}/messages"
WARMUP = 2
PAUSE_S = 0.01
WORDS = "how why what when does the a my bot model answer train data server channel".split()


class EchoBot(discord.Client):
    """The baseline: replies to every message from a person with its text."""

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.webhook_id is not None or message.guild is None:
            return
        await message.reply(
            message.content, mention_author=False, allowed_mentions=discord.AllowedMentions.none()
        )


@dataclass
class Sample:
    first_rest: float
    to_answer: float
    own: float
    backend: float
    phases: list[tuple[str, float]] = field(default_factory=list)
    client_side: float = 0.0
    """To the answer minus the backend call as the bot sees it (see :class:`ClientTimes`)."""


@dataclass
class Results:
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {"tunecord": [], "echo": []})


@dataclass
class BackendTimes:
    """(arrived, answered) of every request the OpenAI stand-in handled."""

    calls: list[tuple[float, float]] = field(default_factory=list)

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def timing(request: web.Request, handler: Any) -> web.StreamResponse:
            start = time.monotonic()
            try:
                return await handler(request)
            finally:
                self.calls.append((start, time.monotonic()))

        return timing

    def within(self, start: float, end: float) -> float:
        """Backend seconds inside ``[start, end]``."""
        return sum(
            max(0.0, min(b, end) - max(a, start)) for a, b in self.calls if a < end and b > start
        )


@dataclass
class ClientTimes:
    """(request started, first text received) of every chat stream, as the bot sees them:
    the backend call including the ``openai`` SDK and its HTTP client."""

    calls: list[tuple[float, float]] = field(default_factory=list)

    def within(self, start: float, end: float) -> float:
        return sum(min(b, end) - a for a, b in self.calls if start <= a < end)


class TimedProvider:
    """The bot's provider, timing each chat stream from its request to its first text
    (everything else is passed through)."""

    def __init__(self, inner: Any, times: ClientTimes) -> None:
        self._inner = inner
        self._times = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def stream_chat(self, *args: Any, **kwargs: Any) -> Any:
        return _TimedStream(self._inner.stream_chat(*args, **kwargs), self._times)


class _TimedStream:
    def __init__(self, inner: Any, times: ClientTimes) -> None:
        self._inner, self._times, self._start = inner, times, 0.0

    async def __aenter__(self) -> _TimedStream:
        self._start = time.monotonic()
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._inner.__aexit__(*exc)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._deltas()

    async def _deltas(self) -> AsyncIterator[str]:
        first = True
        async for delta in self._inner:
            if first:
                self._times.calls.append((self._start, time.monotonic()))
                first = False
            yield delta


def text(i: int) -> str:
    words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(6 + i % 9)]
    return " ".join(words).capitalize() + f"? ({i})"


def sample_for(
    server: DiscordStandIn, backend: BackendTimes, channel: Channel, t0: float, start_index: int,
    client: ClientTimes,
) -> Sample:
    """The figures of the answer to the message dispatched at ``t0`` (see the module doc)."""
    window = [e for e in server.exchanges[start_index:] if e.started >= t0]
    first = window[0]
    post = next(
        e
        for e in window
        if e.method == "POST"
        and e.route == MESSAGES_ROUTE
        and e.path.endswith(f"/channels/{channel.id}/messages")
    )
    before = [e for e in window if e.started < post.started]
    backend_s = backend.within(t0, post.started)
    discord_s = sum(e.finished - e.started for e in before)
    to_answer = post.started - t0 - backend_s
    marks = [("dispatch", t0)]
    for e in before:
        name = f"{e.method} {(e.route or e.path).rsplit('/', 1)[-1]}"
        marks += [(f"{name} arrives", e.started), (f"{name} answered", e.finished)]
    for a, b in backend.calls:
        if t0 <= a < post.started:
            marks += [("backend request arrives", a), ("backend answer written", b)]
    marks.append(("answer POST arrives", post.started))
    marks.sort(key=lambda m: m[1])
    phases = [(f"{x[0]} -> {y[0]}", y[1] - x[1]) for x, y in zip(marks, marks[1:], strict=False)]
    client_side = post.started - t0 - client.within(t0, post.started)
    return Sample(first.started - t0, to_answer, to_answer - discord_s, backend_s, phases, client_side)


async def answered(server: DiscordStandIn, channel: Channel, asked_id: int, done: str) -> None:
    def find() -> bool:
        return any(
            m.reference_id == asked_id and m.author.id == server.bot_user.id and done in m.content
            for m in server.messages_in(channel)
        )

    await server.world.notifier.wait_for(find, 10.0, f"the answer to {asked_id}")


async def one_block(
    server: DiscordStandIn,
    backend: BackendTimes,
    client: ClientTimes,
    guild: GuildDriver,
    channel: Channel,
    members: list[Any],
    counter: list[int],
    size: int,
    done_text: Callable[[str], str],
    idle: Callable[[], Awaitable[None]],
) -> list[Sample]:
    samples = []
    for k in range(WARMUP + size):
        i = counter[0]
        counter[0] += 1
        member = members[i % len(members)]
        content = text(i)
        start_index = len(server.exchanges)
        msg = await member.send(channel, content)
        t0 = time.monotonic()  # send() dispatched MESSAGE_CREATE last, without awaiting
        await answered(server, channel, msg.id, done_text(content))
        await idle()
        await asyncio.sleep(PAUSE_S)
        if k >= WARMUP:
            samples.append(sample_for(server, backend, channel, t0, start_index, client))
    return samples


@contextlib.asynccontextmanager
async def tunecord_running(
    server: DiscordStandIn, openai: OpenAIStandin, folder: Path, client: ClientTimes
) -> AsyncIterator[Any]:
    async with running_tunecord(
        server,
        folder,
        backend="openai",
        openai_base_url=openai.base_url,
        openai_api_key=openai.config.api_key,
    ) as bot:
        bot.provider = TimedProvider(bot.provider, client)  # type: ignore[assignment]
        yield bot


async def run(messages: int, block: int) -> Results:
    shared_tiktoken()
    results = Results()
    backend = BackendTimes()
    client = ClientTimes()
    openai = OpenAIStandin()
    openai.app.middlewares.insert(0, backend.middleware())
    openai.set_stream_pace(0)
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        folder = Path(tmp)
        async with DiscordStandIn() as server:
            await openai.start()
            try:
                guild = server.create_guild("HQ", channels=("general", "chat", "echo"))
                keepers = guild.create_role("keepers", permissions=P.MANAGE_CHANNELS)
                keeper = guild.add_member("keeper", roles=[keepers])
                members = [guild.add_member(f"member{i}") for i in range(250)]
                chat, echo = guild.channel("chat"), guild.channel("echo")
                async with tunecord_running(server, openai, folder, client) as bot:
                    await bot.services.datasets.create(
                        guild.id, "marv", system_prompt="You are Marv.", base_model="gpt-4o-mini"
                    )
                    done = await keeper.slash("chat enable", channel=chat)
                    if not done.content:
                        await done.next_followup()
                counter = [0]
                rounds = max(1, messages // block)
                for r in range(rounds):
                    order = ("tunecord", "echo") if r % 2 == 0 else ("echo", "tunecord")
                    for kind in order:
                        if kind == "tunecord":
                            async with tunecord_running(server, openai, folder, client) as bot:

                                async def tunecord_idle(bot: Any = bot) -> None:
                                    while bot.in_flight.count:
                                        await asyncio.sleep(0.001)

                                got = await one_block(
                                    server, backend, client, guild, chat, members, counter, block,
                                    lambda _content: BASE_NOTE_PREFIX, tunecord_idle,
                                )  # fmt: skip
                        else:
                            echo_bot = EchoBot(**standin_client_kwargs(intents=bot_intents()))
                            async with running_bot(echo_bot, server):

                                async def no_wait() -> None:
                                    return None

                                got = await one_block(
                                    server, backend, client, guild, echo, members, counter, block,
                                    lambda content: content, no_wait,
                                )  # fmt: skip
                        results.samples[kind] += got
                    print(f"round {r + 1}/{rounds} done", flush=True)
                server.check_internal_errors()
                openai.check_internal_errors()
            finally:
                await openai.stop()
    return results


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def report(results: Results) -> None:
    t, e = results.samples["tunecord"], results.samples["echo"]

    def stats(values: list[float]) -> tuple[float, float]:
        return percentile(values, 0.5), percentile(values, 0.95)

    rows = [
        ("to the answer, minus the backend", [s.to_answer for s in t], [s.to_answer for s in e]),
        ("  ... and minus Discord's handling of earlier calls", [s.own for s in t],
         [s.own for s in e]),
        ("to the first REST call (any)", [s.first_rest for s in t], [s.first_rest for s in e]),
        ("to the answer, minus the backend call as the bot sees it (SDK, HTTP)",
         [s.client_side for s in t], [s.to_answer for s in e]),
    ]  # fmt: skip
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} CPUs, load average {load()}")
    print(f"answers: tunecord {len(t)}, echo {len(e)}")
    print(f"backend time inside tunecord's window: p50 {ms(percentile([s.backend for s in t], .5))}"
          f" ms, p95 {ms(percentile([s.backend for s in t], .95))} ms")  # fmt: skip
    print("| measure | tunecord p50 ms | p95 ms | echo p50 ms | p95 ms | ratio (p50) |")
    print("|---|---|---|---|---|---|")
    for name, tv, ev in rows:
        (tp50, tp95), (ep50, ep95) = stats(tv), stats(ev)
        print(
            f"| {name} | {ms(tp50)} | {ms(tp95)} | {ms(ep50)} | {ms(ep95)} | {tp50 / ep50:.2f}x |"
        )
    shapes: dict[tuple[str, ...], list[Sample]] = {}
    for sample in t:
        shapes.setdefault(tuple(name for name, _ in sample.phases), []).append(sample)
    names, common = max(shapes.items(), key=lambda item: len(item[1]))
    print(f"\ntunecord, where the time goes ({len(common)} of {len(t)} answers in this order):")
    print("| step | p50 ms |")
    print("|---|---|")
    for k, name in enumerate(names):
        print(f"| {name} | {ms(percentile([s.phases[k][1] for s in common], 0.5))} |")
    ratio = percentile([s.to_answer for s in t], 0.5) / percentile([s.to_answer for s in e], 0.5)
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"\noverhead to the answer: {ratio:.2f}x the echo bot (target <= {TARGET}x): {verdict}")


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="answers measured per bot")
    parser.add_argument("--block", type=int, default=20, help="answers per block")
    args = parser.parse_args()
    print(f"load average before: {load()}")
    report(asyncio.run(run(args.messages, args.block)))


if __name__ == "__main__":
    main()

"""The recent messages kept per channel: seeding merges what arrived meanwhile, edits and
deletions apply, a failed read leaves the channel unseeded, the bounds hold."""

from __future__ import annotations

import asyncio

import pytest

from bot.client.channel_memory import CHANNELS, KEPT_PER_CHANNEL, ChannelMemory
from bot.services.chat import ContextMessage


def turn(text: str, author: int = 1) -> ContextMessage:
    return ContextMessage(author, text, from_bot=False)


def reader(*pairs: tuple[int, str]):
    calls = []

    async def fetch():
        calls.append(1)
        return [(i, turn(t)) for i, t in pairs]

    fetch.calls = calls  # type: ignore[attr-defined]
    return fetch


async def texts(memory: ChannelMemory, channel: int, before: int, fetch, limit: int = 19):
    return [m.text for m in await memory.history(channel, before, limit, fetch)]


async def test_one_read_then_the_gateway_keeps_it():
    memory = ChannelMemory()
    fetch = reader((1, "a"), (2, "b"))
    assert not memory.remembers(7)
    memory.observe(7, 3, turn("ignored: not remembered yet"))
    assert not memory.remembers(7)
    assert await texts(memory, 7, 3, fetch) == ["a", "b"]  # the unremembered one is not kept
    memory.observe(7, 3, turn("c"))
    memory.observe(7, 4, turn("d"))
    assert await texts(memory, 7, 5, fetch) == ["a", "b", "c", "d"]
    assert await texts(memory, 7, 4, fetch, limit=2) == ["b", "c"]
    assert len(fetch.calls) == 1
    assert await texts(memory, 8, 5, reader()) == []  # another channel is its own


async def test_messages_arriving_during_the_read_are_merged_and_deletions_respected():
    memory = ChannelMemory()
    gate = asyncio.Event()

    async def slow_fetch():
        await gate.wait()
        return [(1, turn("old")), (2, turn("deleted meanwhile")), (3, turn("stale copy"))]

    reading = asyncio.create_task(memory.history(7, 10, 19, slow_fetch))
    await asyncio.sleep(0)
    assert memory.remembers(7)
    memory.observe(7, 3, turn("edited copy"))  # the gateway's newer version wins
    memory.observe(7, 4, turn("new"))
    memory.deleted(7, [2])
    gate.set()
    assert [m.text for m in await reading] == ["old", "edited copy", "new"]


async def test_edits_and_deletions_change_the_kept_text():
    memory = ChannelMemory()
    await memory.history(7, 5, 19, reader((1, "a"), (2, "b"), (3, "c")))
    memory.edited(7, 2, turn("b, edited"))
    memory.edited(7, 3, None)  # no longer a turn (e.g. its text was removed)
    memory.deleted(7, [1])
    memory.edited(7, 99, turn("ignored elsewhere"))  # another channel
    assert await texts(memory, 7, 5, reader()) == ["b, edited"]


async def test_a_failed_read_leaves_the_channel_unseeded():
    memory = ChannelMemory()

    async def refused():
        raise PermissionError("no Read Message History")

    with pytest.raises(PermissionError):
        await memory.history(7, 5, 19, refused)
    assert not memory.remembers(7)
    fetch = reader((1, "a"))
    assert await texts(memory, 7, 5, fetch) == ["a"] and len(fetch.calls) == 1


async def test_a_new_session_forgets_everything_and_reads_again():
    memory = ChannelMemory()
    first = reader((1, "a"))
    await memory.history(7, 5, 19, first)
    memory.forget()
    assert not memory.remembers(7)
    second = reader((1, "a"), (2, "sent while disconnected"))
    assert await texts(memory, 7, 5, second) == ["a", "sent while disconnected"]


async def test_bounds_per_channel_and_channels():
    memory = ChannelMemory()
    await memory.history(1, 10_000, 19, reader())
    for i in range(1, 200):
        memory.observe(1, i, turn(str(i)))
    kept = await memory.history(1, 10_000, 1_000, reader())
    assert [m.text for m in kept] == [str(i) for i in range(200 - KEPT_PER_CHANNEL, 200)]
    for channel in range(2, CHANNELS + 10):
        await memory.history(channel, 5, 19, reader())
    assert not memory.remembers(1) and memory.remembers(CHANNELS + 9)

"""Streaming an answer into Discord messages (``bot.client.stream_editor``), end to end.

The real bot runs against the Discord stand-in; each test calls :func:`stream_answer` with
the bot's own channel and message objects and a paced async generator standing for the
model, then checks what the stand-in recorded: messages, edits, typing, pings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.client.chat_split import MESSAGE_LIMIT, split_message
from bot.client.stream_editor import stream_answer
from tests.bot.inprocess import running_tunecord
from tests.client.test_chat_split import code_answer, fence_lines
from tests.standins.discord import P

pytest_plugins = ("tests.standins.discord.fixtures",)

MESSAGES = "/channels/{channel_id}/messages"
MESSAGE = "/channels/{channel_id}/messages/{message_id}"
TYPING = "/channels/{channel_id}/typing"
NOTE = "*(The answer was cut short.)*"


class Model:
    """An async iterator of text deltas, paced like a model, that records being closed."""

    def __init__(self, chunks: list[str], delay: float = 0.0, *, first_delay: float = 0.0,
                 fail: Exception | None = None) -> None:  # fmt: skip
        self.chunks, self.delay, self.first_delay, self.fail = chunks, delay, first_delay, fail
        self.closed = False
        self.sent = 0

    async def deltas(self) -> AsyncIterator[str]:
        try:
            await asyncio.sleep(self.first_delay)
            for chunk in self.chunks:
                yield chunk
                self.sent += 1
                await asyncio.sleep(self.delay)
            if self.fail is not None:
                raise self.fail
        finally:
            self.closed = True


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.fixture
async def world(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ", channels=("general",))
    alice = guild.add_member("alice")
    async with running_tunecord(discord_server, tmp_path) as bot:
        yield guild, bot, alice


async def ask(world, text: str = "a question"):
    """Alice asks in #general: the stand-in's message and the bot's view of it."""
    guild, bot, alice = world
    general = guild.channel("general")
    asked = await alice.send(general, text)
    channel = bot.get_channel(general.id)
    return general, asked, channel, await channel.fetch_message(asked.id)


def answers(server, channel, asked):
    """The bot's messages in ``channel`` after ``asked``, oldest first."""
    return [
        m for m in server.messages_in(channel)
        if m.id > asked.id and m.author.id == server.world.bot_user.id
    ]  # fmt: skip


def exchanges(server, method: str, route: str, channel) -> list:
    return [
        e for e in server.calls(method, route) if e.path.split("/")[4] == str(channel.id)
    ]  # fmt: skip


async def test_edits_at_most_once_per_interval_then_once_more_at_the_end(world, discord_server):
    general, asked, channel, question = await ask(world)
    words = [f"word{i} " for i in range(40)]
    model = Model(words, delay=0.04)
    interval = 0.3
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await stream_answer(
        channel, model.deltas(), reply_to=question, interval=interval, error_note=NOTE
    )
    took = loop.time() - began
    [answer] = answers(discord_server, general, asked)
    assert answer.content == "".join(words).strip() == result.text.strip()
    assert result.error is None and model.closed
    edits = exchanges(discord_server, "PATCH", MESSAGE, general)
    [send] = exchanges(discord_server, "POST", MESSAGES, general)[-1:]
    assert all(e.request_json["allowed_mentions"] == {"parse": []} for e in edits)
    # streamed: several edits, none closer than the interval, except the final one
    assert 2 <= len(edits) <= int(took / interval) + 2
    starts = [send.started] + [e.started for e in edits]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps[:-1]) >= interval - 0.05, gaps


async def test_typing_until_the_first_text_then_a_reply_without_a_ping(world, discord_server):
    general, asked, channel, question = await ask(world)
    model = Model(["  ", "\n", "Hello", " there"], first_delay=0.8)
    result = await stream_answer(channel, model.deltas(), reply_to=question, error_note=NOTE)
    [answer] = answers(discord_server, general, asked)
    assert answer.content == "Hello there"
    assert answer.reference_id == asked.id and not answer.pings  # a reply, pinging nobody
    [typing] = exchanges(discord_server, "POST", TYPING, general)
    [send] = exchanges(discord_server, "POST", MESSAGES, general)
    assert typing.started < send.started and send.started - typing.started >= 0.4
    assert send.request_json["allowed_mentions"] == {"parse": [], "replied_user": False}
    assert [m.id for m in result.messages] == [answer.id]


async def test_a_quick_answer_needs_no_typing_indicator(world, discord_server):
    general, asked, channel, question = await ask(world)
    model = Model(["Hello", " there"], first_delay=0.0)
    await stream_answer(channel, model.deltas(), reply_to=question, error_note=NOTE)
    [answer] = answers(discord_server, general, asked)
    assert answer.content == "Hello there"
    assert exchanges(discord_server, "POST", TYPING, general) == []


async def test_a_5000_character_answer_with_a_code_block_is_split(world, discord_server):
    text = code_answer()
    general, asked, channel, question = await ask(world)
    model = Model(pieces(text, 150), delay=0.005)
    result = await stream_answer(
        channel, model.deltas(), reply_to=question, interval=0.05, error_note=NOTE
    )
    sent = answers(discord_server, general, asked)
    contents = [m.content for m in sent]
    assert [m.content for m in result.messages] == contents
    assert len(sent) == 3
    assert sent[0].reference_id == asked.id and sent[1].reference_id is None
    assert all(len(c) <= MESSAGE_LIMIT and len(fence_lines(c)) % 2 == 0 for c in contents)
    assert contents[1].startswith("```python\n") and contents[2].startswith("```python\n")
    code = [line for c in contents for line in c.split("\n") if line.startswith("    total")]
    assert code == [f"    total += values[{i}]  # step {i}" for i in range(80)]
    assert "".join("".join(c.split()) for c in contents).replace("```python", "").replace(
        "```", ""
    ) == "".join(text.split()).replace("```python", "").replace("```", "")
    # a message is final once the next one is sent: it is never edited after that
    posts = exchanges(discord_server, "POST", MESSAGES, general)[-3:]
    assert [int(p.response_json["id"]) for p in posts] == [m.id for m in sent]
    edits = exchanges(discord_server, "PATCH", MESSAGE, general)
    for message, following in zip(sent, posts[1:], strict=False):
        edited = [e.started for e in edits if e.path.endswith(f"/{message.id}")]
        assert all(started < following.started for started in edited)
    assert len(edits) >= 3 and not any(m.pings for m in sent)


async def test_an_answer_in_one_piece_is_split_like_split_message(world, discord_server):
    text = code_answer()
    general, asked, channel, question = await ask(world)
    await stream_answer(channel, Model([text]).deltas(), reply_to=question, error_note=NOTE)
    assert [m.content for m in answers(discord_server, general, asked)] == split_message(text)
    assert not exchanges(discord_server, "PATCH", MESSAGE, general)  # sent whole: no edits


async def test_model_output_with_mentions_pings_nobody(world, discord_server):
    guild, bot, alice = world
    staff = guild.create_role("staff", mentionable=True)
    general, asked, channel, question = await ask(world)
    loud = f"@everyone and @here, ask <@&{staff.id}> or <@{alice.user.id}>! " * 3
    control = await alice.send(general, loud)  # the same text from a member does ping
    assert control.pings.everyone and control.pings.roles == {staff.id}
    model = Model(pieces(loud * 40, 97), delay=0.002)  # ~5,000 characters: sends and edits
    result = await stream_answer(
        channel, model.deltas(), reply_to=question, interval=0.05, error_note=NOTE
    )
    sent = answers(discord_server, general, control)
    assert len(sent) >= 3 and result.messages
    assert exchanges(discord_server, "PATCH", MESSAGE, general)
    assert not any(m.pings for m in sent)
    assert "@everyone" in sent[0].content and f"<@&{staff.id}>" in sent[0].content


async def test_an_error_midway_keeps_the_text_and_appends_the_note(world, discord_server):
    general, asked, channel, question = await ask(world)
    model = Model(["The first ", "half of an ", "answer"], delay=0.01, fail=RuntimeError("down"))
    result = await stream_answer(channel, model.deltas(), reply_to=question, error_note=NOTE)
    [answer] = answers(discord_server, general, asked)
    assert answer.content == f"The first half of an answer\n\n{NOTE}"
    assert isinstance(result.error, RuntimeError) and result.text == "The first half of an answer"
    assert model.closed


async def test_an_error_inside_a_code_block_closes_it_before_the_note(world, discord_server):
    general, asked, channel, question = await ask(world)
    model = Model(["Try:\n```sh\n", "make all\n"], fail=ConnectionError("reset"))
    await stream_answer(
        channel, model.deltas(), reply_to=question,
        error_note=lambda exc: f"*(stopped: {type(exc).__name__})*",
    )  # fmt: skip
    [answer] = answers(discord_server, general, asked)
    assert answer.content == "Try:\n```sh\nmake all\n```\n\n*(stopped: ConnectionError)*"


async def test_an_error_before_any_text_sends_the_note_alone(world, discord_server):
    general, asked, channel, question = await ask(world)
    model = Model([], fail=TimeoutError())
    result = await stream_answer(channel, model.deltas(), reply_to=question, error_note=NOTE)
    [answer] = answers(discord_server, general, asked)
    assert answer.content == NOTE and answer.reference_id == asked.id and not answer.pings
    assert isinstance(result.error, TimeoutError) and model.closed


async def test_an_empty_answer_sends_the_empty_note_or_nothing(world, discord_server):
    general, asked, channel, question = await ask(world)
    await stream_answer(channel, Model([" ", "\n"]).deltas(), reply_to=question, error_note=NOTE)
    [answer] = answers(discord_server, general, asked)
    assert answer.content == "*(The model returned an empty answer.)*"
    result = await stream_answer(
        channel, Model([]).deltas(), reply_to=question, error_note=NOTE, empty_note=None
    )
    assert result.messages == [] and len(answers(discord_server, general, asked)) == 1


async def test_a_deleted_answer_stops_the_stream(world, discord_server):
    guild, bot, alice = world
    mod = guild.add_member("mod", roles=[guild.create_role("mods", permissions=P.MANAGE_MESSAGES)])
    general, asked, channel, question = await ask(world)
    model = Model([f"part {i} " for i in range(200)], delay=0.01)

    async def delete_the_answer() -> None:
        first = await discord_server.wait_for_message(general, after=asked)
        await mod.delete(first)

    deleting = asyncio.create_task(delete_the_answer())
    result = await stream_answer(
        channel, model.deltas(), reply_to=question, interval=0.05, error_note=NOTE
    )
    await deleting
    assert result.removed and model.closed and model.sent < 200
    assert answers(discord_server, general, asked) == []


async def test_a_deleted_question_still_gets_its_answer(world, discord_server):
    guild, bot, alice = world
    general, asked, channel, question = await ask(world)
    await alice.delete(asked)
    await stream_answer(channel, Model(["still here"]).deltas(), reply_to=question, error_note=NOTE)
    [answer] = answers(discord_server, general, asked)
    assert answer.content == "still here" and answer.reference_id is None

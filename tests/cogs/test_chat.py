"""Chat channels end to end: the real bot between the Discord and OpenAI stand-ins."""

from __future__ import annotations

import asyncio

import pytest
from openai import AsyncOpenAI

from bot.services.chat import BASE_NOTE_PREFIX, COOLDOWN_SECONDS
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import CommandNotPermitted, P
from tests.standins.discord.messages import create_message
from tests.standins.openai import base_answer
from tests.standins.openai import fixtures as standin_fixtures
from tests.standins.openai.datasets import chat_example, jsonl

pytest_plugins = ("tests.standins.discord.fixtures",)
openai_server = standin_fixtures.openai_server

PROMPT = "You are Marv, a reluctant helper."
BASE = "gpt-4o-mini-2024-07-18"


def backend(openai_server, **extra):
    return {
        "backend": "openai",
        "openai_base_url": openai_server.base_url,
        "openai_api_key": openai_server.config.api_key,
        "provider_timeout": 1.0,
        "provider_max_retries": 1,
        **extra,
    }


@pytest.fixture
async def world(discord_server, openai_server, tmp_path):
    guild = discord_server.create_guild("HQ", channels=("general", "chat", "other"))
    keepers = guild.create_role("keepers", permissions=P.MANAGE_CHANNELS)
    people = {
        "keeper": guild.add_member("keeper", roles=[keepers]),
        "alice": guild.add_member("alice"),
        "bob": guild.add_member("bob"),
        "carol": guild.add_member("carol"),
        "dave": guild.add_member("dave"),
    }
    async with running_tunecord(discord_server, tmp_path, **backend(openai_server)) as bot:
        await bot.services.datasets.create(
            guild.id, "marv", system_prompt=PROMPT, base_model="gpt-4o-mini"
        )
        yield guild, bot, people


def bot_messages(server, channel):
    return [m for m in server.messages_in(channel) if m.author.id == server.bot_user.id]


async def final_answer(server, channel, after, expected, timeout=5.0):
    """The bot's answer to ``after`` once its text is ``expected``."""

    def find():
        for m in server.messages_in(channel):
            if m.id > after.id and m.author.id == server.bot_user.id and m.content == expected:
                return m
        return None

    return await server.world.notifier.wait_for(find, timeout, f"the answer {expected[:40]!r}")


async def answer_containing(server, channel, after, text, timeout=5.0):
    def find():
        for m in server.messages_in(channel):
            if m.id > after.id and m.author.id == server.bot_user.id and text in m.content:
                return m
        return None

    return await server.world.notifier.wait_for(find, timeout, f"an answer with {text!r}")


def base_reply(user_text: str, system: str | None = PROMPT, model: str = BASE) -> str:
    note = f"{BASE_NOTE_PREFIX} `{model}`: no fine-tuned model is active in this server yet."
    return f"{base_answer(model, system, user_text)}\n\n{note}"


async def enable(guild, people, name="chat"):
    done = await people["keeper"].slash("chat enable", channel=guild.channel(name))
    assert done.ephemeral
    reply = await done.next_followup() if not done.content else done
    return reply


# -- /chat enable | disable ---------------------------------------------------------------


async def test_enable_and_disable_need_manage_channels(world, discord_server):
    guild, bot, people = world
    command = discord_server.command("chat")
    assert command["default_member_permissions"] == str(P.MANAGE_CHANNELS)

    with pytest.raises(CommandNotPermitted):
        await people["alice"].slash("chat enable", channel=guild.channel("chat"))
    forced = await people["alice"].slash("chat enable", channel=guild.channel("chat"), force=True)
    assert forced.ephemeral and "Manage Channels" in forced.content
    assert await bot.storage.channels.list_all(guild.id) == []

    done = await people["keeper"].slash("chat enable", channel=guild.channel("chat"))
    followup = await done.next_followup()
    assert "answer every message" in followup.content and followup.ephemeral
    assert [c.channel_id for c in await bot.storage.channels.list_all(guild.id)] == [
        guild.channel("chat").id
    ]

    forced = await people["alice"].slash("chat disable", channel=guild.channel("chat"), force=True)
    assert "Manage Channels" in forced.content
    done = await people["keeper"].slash("chat disable", channel=guild.channel("chat"))
    assert "no longer" in (await done.next_followup()).content
    assert await bot.storage.channels.list_all(guild.id) == []


# -- who gets an answer -----------------------------------------------------------------------


async def test_answers_in_chat_channels_and_their_threads_with_model_and_system_prompt(
    world, discord_server, openai_server
):
    guild, bot, people = world
    await enable(guild, people)
    chat = guild.channel("chat")
    asked = await people["alice"].send(chat, "hello there")
    answer = await final_answer(discord_server, chat, asked, base_reply("hello there"))
    assert answer.reference_id == asked.id and not answer.pings
    [call] = openai_server.chat_log
    assert call.model == BASE and call.system_prompt == PROMPT and call.stream

    thread = guild.create_thread(chat, "side talk", owner=people["bob"])
    asked = await people["bob"].send(thread, "in a thread")
    await final_answer(discord_server, thread, asked, base_reply("in a thread"))


async def test_silent_elsewhere_unless_mentioned_or_replied_to(world, discord_server, openai_server):
    guild, bot, people = world
    await enable(guild, people)
    other = guild.channel("other")
    me = discord_server.bot_user
    ignored = await people["alice"].send(other, "just talking")
    asked = await people["bob"].send(other, f"<@{me.id}> are you there?")
    # not a reply: the recent messages of the channel are the context
    first = await final_answer(
        discord_server, other, asked, base_reply("just talking\nare you there?")
    )
    # a reply to the bot's answer is answered too, with the chain as context
    follow = await people["carol"].send(other, "why?", reply_to=first)
    await final_answer(discord_server, other, follow, base_reply("why?"))
    assert len(openai_server.chat_log) == 2
    assert [m.reference_id for m in bot_messages(discord_server, other)] == [asked.id, follow.id]
    assert ignored.id not in {m.reference_id for m in bot_messages(discord_server, other)}
    chain = openai_server.chat_log[1].messages
    assert [(m["role"], m["content"]) for m in chain] == [
        ("system", PROMPT),
        ("user", "are you there?"),
        ("assistant", base_answer(BASE, PROMPT, "just talking\nare you there?")),
        ("user", "why?"),
    ]


async def test_never_answers_bots_webhooks_or_itself(world, discord_server, openai_server):
    guild, bot, people = world
    await enable(guild, people)
    chat = guild.channel("chat")
    other_bot = guild.add_member(discord_server.world.add_user("otherbot", bot=True))
    await other_bot.send(chat, "beep boop")
    create_message(discord_server, chat, discord_server.world.users[other_bot.id],
                   {"content": "webhook says hi"}, webhook=True)  # fmt: skip
    asked = await people["alice"].send(chat, "a person")
    answer = await final_answer(discord_server, chat, asked, base_reply("a person"))
    assert len(openai_server.chat_log) == 1
    # its own answer (a MESSAGE_CREATE it receives) is not answered either
    assert bot_messages(discord_server, chat) == [answer]
    # and the bots' messages are no part of the context
    assert [m["content"] for m in openai_server.chat_log[0].messages] == [PROMPT, "a person"]


# -- context --------------------------------------------------------------------------------------


async def test_recent_history_is_the_context_when_not_a_reply(world, discord_server, openai_server):
    guild, bot, people = world
    await enable(guild, people)
    chat = guild.channel("chat")
    earlier = await people["bob"].send(chat, "earlier words")
    await final_answer(discord_server, chat, earlier, base_reply("earlier words"))
    asked = await people["alice"].send(chat, "now answer")
    await answer_containing(discord_server, chat, asked, BASE_NOTE_PREFIX)
    call = openai_server.chat_log[-1]
    assert call.messages == [
        {"role": "system", "content": PROMPT},
        {"role": "user", "content": "earlier words"},
        {"role": "assistant", "content": base_answer(BASE, PROMPT, "earlier words")},
        {"role": "user", "content": "now answer"},
    ]


async def test_a_reply_chain_is_the_context_not_the_channel(world, discord_server, openai_server):
    guild, bot, people = world
    await enable(guild, people)
    chat = guild.channel("chat")
    asked = await people["alice"].send(chat, "what is topic 1?")
    first = await answer_containing(discord_server, chat, asked, BASE_NOTE_PREFIX)
    await final_answer(discord_server, chat, asked, base_reply("what is topic 1?"))
    chatter = await people["carol"].send(chat, "unrelated chatter")  # answered too
    await answer_containing(discord_server, chat, chatter, BASE_NOTE_PREFIX)
    follow = await people["bob"].send(chat, "and topic 2?", reply_to=first)
    await final_answer(discord_server, chat, follow, base_reply("and topic 2?"))
    [call] = [c for c in openai_server.chat_log if c.last_user == "and topic 2?"]
    assert [m["content"] for m in call.messages] == [
        PROMPT,
        "what is topic 1?",
        base_answer(BASE, PROMPT, "what is topic 1?"),  # the note is not part of the context
        "and topic 2?",
    ]


async def test_long_history_is_trimmed_to_the_model_context(
    discord_server, openai_server, tmp_path
):
    """gpt-3.5-turbo (16,385 tokens, 4,096 kept for the answer): the oldest messages go."""
    openai_server.models.enforce_shutdown_dates = False
    guild = discord_server.create_guild("HQ", channels=("chat",))
    people = [guild.add_member(f"m{i}") for i in range(12)]
    settings = backend(openai_server, provider_timeout=30.0)
    async with running_tunecord(discord_server, tmp_path, **settings) as bot:
        await bot.services.datasets.create(guild.id, "d", base_model="gpt-3.5-turbo")
        chat = guild.channel("chat")
        block = " ".join(f"{j * 7919 % 10007:x}q" for j in range(330))  # 1,278 tokens, 1,834 chars
        for i, member in enumerate(people[:-1]):
            await member.send(chat, f"old{i} {block}")
        me = discord_server.bot_user.id  # chat is off here: a mention, with recent history
        asked = await people[-1].send(chat, f"<@{me}> the question")
        first = await discord_server.wait_for_message(chat, after=asked, timeout=20)
        assert first.content.startswith("["), first.content  # the answer, not a notice
        await answer_containing(discord_server, chat, asked, BASE_NOTE_PREFIX, timeout=30)
        [call] = openai_server.chat_log
        [user] = [m["content"] for m in call.messages if m["role"] == "user"]
        kept = [line.split()[0] for line in user.splitlines()]
        assert kept[-1] == "the" and "old0" not in kept
        assert kept[:-1] == [f"old{i}" for i in range(11 - len(kept) + 1, 11)]
        assert call.system_prompt is None


# -- what the answer looks like -----------------------------------------------------------------


async def test_model_output_with_everyone_and_role_mentions_pings_nobody(world, discord_server):
    guild, bot, people = world
    await enable(guild, people)
    chat = guild.channel("chat")
    role = guild.create_role("pingme")
    text = f"@everyone @here <@&{role.id}> <@{people['bob'].id}> look"
    asked = await people["keeper"].send(chat, text)
    answer = await answer_containing(discord_server, chat, asked, BASE_NOTE_PREFIX)
    assert "@everyone" in answer.content and f"<@&{role.id}>" in answer.content
    assert not answer.pings


async def fine_tuned_model(openai_server, examples) -> str:
    client = AsyncOpenAI(base_url=openai_server.base_url, api_key=openai_server.config.api_key)
    try:
        f = await client.files.create(file=("t.jsonl", jsonl(examples)), purpose="fine-tune")
        job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=f.id)
        openai_server.jobs.run_to_completion(job.id)
        job = await client.fine_tuning.jobs.retrieve(job.id)
        assert job.fine_tuned_model
        return job.fine_tuned_model
    finally:
        await client.close()


async def test_a_5000_character_answer_with_code_arrives_split(world, discord_server, openai_server):
    guild, bot, people = world
    code = "\n".join(f"    print('line {i:04d} of the long program')" for i in range(130))
    long = "Here is the program:\n```python\n" + code + "\n```\nThat is all."
    assert len(long) > 5000
    examples = [chat_example("show me the long program", long)] + [
        chat_example(f"what is topic {i}?", f"topic {i} is fun") for i in range(9)
    ]
    model = await fine_tuned_model(openai_server, examples)
    await bot.storage.active_models.set(guild.id, model, system_prompt=PROMPT)
    await enable(guild, people)
    chat = guild.channel("chat")
    asked = await people["alice"].send(chat, "show me the long program")
    await answer_containing(discord_server, chat, asked, "That is all.", timeout=10)
    parts = [m.content for m in bot_messages(discord_server, chat)]
    assert len(parts) == 3
    assert all(len(p) <= 2000 for p in parts)
    assert all(p.count("```") % 2 == 0 for p in parts)  # every part's code block is closed
    lines = [line for p in parts for line in p.splitlines() if "print(" in line]
    assert lines == code.splitlines()  # every line whole, in order
    assert BASE_NOTE_PREFIX not in parts[-1]  # a fine-tuned model answered
    call = openai_server.chat_log[-1]
    assert call.model == model and call.system_prompt == PROMPT


# -- limits -------------------------------------------------------------------------------------


async def test_cooldown_gets_one_short_notice(world, discord_server, openai_server):
    guild, bot, people = world
    await enable(guild, people)
    chat = guild.channel("chat")
    asked = await people["alice"].send(chat, "first")
    again = await people["alice"].send(chat, "second")
    third = await people["alice"].send(chat, "third")
    notice = await answer_containing(discord_server, chat, again, "Slow down")
    assert notice.reference_id == again.id and not notice.pings
    await final_answer(discord_server, chat, asked, base_reply("first"))
    assert [c.last_user for c in openai_server.chat_log] == ["first"]
    assert third.id not in {m.reference_id for m in bot_messages(discord_server, chat)}
    assert f"{COOLDOWN_SECONDS:g} seconds" in notice.content


async def test_channel_concurrency_cap_gets_a_busy_notice(world, discord_server, openai_server):
    guild, bot, people = world
    await enable(guild, people)
    chat = guild.channel("chat")
    openai_server.set_stream_pace(0.05)
    words = " ".join(f"word{i}" for i in range(15))
    first = await people["alice"].send(chat, words)
    second = await people["bob"].send(chat, words)
    await answer_containing(discord_server, chat, first, "[base:")
    third = await people["carol"].send(chat, words)
    notice = await answer_containing(discord_server, chat, third, "already answering")
    assert notice.reference_id == third.id
    openai_server.set_stream_pace(0)
    for asked in (first, second):
        await final_answer(discord_server, chat, asked, base_reply(words), timeout=10)
    assert len(openai_server.chat_log) == 2


# -- backend errors -----------------------------------------------------------------------------

ROUTE = "POST /v1/chat/completions"


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("rate_limit", "busy right now"),
        ("server_error", "not answering right now"),
        ("timeout", "not answering right now"),
        ("drop", "not answering right now"),
    ],
)
async def test_backend_faults_become_a_short_message(world, discord_server, openai_server, fault, says):
    guild, bot, people = world
    await enable(guild, people)
    chat = guild.channel("chat")
    if fault == "timeout":
        openai_server.faults.timeout(ROUTE, times=None, delay=3.0)
    else:
        getattr(openai_server.faults, fault)(ROUTE, times=None)
    asked = await people["alice"].send(chat, "hello?")
    reply = await answer_containing(discord_server, chat, asked, says, timeout=15)
    assert len(reply.content) < 200 and "Traceback" not in reply.content
    assert openai_server.config.api_key not in reply.content
    openai_server.faults.clear()
    again = await people["bob"].send(chat, "better now?")
    await final_answer(discord_server, chat, again, base_reply("better now?"), timeout=10)


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "timeout", "drop"])
async def test_a_fault_the_retry_covers_ends_in_the_answer(world, discord_server, openai_server, fault):
    guild, bot, people = world
    await enable(guild, people)
    chat = guild.channel("chat")
    if fault == "timeout":
        armed = openai_server.faults.timeout(ROUTE, times=1, delay=3.0)
    else:
        armed = getattr(openai_server.faults, fault)(ROUTE, times=1)
    asked = await people["alice"].send(chat, "hello once more?")
    await final_answer(discord_server, chat, asked, base_reply("hello once more?"), timeout=10)
    assert armed.hits == 1
    replies = [m for m in bot_messages(discord_server, chat) if m.id > asked.id]
    assert len(replies) == 1  # one answer, no error line left behind


async def test_a_deleted_model_is_named_unavailable(world, discord_server, openai_server):
    guild, bot, people = world
    await bot.storage.active_models.set(guild.id, "ft:gpt-4o-mini-2024-07-18:x:gone:abc")
    await enable(guild, people)
    chat = guild.channel("chat")
    asked = await people["alice"].send(chat, "hello?")
    reply = await answer_containing(discord_server, chat, asked, "not available any more")
    assert "/model use" in reply.content


async def test_answers_keep_coming_after_an_error(world, discord_server, openai_server):
    guild, bot, people = world
    await enable(guild, people)
    chat = guild.channel("chat")
    openai_server.faults.server_error(ROUTE, times=None)
    asked = await people["alice"].send(chat, "one")
    await answer_containing(discord_server, chat, asked, "not answering", timeout=10)
    openai_server.faults.clear()
    await asyncio.sleep(0)
    asked = await people["bob"].send(chat, "two")
    await final_answer(discord_server, chat, asked, base_reply("two"))


async def test_history_is_read_once_then_kept_from_the_gateway(world, discord_server, openai_server):
    """After one history read per channel the context comes from the gateway's events:
    edits and deletions show, no further read; a new gateway session reads it again."""
    guild, bot, people = world
    chat = guild.channel("chat")

    def history_reads():
        return [c for c in discord_server.calls("GET", "/channels/{channel_id}/messages")
                if str(chat.id) in c.path]

    before = await people["bob"].send(chat, "typo here")  # before chat was on: not answered
    doomed = await people["carol"].send(chat, "delete me")
    await enable(guild, people)
    first = await people["alice"].send(chat, "first question")
    first_prompt = "typo here\ndelete me\nfirst question"  # one user turn: joined
    await final_answer(discord_server, chat, first, base_reply(first_prompt))
    assert openai_server.chat_log[-1].messages[-1]["content"] == first_prompt
    assert len(history_reads()) == 1
    await people["bob"].edit(before, "fixed words")
    await people["carol"].delete(doomed)
    asked = await people["dave"].send(chat, "second question")
    await final_answer(discord_server, chat, asked, base_reply("second question"))
    call = openai_server.chat_log[-1]
    assert [m["content"] for m in call.messages] == [
        PROMPT,
        "fixed words\nfirst question",
        base_answer(BASE, PROMPT, first_prompt),
        "second question",
    ]
    assert len(history_reads()) == 1

    identifies = len(discord_server.gateway.identifies)
    await discord_server.gateway.invalidate_session(resumable=False)
    async with asyncio.timeout(10):
        while len(discord_server.gateway.identifies) == identifies or not bot.is_ready():
            await asyncio.sleep(0.02)
    again = await people["alice"].send(chat, "after a new session")
    await final_answer(discord_server, chat, again, base_reply("after a new session"))
    assert len(history_reads()) == 2

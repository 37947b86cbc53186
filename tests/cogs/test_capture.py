"""**Add to dataset**: a message (and the reply chain above it) becomes a pre-filled form,
refused before the form for bots, system messages, messages without text and members who
have not opted in; and the pure rules of :mod:`bot.client.reply_chain`."""

from __future__ import annotations

from typing import Any

import pytest

from bot.client.reply_chain import Quoted, attribute_authors, capture_turns
from storage.records import ExampleSource, ExampleStatus
from tests.bot.inprocess import running_tunecord
from tests.standins.discord.messages import Upload
from tests.standins.discord.rules import modal_inputs

pytest_plugins = ("tests.standins.discord.fixtures",)

MENU = "Add to dataset"
LABELS = ("User message", "Assistant reply", "Earlier turns (optional)")


@pytest.fixture
async def world(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ")
    alice = guild.add_member("alice")
    bob = guild.add_member("bob")
    async with running_tunecord(discord_server, tmp_path) as bot:
        marv = await bot.services.datasets.create(guild.id, "marv", system_prompt="You are Marv.")
        for member in (alice, bob):
            await bot.services.privacy.opt_in(guild.id, member.id)
        yield {
            "guild": guild,
            "bot": bot,
            "marv": marv,
            "alice": alice,
            "bob": bob,
            "general": guild.channel("general"),
        }


def form(handle) -> dict[str, str]:
    """The pre-filled form: label -> value of each text input."""
    assert handle.modal is not None, handle.content
    return {
        comp["label"]: comp.get("value") or ""
        for row in handle.modal["components"]
        for _, comp in modal_inputs(row)
        if comp.get("type") == 4
    }


async def chain(channel, *turns: tuple[Any, str]):
    """Each (member, text) replies to the one before; returns the messages."""
    sent = []
    for member, text in turns:
        sent.append(await member.send(channel, text, reply_to=sent[-1] if sent else None))
    return sent


def bot_messages(server) -> list:
    return [m for m in server.world.messages.values() if m.author.id == server.bot_user.id]


def fetches(server) -> list[tuple[str, int]]:
    """The bot's GET requests for single messages: (path, status)."""
    return [
        (e.api_path, e.status)
        for e in server.exchanges
        if e.method == "GET" and e.route and e.route.endswith("/messages/{message_id}")
    ]


# -- the pre-filled form -------------------------------------------------------------------


async def test_a_three_message_chain_fills_the_form_and_is_stored_with_its_authors(world):
    bot, alice, bob = world["bot"], world["alice"], world["bob"]
    messages = await chain(
        world["general"],
        (alice, "Marv, a question."),
        (bob, "What is the capital of France?"),
        (alice, "Paris. Obviously."),
    )
    shown = await alice.context_menu(MENU, messages[-1])
    assert shown.modal["title"] == "Add to marv"
    # three messages: the oldest would be an Assistant turn before any User turn, so it is left out
    assert form(shown) == {
        LABELS[0]: "What is the capital of France?",
        LABELS[1]: "Paris. Obviously.",
        LABELS[2]: "",
    }
    done = await alice.submit_modal(shown)
    reply = await done.next_followup()
    assert "waiting for review" in reply.content and reply.ephemeral
    [record] = await bot.services.contributions.page(world["marv"])
    assert record.source == ExampleSource.CAPTURE and record.status is ExampleStatus.PENDING
    assert record.contributor_id == alice.id
    assert await bot.services.contributions.authors(world["guild"].id, record.id) == {
        0: bob.id,
        1: alice.id,
    }


async def test_a_four_message_chain_puts_the_first_two_in_earlier_turns(world):
    alice, bob = world["alice"], world["bob"]
    messages = await chain(
        world["general"],
        (alice, "Marv, what is 2 + 2?"),
        (bob, "4. Did you need me for that?"),
        (alice, "And 3 + 3?\nAsking for a friend."),
        (bob, "6. Tell your friend to get a calculator."),
    )
    shown = await alice.context_menu(MENU, messages[-1])
    assert form(shown) == {
        LABELS[0]: "And 3 + 3?\nAsking for a friend.",
        LABELS[1]: "6. Tell your friend to get a calculator.",
        LABELS[2]: "User: Marv, what is 2 + 2?\nAssistant: 4. Did you need me for that?",
    }
    done = await alice.submit_modal(shown)
    await done.next_followup()
    [record] = await world["bot"].services.contributions.page(world["marv"])
    assert [m["content"] for m in record.example.messages] == [m.content for m in messages]
    assert await world["bot"].services.contributions.authors(world["guild"].id, record.id) == {
        0: alice.id,
        1: bob.id,
        2: alice.id,
        3: bob.id,
    }


async def test_a_lone_message_is_the_assistant_reply_and_the_contributor_writes_the_question(
    world,
):
    alice, bob = world["alice"], world["bob"]
    lone = await bob.send(world["general"], "Have you tried turning it off and on again?")
    shown = await alice.context_menu(MENU, lone)
    assert form(shown) == {
        LABELS[0]: "",
        LABELS[1]: "Have you tried turning it off and on again?",
        LABELS[2]: "",
    }
    done = await alice.submit_modal(shown, {LABELS[0]: "My laptop froze."})
    await done.next_followup()
    [record] = await world["bot"].services.contributions.page(world["marv"])
    assert [m["content"] for m in record.example.messages] == [
        "My laptop froze.",
        "Have you tried turning it off and on again?",
    ]
    assert await world["bot"].services.contributions.authors(world["guild"].id, record.id) == {
        1: bob.id
    }


async def test_a_chain_of_ten_stops_at_the_capture_depth(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ")
    alice, bob = guild.add_member("alice"), guild.add_member("bob")
    # sent before the bot connects: nothing is cached, every parent is fetched
    messages = await chain(
        guild.channel("general"), *[((alice, bob)[i % 2], f"message {i}") for i in range(1, 11)]
    )
    async with running_tunecord(discord_server, tmp_path) as bot:
        await bot.services.datasets.create(guild.id, "marv")
        for member in (alice, bob):
            await bot.services.privacy.opt_in(guild.id, member.id)

        shown = await alice.context_menu(MENU, messages[-1])  # capture_depth 6 by default
        earlier = "User: message 5\nAssistant: message 6\nUser: message 7\nAssistant: message 8"
        assert form(shown) == {LABELS[0]: "message 9", LABELS[1]: "message 10", LABELS[2]: earlier}
        fetched = fetches(discord_server)  # a fetched message carries its parent: about half
        assert fetched and {status for _, status in fetched} == {200}
        assert {path.rsplit("/", 1)[1] for path, _ in fetched} <= {str(m.id) for m in messages[4:8]}
        await bot.services.guild_config.set_capture_depth(guild.id, 5)  # odd: 4 turns
        shown = await alice.context_menu(MENU, messages[-1])
        assert form(shown)[LABELS[2]] == "User: message 7\nAssistant: message 8"


async def test_the_walk_stops_at_a_deleted_message(world, discord_server):
    alice, bob = world["alice"], world["bob"]
    messages = await chain(
        world["general"], (alice, "one"), (bob, "two"), (alice, "three"), (bob, "four")
    )
    await bob.delete(messages[1])
    shown = await alice.context_menu(MENU, messages[-1])
    assert form(shown) == {LABELS[0]: "three", LABELS[1]: "four", LABELS[2]: ""}
    assert fetches(discord_server) == [
        (f"/channels/{world['general'].id}/messages/{messages[1].id}", 404)
    ]


async def test_several_datasets_and_no_default_ask_which_one(world):
    bot, alice, bob = world["bot"], world["alice"], world["bob"]
    await bot.services.datasets.create(world["guild"].id, "sage")
    messages = await chain(world["general"], (alice, "Hi?"), (bob, "Hello."))
    asked = await alice.context_menu(MENU, messages[-1])
    assert asked.ephemeral and "which one" in asked.content
    picked = await alice.click(asked.message, "Choose a dataset", values=["sage"])
    assert picked.modal["title"] == "Add to sage"
    assert form(picked)[LABELS[1]] == "Hello."


# -- refused before the form ---------------------------------------------------------------


async def test_a_member_who_has_not_opted_in_is_named_and_nothing_opens(world, discord_server):
    guild, alice = world["guild"], world["alice"]
    carol = guild.add_member("carol")
    messages = await chain(world["general"], (alice, "Question?"), (carol, "Answer."))
    refused = await alice.context_menu(MENU, messages[-1])
    assert refused.modal is None and refused.ephemeral
    assert f"<@{carol.id}>" in refused.content and "not opted in" in refused.content
    assert f"<@{alice.id}>" not in refused.content
    assert not refused.message.pings

    await world["bot"].services.privacy.opt_in(guild.id, carol.id)
    assert (await alice.context_menu(MENU, messages[-1])).modal is not None


async def test_a_bots_message_is_refused(world, discord_server):
    guild = world["guild"]
    other = guild.add_member(discord_server.world.add_user("otherbot", bot=True))
    message = await other.send(world["general"], "Beep boop, I am a bot.")
    refused = await world["alice"].context_menu(MENU, message)
    assert refused.modal is None and refused.ephemeral
    assert refused.content == (
        "Messages from bots cannot be added to a dataset: only what members wrote."
    )


async def test_a_message_without_text_is_refused(world):
    message = await world["bob"].send(
        world["general"], "", files=[Upload("cat.png", b"\x89PNG\r\n\x1a\n")]
    )
    refused = await world["alice"].context_menu(MENU, message)
    assert refused.modal is None and refused.ephemeral
    assert refused.content.startswith("That message has no text to add")


async def test_mentions_in_captured_text_ping_nobody(world, discord_server):
    guild, bot, alice, bob = world["guild"], world["bot"], world["alice"], world["bob"]
    role = guild.create_role("everyone-loves-pings", mentionable=True)
    pings = f"@everyone <@&{role.id}> <@{bob.id}> @here"
    messages = await chain(world["general"], (alice, f"Hi {pings}"), (bob, f"Hello {pings}"))
    shown = await alice.context_menu(MENU, messages[-1])
    assert pings in form(shown)[LABELS[1]]
    done = await alice.submit_modal(shown)
    await done.next_followup()
    [record] = await bot.services.contributions.page(world["marv"])
    listed = await alice.slash("example list")
    assert pings.split()[1] in listed.message.embeds[0]["description"]
    shown = await bob.slash("example show", id=record.id)
    assert pings in shown.message.embeds[0]["description"]
    dup = await alice.context_menu(MENU, messages[-1])
    retry = await alice.submit_modal(dup)
    assert "already has this conversation" in (await retry.next_followup()).content
    said = bot_messages(discord_server)
    assert len(said) >= 4
    assert not any(m.pings for m in said)


# -- the pure rules ------------------------------------------------------------------------


def test_odd_chains_lose_their_oldest_message():
    quoted = [Quoted(author, f"m{author}") for author in range(1, 6)]
    capture = capture_turns(quoted)
    assert [t.text for t in capture.turns] == ["m2", "m3", "m4", "m5"]
    assert [t.role for t in capture.turns] == ["user", "assistant", "user", "assistant"]
    assert capture.quoted() == {0: 2, 1: 3, 2: 4, 3: 5}


def test_earlier_turns_that_do_not_fit_the_form_are_dropped_a_pair_at_a_time():
    quoted = [Quoted(i, str(i) * 1500) for i in range(6)]
    capture = capture_turns(quoted, earlier_max=4000)
    assert len(capture.turns) == 4  # the two oldest made earlier turns 6,000+ characters
    assert len(capture.earlier) <= 4000
    assert capture.user == "4" * 1500 and capture.assistant == "5" * 1500


def test_authors_keep_their_turns_counted_from_the_end():
    bob, alice = 2, 1
    captured = (bob, alice, bob, alice)
    assert attribute_authors(captured, 4) == {0: bob, 1: alice, 2: bob, 3: alice}
    # the contributor added two earlier turns: those are theirs, not listed
    assert attribute_authors(captured, 6) == {2: bob, 3: alice, 4: bob, 5: alice}
    # the contributor removed the first two turns: everyone captured still counts
    assert attribute_authors((3, alice, bob, alice), 2) == {0: bob, 1: alice, 2: 3}
    # a lone message: the contributor wrote the user message
    assert attribute_authors((None, bob), 2) == {1: bob}


async def test_a_system_message_is_refused(world, discord_server):
    guild, alice, bob = world["guild"], world["alice"], world["bob"]
    started = await bob.send(world["general"], "Let's discuss this in a thread.")
    thread = guild.create_thread(world["general"], "discussion", owner=bob, message=started)
    [starter] = discord_server.messages_in(thread)  # Discord's thread starter message (type 21)
    refused = await alice.context_menu(MENU, starter)
    assert refused.modal is None and refused.ephemeral
    assert refused.content.startswith("That is a system message")

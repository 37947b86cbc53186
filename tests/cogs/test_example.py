"""``/example add|list|show|remove``: the contribution form, browsing and removing examples,
through the real bot, the Discord stand-in and a real SQLite file."""

from __future__ import annotations

import io
from typing import Any

import pytest

from bot.client.example_form import CONSENT_LINE
from bot.dataset.tokens import count_example
from bot.services.counting import counting_for_dataset
from storage.records import ExampleSource, ExampleStatus
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import P
from tests.standins.discord.rules import modal_inputs
from tests.storage.helpers import example

pytest_plugins = ("tests.standins.discord.fixtures",)

LABELS = ["User message", "Assistant reply", "Earlier turns (optional)"]
TRY_AGAIN = "Nothing you typed is lost: **Try again** reopens the form."


@pytest.fixture
async def world(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ", channels=("general", "reviews"))
    alice = guild.add_member("alice")
    bob = guild.add_member("bob")
    mod = guild.add_member("mod", roles=[guild.create_role("mods", permissions=P.MANAGE_MESSAGES)])
    async with running_tunecord(discord_server, tmp_path) as bot:
        marv = await bot.services.datasets.create(guild.id, "marv", system_prompt="You are Marv.")
        yield {"guild": guild, "bot": bot, "marv": marv, "alice": alice, "bob": bob, "mod": mod}


def modal_fields(modal: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) of each text input, in order."""
    return [
        (comp.get("label"), comp.get("value") or "")
        for row in modal["components"]
        for _, comp in modal_inputs(row)
        if comp.get("type") == 4
    ]


def modal_texts(modal: dict[str, Any]) -> list[str]:
    """The text displays of a modal."""
    return [row.get("content") for row in modal["components"] if row.get("type") == 10]


def typed(user: str, assistant: str, earlier: str = "") -> dict[str, str]:
    return {"User message": user, "Assistant reply": assistant, "Earlier turns (optional)": earlier}


async def submit(member, values: dict[str, str]):
    """/example add, fill in the form, submit: the submit's handle."""
    shown = await member.slash("example add")
    assert shown.modal is not None
    return await member.submit_modal(shown, values)


async def answer(handle):
    """The bot's answer: the first follow-up of a deferred interaction, else the response."""
    return await (handle.next_followup() if handle.deferred else handle.wait_original())


# -- add -----------------------------------------------------------------------------------


async def test_the_form_has_three_inputs_the_dataset_in_its_title_and_the_consent_line(world):
    shown = await world["alice"].slash("example add", dataset="marv")
    modal = shown.modal
    assert modal["title"] == "Add to marv"
    assert [label for label, _ in modal_fields(modal)] == LABELS
    assert CONSENT_LINE in modal_texts(modal)
    required = [
        comp.get("required", True)
        for row in modal["components"]
        for _, comp in modal_inputs(row)
        if comp.get("type") == 4
    ]
    assert required == [True, True, False]


async def test_a_valid_submit_stores_a_pending_example_and_confirms_it(world):
    bot, alice = world["bot"], world["alice"]
    done = await submit(
        alice,
        typed("What is the capital of France?", "Paris. Obviously.", "User: hi\nAssistant: What."),
    )
    assert done.deferred
    reply = await done.next_followup()
    assert reply.ephemeral
    [record] = await bot.services.contributions.page(world["marv"])
    assert record.status is ExampleStatus.PENDING
    assert record.contributor_id == alice.id and record.source == ExampleSource.MODAL
    assert [m["content"] for m in record.example.messages] == [
        "hi",
        "What.",
        "What is the capital of France?",
        "Paris. Obviously.",
    ]
    counting = counting_for_dataset(world["marv"], bot.catalogue)
    tokens = count_example(counting.trained(record.example), counting.encoding)
    stats = await bot.storage.examples.stats(world["guild"].id, world["marv"].id, counting.key)
    assert stats.pending.examples == 1 and stats.pending.counted == 1
    assert stats.pending.tokens == tokens
    assert f"#{record.id}" in reply.content and "waiting for review" in reply.content
    assert f"({tokens:,} tokens)" in reply.content
    assert not reply.pings


async def _refused_with_retry(member, values: dict[str, str], message: str) -> None:
    done = await submit(member, values)
    reply = await answer(done)
    assert reply.ephemeral
    assert reply.content == f"{message}\n{TRY_AGAIN}"
    again = await member.click(reply, "Try again")
    assert modal_fields(again.modal) == [(label, values[label]) for label in LABELS]


async def test_an_empty_user_message_is_refused_with_try_again_holding_the_text(world):
    await _refused_with_retry(
        world["alice"],
        typed("   ", "Paris.", "User: hi\nAssistant: What."),
        "The **User message** is empty: write what the user says.",
    )


async def test_a_malformed_earlier_line_is_refused_with_try_again(world):
    await _refused_with_retry(
        world["alice"],
        typed("And Spain?", "Madrid.", "User: hi\nUser: again"),
        "**Earlier turns**, line 2: expected a `Assistant:` turn here; turns alternate, "
        "starting with `User:`.",
    )


async def test_a_duplicate_is_refused_with_try_again(world):
    values = typed("Capital of Italy?", "Rome, as everyone knows.")
    first = await submit(world["alice"], values)
    await first.next_followup()
    [record] = await world["bot"].services.contributions.page(world["marv"])
    await _refused_with_retry(
        world["bob"],
        values,
        f"The dataset already has this conversation (example #{record.id}).",
    )


async def test_a_conversation_over_the_models_context_is_refused_with_try_again(world):
    long = "ꙮ" * 4000  # about 3 tokens a character: over o200k's default 16,385-token cap
    done = await submit(world["alice"], typed(long, long))
    reply = await done.next_followup()
    assert "tokens long; the model trains on at most 16,385" in reply.content
    assert reply.content.endswith(TRY_AGAIN)
    again = await world["alice"].click(reply, "Try again")
    assert modal_fields(again.modal) == [(LABELS[0], long), (LABELS[1], long), (LABELS[2], "")]
    assert await world["bot"].services.contributions.page(world["marv"]) == []


async def test_the_pending_limit_is_refused_with_try_again(world):
    guild, alice = world["guild"], world["alice"]
    await world["bot"].services.guild_config.set_max_pending(guild.id, 1)
    await (await submit(alice, typed("one?", "One."))).next_followup()
    await _refused_with_retry(
        alice,
        typed("two?", "Two."),
        "You already have 1 examples waiting for review in **marv** (the limit is 1). "
        "Try again once some are reviewed.",
    )


OPTED_OUT = (
    "You opted out of contributing in this server. `/privacy optin` lets you contribute again."
)


async def test_a_member_who_opted_out_is_told_before_the_form_opens(world):
    guild, alice = world["guild"], world["alice"]
    await world["bot"].services.privacy.opt_out(guild.id, alice.id)
    shown = await alice.slash("example add")
    assert shown.modal is None and shown.ephemeral
    assert shown.content == OPTED_OUT


async def test_opting_out_while_the_form_is_open_refuses_the_submit_with_try_again(world):
    guild, alice = world["guild"], world["alice"]
    shown = await alice.slash("example add")
    await world["bot"].services.privacy.opt_out(guild.id, alice.id)
    done = await alice.submit_modal(shown, typed("Hello?", "Hi."))
    reply = await answer(done)
    assert reply.content.startswith(OPTED_OUT) and reply.content.endswith(TRY_AGAIN)
    assert await world["bot"].services.contributions.page(world["marv"]) == []


async def test_a_try_again_submit_stores_the_corrected_example(world):
    alice = world["alice"]
    done = await submit(alice, typed("Why?", " ", ""))  # only spaces: the client lets it through
    reply = await answer(done)
    again = await alice.click(reply, "Try again")
    fixed = await alice.submit_modal(again, {"Assistant reply": "Because."})
    confirmation = await fixed.next_followup()
    assert "waiting for review" in confirmation.content
    [record] = await world["bot"].services.contributions.page(world["marv"])
    assert [m["content"] for m in record.example.messages] == ["Why?", "Because."]


async def test_add_names_an_unknown_dataset_instead_of_opening_the_form(world):
    shown = await world["alice"].slash("example add", dataset="nope")
    assert shown.modal is None and shown.ephemeral
    assert shown.content.startswith("There is no dataset named `nope` in this server.")


# -- list ----------------------------------------------------------------------------------


async def _import(bot, dataset, contributor_id: int, numbers: range) -> None:
    lines = "".join(example(n).to_json() + "\n" for n in numbers).encode()
    report = await bot.services.files.import_file(
        dataset, io.BytesIO(lines), contributor_id=contributor_id
    )
    assert report.imported == len(numbers)


def listed_ids(message) -> list[int]:
    [embed] = message.embeds
    return [int(line.split("`#")[1].split("`")[0]) for line in embed["description"].splitlines()]


async def test_list_pages_through_25_examples_with_next_and_previous(world):
    bot, alice, bob = world["bot"], world["alice"], world["bob"]
    await _import(bot, world["marv"], alice.id, range(1, 16))
    await _import(bot, world["marv"], bob.id, range(16, 26))
    ids = [r.id for r in await bot.services.contributions.page(world["marv"], limit=100)]
    assert len(ids) == 25

    shown = await alice.slash("example list")
    assert shown.ephemeral
    page = shown.message
    assert listed_ids(page) == ids[:10]
    [embed] = page.embeds
    first_line = embed["description"].splitlines()[0]
    assert first_line == f"`#{ids[0]}` · pending · <@{alice.id}> · question 1.0: what is 1 + 0?"
    assert embed["footer"]["text"].startswith("Page 1")
    assert page.component("◀ Previous")["disabled"] is True

    await alice.click(page, "Next ▶")
    assert listed_ids(shown.message) == ids[10:20]
    await alice.click(page, "Next ▶")
    assert listed_ids(shown.message) == ids[20:]
    assert shown.message.component("Next ▶")["disabled"] is True
    assert shown.message.embeds[0]["footer"]["text"].startswith("Page 3")
    await alice.click(page, "◀ Previous")
    assert listed_ids(shown.message) == ids[10:20]
    await alice.click(page, "◀ Previous")
    assert listed_ids(shown.message) == ids[:10]
    assert not any(m.pings for m in [shown.message])


async def test_list_filters_by_status_and_contributor(world):
    bot, guild, alice, bob = world["bot"], world["guild"], world["alice"], world["bob"]
    await _import(bot, world["marv"], alice.id, range(1, 4))
    await _import(bot, world["marv"], bob.id, range(4, 7))
    records = await bot.services.contributions.page(world["marv"])
    approved = [records[0].id, records[4].id]
    for example_id in approved:
        await bot.services.curation.decide(guild.id, example_id, ExampleStatus.APPROVED)

    by_status = await alice.slash("example list", status="approved")
    assert listed_ids(by_status.message) == approved
    by_bob = await alice.slash("example list", contributor=bob)
    assert listed_ids(by_bob.message) == [r.id for r in records[3:]]
    assert "by bob" in by_bob.message.embeds[0]["title"]
    both = await alice.slash("example list", status="pending", contributor=bob)
    assert listed_ids(both.message) == [records[3].id, records[5].id]
    assert by_bob.message.component("Next ▶")["disabled"] is True
    none = await alice.slash("example list", status="rejected")
    assert none.content == "No examples in **marv** match." and none.ephemeral


async def test_someone_elses_pager_cannot_be_turned(world):
    bot, alice, bob = world["bot"], world["alice"], world["bob"]
    await _import(bot, world["marv"], alice.id, range(1, 13))
    shown = await alice.slash("example list")
    before = listed_ids(shown.message)
    clicked = await bob.click(shown.message, "Next ▶", force=True)  # ephemeral: a forged click
    assert clicked.ephemeral
    assert clicked.content.startswith("These buttons belong to whoever ran this `/example list`")
    assert listed_ids(shown.message) == before


# -- show and remove -----------------------------------------------------------------------


async def test_show_renders_the_example_with_its_score(world):
    bot, guild, alice, bob = world["bot"], world["guild"], world["alice"], world["bob"]
    added = await bot.services.contributions.add(world["marv"], alice.id, example(7))
    await bot.services.curation.vote(guild.id, added.record.id, bob.id, 1)
    shown = await bob.slash("example show", id=added.record.id)
    assert shown.ephemeral
    [embed] = shown.message.embeds
    assert embed["title"] == f"Example #{added.record.id} · marv"
    assert "question 7.0: what is 7 + 0?" in embed["description"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Contributor"] == f"<@{alice.id}>"
    assert fields["Status"] == "pending"
    assert fields["Score"] == "+1 (1 up, 0 down) (needs ±3)"
    assert not shown.message.pings

    missing = await bob.slash("example show", id=added.record.id + 100)
    assert missing.content == f"There is no example #{added.record.id + 100} in this server."


async def test_members_remove_their_own_examples_curators_any(world):
    bot, alice, bob, mod = world["bot"], world["alice"], world["bob"], world["mod"]
    mine = (await bot.services.contributions.add(world["marv"], alice.id, example(1))).record
    theirs = (await bot.services.contributions.add(world["marv"], bob.id, example(2))).record

    refused = await alice.slash("example remove", id=theirs.id)
    reply = await refused.next_followup()
    assert reply.ephemeral
    assert reply.content == "You can remove only your own examples; a curator can remove any."

    done = await alice.slash("example remove", id=mine.id)
    assert (await done.next_followup()).content == f"Example #{mine.id} is removed."
    done = await mod.slash("example remove", id=theirs.id)
    assert (await done.next_followup()).content == f"Example #{theirs.id} is removed."
    assert await bot.services.contributions.page(world["marv"]) == []


async def test_removing_an_example_deletes_its_review_post(world):
    bot, guild, alice = world["bot"], world["guild"], world["alice"]
    reviews = guild.channel("reviews")
    record = (await bot.services.contributions.add(world["marv"], alice.id, example(3))).record
    post = await guild.bot.send(reviews, f"Example #{record.id} for review")
    await bot.storage.review_posts.record(guild.id, record.id, reviews.id, post.id)
    done = await alice.slash("example remove", id=record.id)
    await done.next_followup()
    assert post.id not in [m.id for m in guild.server.messages_in(reviews)]


async def test_another_servers_examples_are_not_found(world, discord_server):
    bot = world["bot"]
    away = discord_server.create_guild("Away")
    carol = away.add_member("carol")
    elsewhere = await bot.services.datasets.create(away.id, "elsewhere")
    foreign = (await bot.services.contributions.add(elsewhere, carol.id, example(9))).record
    owner = world["guild"].owner  # curator and admin at home

    shown = await owner.slash("example show", id=foreign.id)
    assert shown.content == f"There is no example #{foreign.id} in this server."
    removed = await owner.slash("example remove", id=foreign.id)
    reply = await removed.next_followup()
    assert reply.content == f"There is no example #{foreign.id} in this server."
    assert (await bot.services.contributions.get(away.id, foreign.id)).id == foreign.id

"""The review channel: new examples are posted with buttons, votes and curators' decisions
edit the same post, and a bot refused the channel tells the owner once per failure streak."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.client.review_buttons import TEMPLATE, review_message
from bot.dataset.examples import ChatExample
from storage.records import ExampleRecord, ExampleStatus
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import P
from tests.standins.discord.actor import ActionNotPermitted
from tests.standins.discord.rules import modal_inputs

pytest_plugins = ("tests.standins.discord.fixtures",)

BUTTONS = ["Upvote", "Downvote", "Approve", "Reject", "Edit"]
UPDATE_MESSAGE, DEFERRED_UPDATE_MESSAGE = 7, 6


class World:
    def __init__(self, server: Any, guild: Any, bot: Any, dataset: Any, people: dict[str, Any]):
        self.server, self.guild, self.bot, self.dataset = server, guild, bot, dataset
        self.people = people
        self.reviews = guild.channel("reviews")

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["people"][name]
        except KeyError:
            raise AttributeError(name) from None

    async def add(self, user: str = "hello", assistant: str = "hi there", who: str = "alice",
                  system: str | None = None) -> ExampleRecord:  # fmt: skip
        """A pending example, stored and announced as the example commands do."""
        example = ChatExample.from_pairs([(user, assistant)], system=system)
        added = await self.bot.services.contributions.add(
            self.dataset, self.people[who].id, example
        )
        return added.record

    async def add_and_post(self, **kw: Any) -> tuple[ExampleRecord, Any]:
        before = self.posts()
        record = await self.add(**kw)
        self.bot.dispatch("example_added", record)
        post = await self.server.wait_for_message(
            self.reviews, after=before[-1] if before else None
        )
        await eventually(lambda: self.bot.storage.review_posts.get(self.guild.id, record.id))
        return record, post

    def posts(self) -> list[Any]:
        return self.server.messages_in(self.reviews)

    def current(self, message: Any) -> Any:
        return self.server.world.messages[message.id]

    def owner_dms(self) -> list[Any]:
        return self.server.messages_in(self.server.world.dm_channel(self.guild.owner.user))

    async def wait_for_fields(self, message: Any, **expected: str) -> dict[str, str]:
        def matches() -> dict[str, str] | None:
            shown = fields(self.current(message))
            return shown if all(shown.get(k) == v for k, v in expected.items()) else None

        return await self.server.wait_for(matches, 5.0, f"the post to show {expected}")


async def eventually(read: Callable[[], Awaitable[Any]], timeout: float = 5.0) -> Any:
    """What ``read()`` returns once it is truthy: the bot writes after Discord answers it,
    so a test that sees a message may be a moment ahead of the database."""
    async with asyncio.timeout(timeout):
        while not (value := await read()):
            await asyncio.sleep(0.01)
    return value


def fields(message: Any) -> dict[str, str]:
    [embed] = message.embeds
    return {f["name"]: f["value"] for f in embed["fields"]}


def buttons(message: Any) -> dict[str, dict[str, Any]]:
    return {c["label"]: c for c in message.interactive_components()}


def enabled(message: Any) -> list[str]:
    return [label for label, c in buttons(message).items() if not c.get("disabled")]


def modal_values(modal: dict[str, Any]) -> dict[str, str]:
    return {
        comp.get("label"): comp.get("value") or ""
        for row in modal["components"]
        for _, comp in modal_inputs(row)
    }


def score(up: int, down: int, threshold: int = 3) -> str:
    return f"{up - down:+d} ({up} up, {down} down) (needs ±{threshold})"


@pytest.fixture
async def world(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ", channels=("general", "reviews"))
    mods = guild.create_role("mods", permissions=P.MANAGE_MESSAGES)
    people = {name: guild.add_member(name) for name in ("alice", "bob", "carol")}
    people["mod"] = guild.add_member("mod", roles=[mods])
    async with running_tunecord(discord_server, tmp_path) as bot:
        dataset = await bot.services.datasets.create(guild.id, "marv")
        await bot.services.guild_config.set_review_channel(guild.id, guild.channel("reviews").id)
        yield World(discord_server, guild, bot, dataset, people)


async def test_a_new_example_is_posted_with_its_facts_and_buttons(world):
    record, post = await world.add_and_post(user="What is 2+2?", assistant="4, obviously.")
    [embed] = post.embeds
    assert embed["title"] == f"Example #{record.id} · marv"
    assert "**User:** What is 2+2?" in embed["description"]
    assert "**Assistant:** 4, obviously." in embed["description"]
    assert fields(post) == {
        "Contributor": f"<@{world.alice.id}>",
        "Status": "pending",
        "Score": score(0, 0),
    }
    assert f"id {record.id}" in embed["footer"]["text"]
    assert list(buttons(post)) == BUTTONS and enabled(post) == BUTTONS
    for label, button in buttons(post).items():
        assert TEMPLATE.fullmatch(button["custom_id"]), label
        assert button["custom_id"].endswith(f":{record.id}")
    stored = await eventually(lambda: world.bot.storage.review_posts.get(world.guild.id, record.id))
    assert (stored.channel_id, stored.message_id) == (world.reviews.id, post.id)
    assert not post.pings


async def test_votes_edit_the_same_post_and_a_member_can_change_theirs(world):
    record, post = await world.add_and_post()

    up = await world.bob.click(post, "Upvote")
    assert up.response_type == UPDATE_MESSAGE  # the click itself shows the new score
    assert fields(world.current(post))["Score"] == score(1, 0)
    note = await up.next_followup()
    assert note.ephemeral and note.content == f"Your vote on #{record.id}: **up** (score +1)."

    await world.carol.click(post, "Downvote")
    assert fields(world.current(post))["Score"] == score(1, 1)
    changed = await world.bob.click(post, "Downvote")
    assert fields(world.current(post))["Score"] == score(0, 2)
    assert (await changed.next_followup()).content.endswith("**down** (score -2).")

    tally = await world.bot.storage.votes.tally(world.guild.id, record.id)
    assert (tally.up, tally.down) == (0, 2)
    assert [m.id for m in world.posts()] == [post.id]  # edited in place, never re-posted


async def test_a_member_cannot_vote_on_their_own_example(world):
    record, post = await world.add_and_post(who="alice")
    refused = await world.alice.click(post, "Upvote")
    assert refused.ephemeral and refused.content == "You cannot vote on your own example."
    assert fields(world.current(post))["Score"] == score(0, 0)
    assert await world.bot.storage.votes.get(world.guild.id, record.id, world.alice.id) is None


@pytest.mark.parametrize(
    ("vote", "status"), [("Upvote", ExampleStatus.APPROVED), ("Downvote", ExampleStatus.REJECTED)]
)
async def test_reaching_the_threshold_decides_the_example(world, vote, status):
    await world.bot.services.guild_config.set_vote_threshold(world.guild.id, 2)
    record, post = await world.add_and_post()
    await world.bob.click(post, vote)
    assert fields(world.current(post))["Status"] == "pending"
    last = await world.carol.click(post, vote)
    assert (await last.next_followup()).content.endswith(
        f"Example #{record.id} is now **{status}**."
    )

    shown = world.current(post)
    assert fields(shown)["Status"] == status.value
    assert "Upvote" not in enabled(shown) and "Downvote" not in enabled(shown)
    decided = "Approve" if status is ExampleStatus.APPROVED else "Reject"
    assert enabled(shown) == [b for b in ("Approve", "Reject", "Edit") if b != decided]
    assert (await world.bot.storage.examples.get(world.guild.id, record.id)).status is status
    with pytest.raises(ActionNotPermitted):
        await world.mod.click(shown, vote)  # the client does not send a disabled button's click


async def test_curators_approve_and_reject_members_are_refused(world):
    record, post = await world.add_and_post()
    refused = await world.bob.click(post, "Approve")
    assert refused.ephemeral
    assert refused.content == (
        "You need the Manage Messages permission to approve, reject or edit examples."
    )
    assert fields(world.current(post))["Status"] == "pending"
    assert (await world.bot.storage.examples.get(world.guild.id, record.id)).status == "pending"

    approved = await world.mod.click(post, "Approve")
    assert approved.response_type == UPDATE_MESSAGE
    assert fields(world.current(post))["Status"] == "approved"
    await world.mod.click(post, "Reject")  # a curator may change a decision
    assert fields(world.current(post))["Status"] == "rejected"

    curators = world.guild.create_role("curators")
    await world.bot.services.guild_config.set_curator_role(world.guild.id, curators.id)
    world.carol.add_roles(curators)
    await world.carol.click(post, "Approve")
    assert fields(world.current(post))["Status"] == "approved"
    assert (await world.bot.storage.examples.get(world.guild.id, record.id)).status == "approved"
    assert [m.id for m in world.posts()] == [post.id]


async def test_edit_opens_the_filled_in_form_and_saving_updates_the_post(world):
    record, post = await world.add_and_post(user="Hi", assistant="Hullo", system="Be terse.")
    refused = await world.bob.click(post, "Edit")
    assert refused.modal is None and refused.content.startswith("You need the Manage Messages")

    form = await world.mod.click(post, "Edit")
    assert form.modal["title"] == f"Edit #{record.id}"
    assert modal_values(form.modal) == {
        "User message": "Hi",
        "Assistant reply": "Hullo",
        "Earlier turns (optional)": "",
    }
    saved = await world.mod.submit_modal(
        form, {"Assistant reply": "Hello!", "Earlier turns (optional)": "User: Yo\nAssistant: Yo."}
    )
    assert saved.deferred and saved.ephemeral
    assert (await saved.next_followup()).content == f"Example #{record.id} updated."

    stored = await world.bot.storage.examples.get(world.guild.id, record.id)
    assert [m["content"] for m in stored.example.messages] == [
        "Be terse.", "Yo", "Yo.", "Hi", "Hello!",
    ]  # fmt: skip
    description = world.current(post).embeds[0]["description"]
    assert "**Assistant:** Hello!" in description and "Hullo" not in description
    assert [m.id for m in world.posts()] == [post.id]


async def test_an_invalid_edit_offers_try_again_with_what_was_typed(world):
    record, post = await world.add_and_post(user="Hi", assistant="Hullo")
    form = await world.mod.click(post, "Edit")
    typed = {"Assistant reply": "Changed", "Earlier turns (optional)": "no speaker here"}
    failed = await world.mod.submit_modal(form, typed)
    assert failed.ephemeral
    assert "**Earlier turns**, line 1" in failed.content
    again = await world.mod.click(failed.message, "Try again")
    assert modal_values(again.modal) == {"User message": "Hi", **typed}
    stored = await world.bot.storage.examples.get(world.guild.id, record.id)
    assert stored.example == record.example
    assert "Hullo" in world.current(post).embeds[0]["description"]


async def test_a_change_made_elsewhere_updates_the_post(world):
    record, post = await world.add_and_post()
    await world.bot.services.curation.decide(world.guild.id, record.id, ExampleStatus.REJECTED)
    world.bot.dispatch("example_changed", world.guild.id, record.id)
    await world.wait_for_fields(post, Status="rejected")
    assert [m.id for m in world.posts()] == [post.id]


async def test_a_vote_on_an_example_deleted_meanwhile_is_answered(world):
    record, post = await world.add_and_post()
    await world.bot.storage.examples.delete(world.guild.id, record.id)
    gone = await world.bob.click(post, "Upvote")
    assert gone.ephemeral and gone.content == f"There is no example #{record.id} in this server."


async def test_without_a_review_channel_nothing_is_posted(world):
    await world.bot.services.guild_config.set_review_channel(world.guild.id, None)
    record = await world.add()
    await world.bot.get_cog("Review").post_for_review(record)  # what the event runs
    assert world.posts() == [] and world.owner_dms() == []
    assert await world.bot.storage.review_posts.get(world.guild.id, record.id) is None


async def test_a_refused_channel_is_reported_to_the_owner_once_per_failure_streak(world, caplog):
    caplog.set_level(logging.WARNING, logger="cogs.review")
    cog = world.bot.get_cog("Review")
    world.guild.set_overwrite(world.reviews, world.guild.bot_role, deny=P.SEND_MESSAGES)

    first = await world.add(user="one")
    world.bot.dispatch("example_added", first)
    dm = await world.server.wait_for_message(world.server.world.dm_channel(world.guild.owner.user))
    assert (
        "#reviews (HQ): I am missing Send Messages, Embed Links, Attach Files there" in dm.content
    )
    await cog.post_for_review(await world.add(user="two"))  # the streak goes on: no second DM
    assert len(world.owner_dms()) == 1 and world.posts() == []
    assert "(owner already told)" in caplog.text

    world.guild.set_overwrite(world.reviews, world.guild.bot_role, allow=P.SEND_MESSAGES)
    await cog.post_for_review(await world.add(user="three"))
    assert len(world.posts()) == 1  # the streak ends
    world.guild.set_overwrite(world.reviews, world.guild.bot_role, deny=P.SEND_MESSAGES)
    await cog.post_for_review(await world.add(user="four"))  # a new streak: a new DM
    dms = world.owner_dms()
    assert len(dms) == 2 and "I am missing Send Messages" in dms[1].content

    world.guild.set_overwrite(world.reviews, world.guild.bot_role, allow=P.SEND_MESSAGES)
    await cog.post_for_review(await world.add(user="five"))
    world.guild.set_overwrite(world.reviews, world.guild.bot_role, deny=P.VIEW_CHANNEL)
    world.server.closed_dms.add(world.guild.owner.id)
    await cog.post_for_review(await world.add(user="six"))  # the DM fails: only logged
    assert "missing View Channel" in caplog.text and "owner could not be told" in caplog.text
    assert len(world.owner_dms()) == 2 and len(world.posts()) == 2


async def test_twenty_members_voting_at_once_each_count_exactly_once(world):
    await world.bot.services.guild_config.set_vote_threshold(world.guild.id, 20)
    record, post = await world.add_and_post()
    voters = [world.guild.add_member(f"voter{i}") for i in range(20)]
    clicks = await asyncio.gather(*(v.click(post, "Upvote") for v in voters))
    notes = [await c.next_followup() for c in clicks]  # each sent after its post update

    assert {c.response_type for c in clicks} <= {UPDATE_MESSAGE, DEFERRED_UPDATE_MESSAGE}
    assert sum("is now **approved**" in n.content for n in notes) == 1
    tally = await world.bot.storage.votes.tally(world.guild.id, record.id)
    assert (tally.up, tally.down) == (20, 0)
    shown = fields(world.current(post))
    assert shown["Score"] == score(20, 0, 20) and shown["Status"] == "approved"
    assert [m.id for m in world.posts()] == [post.id]


async def test_member_text_pings_nobody(world):
    mods = world.guild.role("mods")
    text = f"@everyone @here <@{world.bob.id}> <@&{mods.id}> look"
    record, post = await world.add_and_post(user=text, assistant=text)
    assert text in post.embeds[0]["description"]
    vote = await world.bob.click(post, "Upvote")
    note = await vote.next_followup()
    for message in (world.current(post), note):
        assert not message.pings
    assert re.search(r"<@\d+>", fields(world.current(post))["Contributor"])


async def test_buttons_on_a_copy_of_the_post_update_the_copy_and_the_post(world):
    record, post = await world.add_and_post()
    review = await world.bot.services.curation.review(world.guild.id, record.id)
    embed, view = await review_message(world.bot, review)
    general = world.bot.get_channel(world.guild.channel("general").id)
    await general.send(embed=embed, view=view)  # as another cog might show it to curators
    copy = await world.server.wait_for_message(world.guild.channel("general"))

    click = await world.bob.click(copy, "Upvote")
    assert click.response_type == UPDATE_MESSAGE
    assert fields(world.current(copy))["Score"] == score(1, 0)
    await world.wait_for_fields(post, Score=score(1, 0))
    assert [m.id for m in world.posts()] == [post.id]

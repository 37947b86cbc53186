"""``/privacy``: members opt in and out, download what is stored about them, read the policy.

Opting out deletes, at once, every example of the guild the member contributed or wrote a
turn of (in every dataset), their votes and the review posts of those examples, and from
then on their contributions and captures of their messages are refused. Another guild's
data is never touched nor shown.
"""

from __future__ import annotations

import gzip
import json

import aiohttp
import pytest

from bot.errors import UserError
from bot.services.contributions import NotAllowed
from bot.settings import Settings
from cogs.privacy import backend_description, export_file
from storage.records import ExampleSource, ExampleStatus
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import CommandNotPermitted
from tests.storage.helpers import example

pytest_plugins = ("tests.standins.discord.fixtures",)

SUBCOMMANDS = ("optin", "optout", "mydata", "policy")
TRAINER_HERE = "the tunecord trainer running on this bot's own machine"


@pytest.fixture
async def world(discord_server, tmp_path):
    home = discord_server.create_guild("HQ", channels=("general", "reviews"))
    away = discord_server.create_guild("Away", channels=("general",))
    alice = home.add_member("alice")
    bob = home.add_member("bob")
    away.add_member(alice.user)
    async with running_tunecord(discord_server, tmp_path) as bot:
        yield {"server": discord_server, "home": home, "away": away, "bot": bot,
               "alice": alice, "bob": bob}


async def populate(w) -> dict[str, int]:
    """Alice opted in; her own example in "marv", Bob's capture quoting her in "pirate",
    Bob's own example with Alice's vote, and the same kinds of data in another guild."""
    bot, home, away = w["bot"], w["home"], w["away"]
    alice, bob = w["alice"], w["bob"]
    services = bot.services
    marv = await services.datasets.create(home.id, "marv")
    pirate = await services.datasets.create(home.id, "pirate")
    elsewhere = await services.datasets.create(away.id, "elsewhere")
    await services.privacy.opt_in(home.id, alice.id)
    await services.privacy.opt_in(away.id, alice.id)

    own = await services.contributions.add(marv, alice.id, example(1))
    quoting = await services.contributions.add(
        pirate, bob.id, example(2), source=ExampleSource.CAPTURE, authors={0: alice.id}
    )
    bobs = await services.contributions.add(pirate, bob.id, example(3))
    await services.curation.vote(home.id, bobs.record.id, alice.id, 1)
    away_own = await services.contributions.add(elsewhere, alice.id, example(4))
    away_other = await services.contributions.add(elsewhere, 4242, example(5))
    await services.curation.vote(away.id, away_other.record.id, alice.id, -1)
    return {
        "own": own.record.id,
        "quoting": quoting.record.id,
        "bobs": bobs.record.id,
        "away_own": away_own.record.id,
        "away_other": away_other.record.id,
    }


async def test_privacy_is_for_every_member_in_servers_only(world):
    command = world["home"].server.command("privacy")
    assert command["contexts"] == [0]
    assert command.get("default_member_permissions") is None
    assert {o["name"] for o in command["options"]} == set(SUBCOMMANDS)


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
async def test_privacy_in_direct_messages_is_refused(world, subcommand):
    dave = world["server"].dm_actor("dave")
    with pytest.raises(CommandNotPermitted):
        await dave.slash(f"privacy {subcommand}")  # the client does not offer it
    handle = await dave.slash(f"privacy {subcommand}", force=True)
    text = handle.content if not handle.deferred else (await handle.next_followup()).content
    assert text == "This command only works in a server, not in direct messages."
    assert (await world["bot"].storage.consents.get(0, dave.id)) is None


async def test_the_policy_names_the_backend_and_the_commands(world):
    handle = await world["alice"].slash("privacy policy")
    assert handle.ephemeral and not handle.deferred
    text = handle.content
    assert TRAINER_HERE in text
    for command in ("/privacy optin", "/privacy optout", "/privacy mydata", "/example remove"):
        assert command in text
    for heading in ("What tunecord stores", "Why", "Where it goes", "Your control"):
        assert f"**{heading}" in text
    assert len(text) <= 2000


async def test_the_policy_names_an_openai_compatible_host_and_no_secret(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ")
    alice = guild.add_member("alice")
    async with running_tunecord(
        discord_server, tmp_path, backend="openai", openai_api_key="sk-very-secret",
        openai_base_url="https://opsuser:hunter2@llm.example.net:8443/v1",
    ):
        text = (await alice.slash("privacy policy")).content
    assert "the OpenAI-compatible service at llm.example.net" in text
    for secret in ("sk-very-secret", "hunter2", "opsuser", "8443"):
        assert secret not in text


def test_the_backend_is_named_in_plain_words():
    assert backend_description(Settings()) == TRAINER_HERE
    assert backend_description(
        Settings(start_trainer=False, trainer_url="http://localhost:9000/v1")
    ) == TRAINER_HERE
    assert backend_description(
        Settings(start_trainer=False, trainer_url="http://[::1]:8000/v1")
    ) == TRAINER_HERE
    assert backend_description(
        Settings(trainer_url="https://gpu.example.org/v1", trainer_api_key="secret")
    ) == "the tunecord trainer at gpu.example.org"
    assert backend_description(Settings(backend="openai")) == "OpenAI (api.openai.com)"
    assert backend_description(
        Settings(backend="openai", openai_base_url="https://api.openai.com/v1")
    ) == "OpenAI (api.openai.com)"
    assert backend_description(
        Settings(backend="openai", openai_base_url="http://10.0.0.5:11434/v1")
    ) == "the OpenAI-compatible service at 10.0.0.5"


async def test_opting_in_then_out(world):
    bot, home, alice = world["bot"], world["home"], world["alice"]
    handle = await alice.slash("privacy optin")
    assert handle.deferred
    reply = await handle.next_followup()
    assert reply.ephemeral
    assert reply.content.startswith("You opted in to tunecord in **HQ**.")
    assert "**Add to dataset**" in reply.content and "/privacy optout" in reply.content
    assert TRAINER_HERE in reply.content
    assert await bot.services.privacy.has_opted_in(home.id, alice.id)

    handle = await alice.slash("privacy optout")
    assert handle.deferred
    reply = await handle.next_followup()
    assert reply.ephemeral
    assert reply.content.startswith(
        "You opted out of tunecord in **HQ**. Deleted 0 examples (every one you contributed "
        "or wrote a turn of, in every dataset of this server) and 0 votes."
    )
    assert "`/privacy optin`" in reply.content
    assert not await bot.services.privacy.has_opted_in(home.id, alice.id)
    consent = await bot.storage.consents.get(home.id, alice.id)
    assert consent is not None and not consent.granted and consent.revoked_at is not None

    await (await alice.slash("privacy optin")).next_followup()
    assert await bot.services.privacy.has_opted_in(home.id, alice.id)


async def test_opting_out_deletes_every_turn_vote_and_review_post_of_the_member(world):
    bot, server, home, away = world["bot"], world["server"], world["home"], world["away"]
    alice, bob = world["alice"], world["bob"]
    ids = await populate(world)
    reviews = home.channel("reviews")
    posts = {}
    for name in ("own", "quoting", "bobs"):
        message = await bot.get_channel(reviews.id).send(f"review of {name}")
        assert await bot.storage.review_posts.record(home.id, ids[name], reviews.id, message.id)
        posts[name] = message.id
    away_before = json.loads(await bot.services.privacy.my_data(away.id, alice.id))

    handle = await alice.slash("privacy optout")
    reply = await handle.next_followup()
    assert reply.ephemeral
    assert "Deleted 2 examples (every one you contributed or wrote a turn of" in reply.content
    assert "and 1 vote." in reply.content

    examples = bot.storage.examples
    assert await examples.list_involving(home.id, alice.id) == []
    assert await examples.get(home.id, ids["own"]) is None
    assert await examples.get(home.id, ids["quoting"]) is None  # Bob's, quoting Alice
    assert await bot.storage.votes.by_user(home.id, alice.id) == []
    kept = await examples.get(home.id, ids["bobs"])
    assert kept is not None and kept.status is ExampleStatus.PENDING
    assert (await bot.storage.votes.tally(home.id, ids["bobs"])).score == 0

    shown = {m.id for m in server.messages_in(reviews)}
    assert posts["own"] not in shown and posts["quoting"] not in shown
    assert posts["bobs"] in shown
    assert await bot.storage.review_posts.get(home.id, ids["bobs"]) is not None

    # Another guild's data is untouched, the opt-in there included.
    assert json.loads(await bot.services.privacy.my_data(away.id, alice.id)) == away_before
    assert await bot.services.privacy.has_opted_in(away.id, alice.id)
    assert {e.id for e in await examples.list_involving(away.id, alice.id)} == {ids["away_own"]}
    assert [v.example_id for v in await bot.storage.votes.by_user(away.id, alice.id)] == [
        ids["away_other"]
    ]
    # Bob keeps what he wrote alone.
    assert [e.id for e in await examples.list_involving(home.id, bob.id)] == [ids["bobs"]]


async def test_after_opting_out_contributions_and_captures_are_refused(world):
    bot, home, alice, bob = world["bot"], world["home"], world["alice"], world["bob"]
    await populate(world)
    await (await alice.slash("privacy optout")).next_followup()
    services = bot.services
    pirate = await services.datasets.resolve(home.id, "pirate")

    with pytest.raises(NotAllowed, match="opted out"):
        await services.contributions.add(pirate, alice.id, example(10))
    with pytest.raises(NotAllowed, match="not opted in"):
        await services.contributions.check_authors(home.id, bob.id, {0: alice.id})
    with pytest.raises(NotAllowed, match="not opted in"):
        await services.contributions.add(
            pirate, bob.id, example(11), source=ExampleSource.CAPTURE, authors={1: alice.id}
        )
    assert await bot.storage.examples.list_involving(home.id, alice.id) == []


async def test_mydata_sends_exactly_what_is_stored_and_nothing_of_another_guild(world):
    bot, home, alice = world["bot"], world["home"], world["alice"]
    ids = await populate(world)

    handle = await alice.slash("privacy mydata")
    assert handle.deferred
    reply = await handle.next_followup()
    assert reply.ephemeral
    [attachment] = reply.attachments
    assert attachment.filename == f"tunecord-data-{home.id}.json"
    async with aiohttp.ClientSession() as session, session.get(attachment.url) as response:
        assert response.status == 200
        served = await response.read()
    sent = json.loads(served)

    assert sent == json.loads(await bot.services.privacy.my_data(home.id, alice.id))
    assert (sent["guild_id"], sent["user_id"]) == (str(home.id), str(alice.id))
    assert sent["consent"]["opted_in"] is True and sent["consent"]["opted_in_at"]
    assert [e["id"] for e in sent["examples"]] == [ids["own"], ids["quoting"]]
    quoted = next(e for e in sent["examples"] if e["id"] == ids["quoting"])
    assert quoted["source"] == "capture"
    assert quoted["example"] == example(2).to_obj()
    assert [(v["example_id"], v["value"]) for v in sent["votes"]] == [(ids["bobs"], 1)]
    everything = served.decode()
    for foreign in ("away_own", "away_other"):
        assert f'"id": {ids[foreign]},' not in everything
        assert f'"example_id": {ids[foreign]},' not in everything
    assert "question 4." not in everything and "question 5." not in everything


async def test_mydata_of_a_member_with_nothing_stored(world):
    home, bob = world["home"], world["bob"]
    reply = await (await bob.slash("privacy mydata")).next_followup()
    [attachment] = reply.attachments
    assert json.loads(attachment.data) == {
        "guild_id": str(home.id), "user_id": str(bob.id), "consent": None,
        "examples": [], "votes": [],
    }


def test_an_export_larger_than_the_upload_limit_is_compressed_or_refused():
    data = json.dumps({"examples": ["arr matey"] * 5000}).encode()
    small = export_file(data, 7, limit=len(data))
    assert small.filename == "tunecord-data-7.json" and small.fp.read() == data

    packed = export_file(data, 7, limit=len(data) - 1)
    assert packed.filename == "tunecord-data-7.json.gz"
    assert gzip.decompress(packed.fp.read()) == data

    with pytest.raises(UserError, match="more than Discord lets me send"):
        export_file(data, 7, limit=10)

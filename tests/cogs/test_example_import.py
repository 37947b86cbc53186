"""``/example import``: a curator uploads a JSONL file; the reply counts what was accepted,
skipped and rejected and names each rejected line (as a file when the list is long)."""

from __future__ import annotations

import json

import pytest

from bot.client.import_report import INLINE_LINES, REPORT_FILENAME
from storage.records import ExampleSource, ExampleStatus
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import P
from tests.standins.discord.messages import Upload
from tests.storage.helpers import example

pytest_plugins = ("tests.standins.discord.fixtures",)


@pytest.fixture
async def world(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ")
    alice = guild.add_member("alice")
    mod = guild.add_member("mod", roles=[guild.create_role("mods", permissions=P.MANAGE_MESSAGES)])
    async with running_tunecord(discord_server, tmp_path) as bot:
        marv = await bot.services.datasets.create(guild.id, "marv", system_prompt="You are Marv.")
        yield {"guild": guild, "bot": bot, "marv": marv, "alice": alice, "mod": mod}


def jsonl(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


NO_ASSISTANT = json.dumps({"messages": [{"role": "user", "content": "hello?"}]})


async def test_a_curator_imports_good_lines_and_is_told_each_bad_one(world):
    bot, mod = world["bot"], world["mod"]
    data = jsonl(
        example(1).to_json(),
        example(2).to_json(),
        "{not json",
        example(1).to_json(),  # a duplicate of line 1
        NO_ASSISTANT,
        "",
        example(3).to_json(),
    )
    done = await mod.slash("example import", file=Upload("marv.jsonl", data))
    assert done.deferred
    reply = await done.next_followup()
    assert reply.ephemeral and not reply.attachments and not reply.pings
    head, *rest = reply.content.splitlines()
    assert head.startswith("Imported into **marv** as pending: **3** accepted (")
    assert head.endswith("**1** duplicate skipped, **2** rejected.")
    listed = [line for line in rest if line.startswith("line ")]
    assert [line.split(":")[0] for line in listed] == ["line 3", "line 5"]
    assert listed[0].startswith("line 3: not valid JSON")

    records = await bot.services.contributions.page(world["marv"])
    assert len(records) == 3
    assert {r.status for r in records} == {ExampleStatus.PENDING}
    assert {r.source for r in records} == {ExampleSource.IMPORT}
    assert {r.contributor_id for r in records} == {mod.id}


async def test_a_long_report_comes_as_a_file(world):
    bad = INLINE_LINES + 5
    data = jsonl(example(1).to_json(), *["{not json"] * bad, example(1).to_json())
    done = await world["mod"].slash("example import", file=Upload("big.jsonl", data))
    reply = await done.next_followup()
    assert f"**{bad}** rejected" in reply.content
    assert f"`{REPORT_FILENAME}`" in reply.content and len(reply.content) < 500
    [attachment] = reply.attachments
    assert attachment.filename == REPORT_FILENAME
    text = attachment.data.decode()
    for number in range(2, bad + 2):
        assert f"\nline {number}: not valid JSON" in text
    assert f"line {bad + 2}: already in the dataset as example #" in text


async def test_status_approved_imports_approved_examples(world):
    done = await world["mod"].slash(
        "example import",
        file=Upload("ok.jsonl", jsonl(example(1).to_json(), example(2).to_json())),
        status="approved",
    )
    reply = await done.next_followup()
    assert "as approved: **2** accepted" in reply.content
    records = await world["bot"].services.contributions.page(world["marv"])
    assert [r.status for r in records] == [ExampleStatus.APPROVED] * 2


async def test_a_file_that_is_not_jsonl_is_refused(world):
    done = await world["mod"].slash("example import", file=Upload("notes.txt", b"hello\n"))
    reply = await done.next_followup()
    assert reply.ephemeral
    assert reply.content.startswith("`notes.txt` is not a JSONL file")
    assert await world["bot"].services.contributions.page(world["marv"]) == []


async def test_a_member_forcing_an_import_is_refused_and_nothing_is_imported(world):
    done = await world["alice"].slash(
        "example import", file=Upload("x.jsonl", jsonl(example(1).to_json())), force=True
    )
    assert done.ephemeral and not done.deferred
    assert done.content == "You need the Manage Messages permission to use this command."
    assert await world["bot"].services.contributions.page(world["marv"]) == []

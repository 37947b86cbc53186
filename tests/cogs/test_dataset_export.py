"""``/dataset export``: curators download the training file, byte for byte what a fine-tune
uploads; files over Discord's upload limit are compressed, then split at line ends."""

from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path

import aiohttp
import pytest

from bot.client.export_files import (
    ExampleTooLarge,
    UploadKind,
    describe_plan,
    file_stem,
    group_messages,
    plan_upload,
    upload_budget,
)
from storage.records import ExampleStatus
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import P
from tests.storage.helpers import example

pytest_plugins = ("tests.standins.discord.fixtures",)

CURATOR_MESSAGE = "You need the Manage Messages permission to use this command."


@pytest.fixture
async def world(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ")
    other = discord_server.create_guild("Elsewhere")
    people = {
        "alice": guild.add_member("alice"),
        "mod": guild.add_member(
            "mod", roles=[guild.create_role("mods", permissions=P.MANAGE_MESSAGES)]
        ),
        "manager": guild.add_member(
            "manager", roles=[guild.create_role("managers", permissions=P.MANAGE_GUILD)]
        ),
    }
    async with running_tunecord(discord_server, tmp_path) as bot:
        yield guild, other, bot, people


async def approved_dataset(bot, guild, user_id, name="marv", count=3, **options):
    dataset = await bot.services.datasets.create(guild.id, name, **options)
    for n in range(count):
        added = await bot.services.contributions.add(dataset, user_id, example(n))
        await bot.services.curation.decide(guild.id, added.record.id, ExampleStatus.APPROVED)
    pending = await bot.services.contributions.add(dataset, user_id, example(99))
    assert pending.record.status is ExampleStatus.PENDING  # never exported
    return dataset


async def expected_bytes(bot, dataset) -> bytes:
    out = io.BytesIO()
    await bot.services.files.export(dataset, out)
    return out.getvalue()


async def exported(handle):
    assert handle.deferred
    message = await handle.next_followup()
    assert message.ephemeral and not message.pings
    return message


async def test_a_curator_gets_the_exact_training_file(world):
    guild, _, bot, people = world
    dataset = await approved_dataset(
        bot, guild, people["alice"].id, system_prompt="You are Marv.", policy="include"
    )
    message = await exported(await people["mod"].slash("dataset export", dataset="marv"))
    assert message.content == (
        "The training file of **marv**: 3 approved examples, the system-prompt policy "
        "applied, byte for byte what a fine-tune uploads."
    )
    [attachment] = message.attachments
    assert attachment.filename == "marv.jsonl"
    async with aiohttp.ClientSession() as session, session.get(attachment.url) as response:
        downloaded = await response.read()
    assert downloaded == attachment.data == await expected_bytes(bot, dataset)
    lines = downloaded.decode("utf-8").splitlines()
    assert len(lines) == 3
    for line in lines:  # the policy is applied: the prompt leads every example
        assert json.loads(line)["messages"][0] == {"role": "system", "content": "You are Marv."}


async def test_the_curator_role_exports_the_default_dataset(world):
    guild, _, bot, people = world
    crew = guild.create_role("crew")
    people["alice"].add_roles(crew)
    await bot.services.guild_config.set_curator_role(guild.id, crew.id)
    await bot.services.datasets.create(guild.id, "atlas")
    dataset = await approved_dataset(bot, guild, people["mod"].id, policy="omit")
    await bot.services.datasets.set_default(guild.id, "marv")
    message = await exported(await people["alice"].slash("dataset export"))
    [attachment] = message.attachments
    assert attachment.filename == "marv.jsonl"
    assert attachment.data == await expected_bytes(bot, dataset)


async def test_nothing_approved_means_no_file(world):
    guild, _, bot, people = world
    dataset = await bot.services.datasets.create(guild.id, "marv")
    await bot.services.contributions.add(dataset, people["alice"].id, example(1))
    message = await exported(await people["mod"].slash("dataset export"))
    assert message.content == (
        "**marv** has no approved examples yet: there is nothing to export. Examples are "
        "approved by members' votes or by a curator."
    )
    assert message.attachments == []


async def test_a_member_forcing_export_is_refused(world):
    guild, _, bot, people = world
    await approved_dataset(bot, guild, people["mod"].id)
    handle = await people["alice"].slash("dataset export", dataset="marv", force=True)
    assert handle.content == CURATOR_MESSAGE
    assert handle.ephemeral and not handle.deferred and handle.followups == []


async def test_another_servers_dataset_is_not_found(world):
    guild, other, bot, people = world
    await approved_dataset(bot, other, people["alice"].id, name="secret")
    await bot.services.datasets.create(guild.id, "marv")
    message = await exported(await people["mod"].slash("dataset export", dataset="secret"))
    assert message.content == (
        "There is no dataset named `secret` in this server. `/dataset list` shows them."
    )
    assert message.attachments == []


async def test_a_noisy_name_pings_nobody_and_makes_a_safe_file_name(world):
    guild, _, bot, people = world
    role = guild.create_role("crew")
    name = f"@everyone <@&{role.id}> *log*"
    dataset = await approved_dataset(bot, guild, people["alice"].id, name=name, count=1)
    message = await exported(await people["mod"].slash("dataset export", dataset=name))
    assert message.content.startswith(f"The training file of **@everyone <@&{role.id}> \\*log\\***")
    [attachment] = message.attachments
    assert attachment.filename == f"everyone_{role.id}_log.jsonl"
    assert attachment.data == await expected_bytes(bot, dataset)


# -- fitting the upload limit --------------------------------------------------------------


def jsonl(lines: int, width: int = 40) -> bytes:
    """``lines`` JSONL lines of random (hardly compressible) text, ``2 * width`` long."""
    noise = random.Random(lines)
    return b"".join(
        json.dumps(
            {"messages": [{"role": "user", "content": noise.randbytes(width).hex()}]}
        ).encode()
        + b"\n"
        for _ in range(lines)
    )


def test_a_small_file_goes_as_it_is(tmp_path: Path):
    source = tmp_path / "export.jsonl"
    source.write_bytes(jsonl(5))
    plan = plan_upload(source, "marv", 10_000, tmp_path)
    assert plan.kind is UploadKind.PLAIN
    assert [(f.filename, f.path.read_bytes()) for f in plan.files] == [
        ("marv.jsonl", source.read_bytes())
    ]
    assert plan.messages == [plan.files]


def test_a_file_over_the_limit_is_gzipped_when_that_fits(tmp_path: Path):
    source = tmp_path / "export.jsonl"
    source.write_bytes(
        b"".join(f'{{"n": {n}, "text": "{"ho " * 20}"}}\n'.encode() for n in range(200))
    )
    size = source.stat().st_size
    plan = plan_upload(source, "marv", size // 2, tmp_path)
    assert plan.kind is UploadKind.GZIP
    [packed] = plan.files
    assert packed.filename == "marv.jsonl.gz" and packed.size <= size // 2
    assert gzip.decompress(packed.path.read_bytes()) == source.read_bytes()
    (tmp_path / "again").mkdir()
    again = plan_upload(source, "marv", size // 2, tmp_path / "again")
    assert again.files[0].path.read_bytes() == packed.path.read_bytes()  # reproducible
    text = describe_plan(plan, "marv", 200, size // 2)
    assert "so it is gzip-compressed" in text and "`marv.jsonl.gz`" in text


def test_a_file_too_large_even_compressed_is_split_at_line_ends(tmp_path: Path):
    source = tmp_path / "export.jsonl"
    data = jsonl(30, width=120) + "é ünïcode line\n".encode() * 3
    source.write_bytes(data)
    budget = 700  # random JSON lines of ~290 bytes: gzip cannot get 9 KB under 700
    plan = plan_upload(source, "marv", budget, tmp_path)
    assert plan.kind is UploadKind.SPLIT
    assert not (tmp_path / "marv.jsonl.gz").exists()
    parts = [f.path.read_bytes() for f in plan.files]
    assert b"".join(parts) == data
    assert all(0 < len(p) <= budget and p.endswith(b"\n") for p in parts)
    assert [f.size for f in plan.files] == [len(p) for p in parts]
    names = [f.filename for f in plan.files]
    assert names[0] == "marv.part01.jsonl" and names[-1] == f"marv.part{len(names):02d}.jsonl"
    assert [f for batch in plan.messages for f in batch] == plan.files
    for batch in plan.messages:
        assert len(batch) <= 10 and sum(f.size for f in batch) <= budget
    text = describe_plan(plan, "marv", 33, budget)
    assert f"split at line boundaries into {len(parts)} parts" in text
    assert "`cat marv.part*.jsonl > marv.jsonl`" in text


def test_parts_are_grouped_ten_to_a_message_under_the_budget(tmp_path: Path):
    source = tmp_path / "export.jsonl"
    source.write_bytes(b"".join(f"{n:04d}\n".encode() for n in range(25)))  # 5 bytes a line
    files = plan_upload(source, "s", 7, tmp_path).files  # gzip cannot fit 7 bytes
    assert len(files) == 25
    assert [len(batch) for batch in group_messages(files, 1000)] == [10, 10, 5]
    assert [len(batch) for batch in group_messages(files, 12)] == [2] * 12 + [1]


def test_one_example_over_the_limit_cannot_be_split(tmp_path: Path):
    source = tmp_path / "export.jsonl"
    source.write_bytes(b"short\n" + random.Random(1).randbytes(2500).hex().encode() + b"\n")
    with pytest.raises(ExampleTooLarge, match="Example 2 of the file alone is 4.9 KiB"):
        plan_upload(source, "marv", 1000, tmp_path)


def test_budget_and_file_names():
    assert upload_budget(10 * 1024 * 1024) == 10 * 1024 * 1024 - 64 * 1024
    assert file_stem("marv") == "marv"
    assert file_stem("my data/set: v2") == "my_data_set_v2"
    assert file_stem("../..") == "dataset"
    assert file_stem("ça va") == "a_va"

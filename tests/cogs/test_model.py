"""``/model use|info|rollback|compare`` through the Discord and OpenAI stand-ins."""

from __future__ import annotations

import discord
import pytest
from discord import app_commands
from discord.ext import commands
from openai import AsyncOpenAI

from bot.dataset.examples import ChatExample
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import P
from tests.standins.openai import base_answer
from tests.standins.openai import fixtures as standin_fixtures
from tests.standins.openai.datasets import chat_example, jsonl

pytest_plugins = ("tests.standins.discord.fixtures",)
openai_server = standin_fixtures.openai_server

PROMPT = "You are Marv, a reluctant helper."
BASE = "gpt-4o-mini-2024-07-18"


async def train(openai_server, n: int = 10) -> str:
    client = AsyncOpenAI(base_url=openai_server.base_url, api_key=openai_server.config.api_key)
    try:
        examples = [chat_example(f"what is topic {i}?", f"topic {i} is fun", PROMPT) for i in range(n)]
        f = await client.files.create(file=("t.jsonl", jsonl(examples)), purpose="fine-tune")
        job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=f.id)
        openai_server.jobs.run_to_completion(job.id)
        job = await client.fine_tuning.jobs.retrieve(job.id)
        assert job.fine_tuned_model
        return job.fine_tuned_model
    finally:
        await client.close()


@pytest.fixture
async def world(discord_server, openai_server, tmp_path):
    guild = discord_server.create_guild("HQ", channels=("general",))
    managers = guild.create_role("managers", permissions=P.MANAGE_GUILD | P.MANAGE_MESSAGES)
    people = {"admin": guild.add_member("admin", roles=[managers]), "alice": guild.add_member("alice")}
    settings = {
        "backend": "openai",
        "openai_base_url": openai_server.base_url,
        "openai_api_key": openai_server.config.api_key,
        "provider_max_retries": 1,
    }
    async with running_tunecord(discord_server, tmp_path, **settings) as bot:
        dataset = await bot.services.datasets.create(
            guild.id, "marv", system_prompt=PROMPT, base_model="gpt-4o-mini"
        )
        for i in range(5):
            example = ChatExample.from_obj(chat_example(f"what is topic {i}?", f"topic {i} is fun"))
            await bot.storage.examples.add(guild.id, dataset.id, example, status="approved")
        yield guild, bot, people, dataset


async def answer(handle):
    """The message that answered: the response, or the follow-up after a deferral."""
    return handle.message if not handle.deferred else await handle.next_followup()


async def our_job(bot, guild, dataset, model):
    job = await bot.storage.jobs.create(
        guild.id, dataset_id=dataset.id, provider="openai", model=BASE, status="succeeded"
    )
    assert job is not None
    await bot.storage.jobs.update(guild.id, job.id, fine_tuned_model=model)
    return job


async def test_members_cannot_use_or_roll_back(world):
    guild, bot, people, _ = world
    for command, options in (("model use", {"target": "gpt-4o"}), ("model rollback", {})):
        forced = await people["alice"].slash(command, force=True, **options)
        assert forced.ephemeral and "Manage Server" in forced.content
    assert await bot.storage.active_models.get(guild.id) is None


async def test_use_a_job_then_a_model_id_info_and_rollback(world, openai_server):
    guild, bot, people, dataset = world
    admin = people["admin"]
    info = await answer(await admin.slash("model info"))
    [embed] = info.embeds
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert BASE in fields["Model"] and "base model" in fields["Model"]

    tuned = await train(openai_server)
    job = await our_job(bot, guild, dataset, tuned)
    done = await answer(await admin.slash("model use", target=str(job.id)))
    assert tuned in done.content and "system prompt" in done.content
    active = await bot.storage.active_models.get(guild.id)
    assert active.model == tuned and active.job_id == job.id and active.system_prompt == PROMPT

    other = await answer(await admin.slash("model use", target="gpt-4o"))
    assert "gpt-4o" in other.content
    active = await bot.storage.active_models.get(guild.id)
    assert active.model == "gpt-4o" and active.job_id is None

    missing = await answer(await admin.slash("model use", target="no-such-model"))
    assert "lists no model" in missing.content

    info = await answer(await admin.slash("model info"))
    fields = {f["name"]: f["value"] for f in info.embeds[0]["fields"]}
    assert "gpt-4o" in fields["Model"] and tuned in fields["Rollback goes to"]

    back = await answer(await admin.slash("model rollback"))
    assert tuned in back.content
    assert (await bot.storage.active_models.get(guild.id)).model == tuned
    back = await answer(await admin.slash("model rollback"))
    assert "base model" in back.content and BASE in back.content
    assert await bot.storage.active_models.get(guild.id) is None
    nothing = await answer(await admin.slash("model rollback"))
    assert "already answers" in nothing.content


async def test_an_unfinished_job_cannot_be_used(world):
    guild, bot, people, dataset = world
    job = await bot.storage.jobs.create(
        guild.id, dataset_id=dataset.id, provider="openai", model=BASE, status="running"
    )
    refused = await answer(await people["admin"].slash("model use", target=str(job.id)))
    assert "only a job that succeeded" in refused.content


async def test_compare_answers_three_prompts_side_by_side(world, openai_server):
    guild, bot, people, dataset = world
    tuned = await train(openai_server)
    await our_job(bot, guild, dataset, tuned)
    await answer(await people["admin"].slash("model use", target=tuned))
    shown = await answer(await people["admin"].slash("model compare"))
    [embed] = shown.embeds
    fields = embed["fields"]
    prompts = [f["value"] for f in fields if f["name"].startswith("Prompt")]
    assert prompts == ["what is topic 2?", "what is topic 3?", "what is topic 4?"]
    bases = [f["value"] for f in fields if f["name"] == "Base"]
    tuneds = [f["value"] for f in fields if f["name"] == "Fine-tuned"]
    assert bases == [base_answer(BASE, PROMPT, p) for p in prompts]
    assert tuneds == ["topic 2 is fun", "topic 3 is fun", "topic 4 is fun"]
    calls = openai_server.chat_log
    assert {c.model for c in calls} == {BASE, tuned}
    assert all(c.system_prompt == PROMPT for c in calls)

    one = await answer(await people["admin"].slash("model compare", prompt="what is topic 7?"))
    fields = one.embeds[0]["fields"]
    assert [f["value"] for f in fields] == [
        "what is topic 7?", base_answer(BASE, PROMPT, "what is topic 7?"), "topic 7 is fun"
    ]


async def test_compare_without_an_active_model_says_what_to_do(world):
    guild, bot, people, _ = world
    refused = await answer(await people["admin"].slash("model compare"))
    assert "/model use" in refused.content and refused.ephemeral


class CompareButtonStandIn(commands.Cog):
    """What the fine-tune announcement's Compare button does: dispatch the event."""

    def __init__(self, bot) -> None:
        self.bot = bot

    @app_commands.command(name="press-compare", extras={"public": True})
    async def press(self, interaction: discord.Interaction, model: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        self.bot.dispatch("model_compare_requested", interaction, model)


async def test_the_compare_event_is_answered_like_the_command(
    discord_server, openai_server, tmp_path
):
    guild = discord_server.create_guild("HQ", channels=("general",))
    admin = guild.add_member("admin", roles=[guild.create_role("m", permissions=P.MANAGE_GUILD)])
    settings = {
        "backend": "openai",
        "openai_base_url": openai_server.base_url,
        "openai_api_key": openai_server.config.api_key,
    }
    async with running_tunecord(discord_server, tmp_path, **settings) as bot:
        await bot.add_cog(CompareButtonStandIn(bot))
        await bot.tree.sync()
        dataset = await bot.services.datasets.create(guild.id, "marv", base_model="gpt-4o-mini")
        example = ChatExample.from_obj(chat_example("what is topic 1?", "topic 1 is fun"))
        await bot.storage.examples.add(guild.id, dataset.id, example, status="approved")
        tuned = await train(openai_server)
        shown = await answer(await admin.slash("press-compare", model=tuned))
        values = [f["value"] for f in shown.embeds[0]["fields"]]
        assert values == [
            "what is topic 1?", base_answer(BASE, None, "what is topic 1?"), "topic 1 is fun"
        ]

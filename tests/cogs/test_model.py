"""``/model use|info|rollback|compare`` through the Discord and OpenAI stand-ins."""

from __future__ import annotations

import asyncio
import contextlib

import discord
import pytest
from discord import app_commands
from discord.ext import commands
from openai import AsyncOpenAI

from bot.dataset.examples import ChatExample
from bot.services.models import ModelService, PromptSource
from storage.records import JobStatus
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


@contextlib.asynccontextmanager
async def a_world(discord_server, openai_server, tmp_path, **extra):
    guild = discord_server.create_guild("HQ", channels=("general",))
    managers = guild.create_role("managers", permissions=P.MANAGE_GUILD | P.MANAGE_MESSAGES)
    people = {"admin": guild.add_member("admin", roles=[managers]), "alice": guild.add_member("alice")}
    settings = {
        "backend": "openai",
        "openai_base_url": openai_server.base_url,
        "openai_api_key": openai_server.config.api_key,
        "provider_max_retries": 1,
        **extra,
    }
    async with running_tunecord(discord_server, tmp_path, **settings) as bot:
        dataset = await bot.services.datasets.create(
            guild.id, "marv", system_prompt=PROMPT, base_model="gpt-4o-mini"
        )
        for i in range(5):
            example = ChatExample.from_obj(chat_example(f"what is topic {i}?", f"topic {i} is fun"))
            await bot.storage.examples.add(guild.id, dataset.id, example, status="approved")
        yield guild, bot, people, dataset


@pytest.fixture
async def world(discord_server, openai_server, tmp_path):
    async with a_world(discord_server, openai_server, tmp_path) as made:
        yield made


@pytest.fixture
async def tuning(discord_server, openai_server, tmp_path):
    """The world with 20 approved examples (alice wrote the even ones from topic 5 on) and a
    job follower that notices a finished fine-tune at once."""
    async with a_world(discord_server, openai_server, tmp_path, job_poll_seconds=0.05) as made:
        guild, bot, people, dataset = made
        for i in range(5, 20):
            example = ChatExample.from_obj(chat_example(f"what is topic {i}?", f"topic {i} is fun"))
            await bot.storage.examples.add(
                guild.id, dataset.id, example, status="approved",
                contributor_id=people["alice"].id if i % 2 == 0 else None,
            )
        yield made


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


# -- held-out prompts: the validation split of the tuned model's job ----------------------

LAST_APPROVED = ["what is topic 17?", "what is topic 18?", "what is topic 19?"]


async def fine_tune(bot, guild, admin, openai_server, **options):
    """``/finetune start`` confirmed, run to completion at the backend and followed."""
    handle = await admin.slash("finetune start", dataset="marv", **options)
    plan = await handle.next_followup(timeout=30)
    assert plan.embeds, plan.content
    started = await (await admin.click(plan, "Confirm")).next_followup(timeout=30)
    assert "started" in started.content, started.content
    [job] = await bot.storage.jobs.recent(guild.id, 1)
    openai_server.jobs.run_to_completion(job.provider_job_id)
    async with asyncio.timeout(15):
        while job.status != JobStatus.SUCCEEDED or not job.fine_tuned_model:
            await asyncio.sleep(0.02)
            job = await bot.storage.jobs.get(guild.id, job.id)
    return job


def user_turn(line: bytes) -> str:
    messages = ChatExample.from_json(line.decode()).messages
    return [m["content"] for m in messages if m["role"] == "user"][-1]


async def compared_prompts(admin, openai_server, says: str | None = None):
    """The prompts ``/model compare`` showed, checked against what both models were asked
    (and the embed naming where they came from, when ``says`` is given)."""
    asked = len(openai_server.chat_log)
    shown = await answer(await admin.slash("model compare"))
    if says is not None:
        assert says in shown.embeds[0]["description"]
    prompts = [f["value"] for f in shown.embeds[0]["fields"] if f["name"].startswith("Prompt")]
    sent = openai_server.chat_log[asked:]
    assert sorted(c.last_user for c in sent) == sorted(prompts * 2)  # base and fine-tuned
    return prompts


async def test_compare_asks_the_prompts_the_job_held_out(tuning, openai_server):
    guild, bot, people, _ = tuning
    admin = people["admin"]
    job = await fine_tune(bot, guild, admin, openai_server, validation_split=0.2)
    validation = openai_server.files.files[job.validation_file_id].content.splitlines()
    held = [user_turn(line) for line in validation]
    assert len(held) == 4  # 20 approved examples, a fifth held out
    recorded = await bot.storage.job_splits.example_ids(guild.id, job.id)
    records = [await bot.storage.examples.get(guild.id, i) for i in recorded]
    assert [r.example.messages[-2]["content"] for r in records] == held  # exactly the file

    await answer(await admin.slash("model use", target=str(job.id)))
    assert held[:3] != LAST_APPROVED  # so the fallback could not pass for them
    assert await compared_prompts(admin, openai_server, says="held out") == held[:3]
    # the Compare button names the model, not the job: the same job, the same prompts
    service = ModelService(bot.storage, bot.provider, bot.services.chat)
    comparison = await service.compare(guild.id, model_id=job.fine_tuned_model)
    assert [r.prompt for r in comparison.rows] == held[:3]
    assert comparison.prompt_source == PromptSource.VALIDATION


async def test_an_opted_out_members_held_out_prompt_is_never_asked(tuning, openai_server):
    guild, bot, people, _ = tuning
    admin, alice = people["admin"], people["alice"]
    job = await fine_tune(bot, guild, admin, openai_server, validation_split=0.2)
    recorded = await bot.storage.job_splits.example_ids(guild.id, job.id)
    records = [await bot.storage.examples.get(guild.id, i) for i in recorded]
    hers = [r.example.messages[-2]["content"] for r in records if r.contributor_id == alice.id]
    others = [r.example.messages[-2]["content"] for r in records if r.contributor_id != alice.id]
    assert hers and others  # the split holds both kinds (it depends on the content only)
    await answer(await admin.slash("model use", target=str(job.id)))
    before = await compared_prompts(admin, openai_server)
    assert set(hers) & set(before)

    await (await alice.slash("privacy optout")).next_followup()
    asked = len(openai_server.chat_log)
    after = await compared_prompts(admin, openai_server)
    assert after == others[:3]
    assert not {c.last_user for c in openai_server.chat_log[asked:]} & set(hers)


async def test_without_a_recorded_split_compare_takes_the_last_approved_examples(
    tuning, openai_server
):
    guild, bot, people, _ = tuning
    admin = people["admin"]
    job = await fine_tune(bot, guild, admin, openai_server, validation_split=0.0)
    assert job.validation_file_id is None
    assert await bot.storage.job_splits.example_ids(guild.id, job.id) == []
    await answer(await admin.slash("model use", target=str(job.id)))
    assert await compared_prompts(admin, openai_server, says="may have trained") == LAST_APPROVED
    service = ModelService(bot.storage, bot.provider, bot.services.chat)
    assert (await service.compare(guild.id)).prompt_source == PromptSource.RECENT
    given = await service.compare(guild.id, prompt="what is topic 3?")
    assert given.prompt_source == PromptSource.GIVEN

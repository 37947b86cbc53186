"""``/finetune`` through both stand-ins: estimate, checked starts, one job per confirm, the
follower's posts (each once), the outcome with its loss curve, cancel and list."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from bot.dataset.examples import ChatExample
from storage.records import ExampleStatus, JobStatus
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import P
from tests.standins.openai import fixtures as standin_fixtures

pytest_plugins = ("tests.standins.discord.fixtures",)
openai_server = standin_fixtures.openai_server

PROMPT = "You are a helpful guide."


def qa(n: int) -> ChatExample:
    return ChatExample.from_pairs([(f"what is topic {n}?", f"topic {n} is fun")], system=PROMPT)


async def seed(bot, guild, count: int, name: str = "qa", base_model: str = "gpt-4o-mini"):
    dataset = await bot.services.datasets.create(
        guild.id, name, system_prompt=PROMPT, base_model=base_model
    )
    for n in range(count):
        added = await bot.services.contributions.add(dataset, 1000 + n, qa(n))
        await bot.services.curation.decide(guild.id, added.record.id, ExampleStatus.APPROVED)
    return dataset


@pytest.fixture
async def world(request, discord_server, openai_server, tmp_path):
    """The guild, the bot (provider read timeout = an indirect param, else 120 s), people."""
    guild = discord_server.create_guild("HQ", channels=("general", "training"))
    managers = guild.create_role("managers", permissions=P.MANAGE_GUILD)
    people = {
        "admin": guild.add_member("admin", roles=[managers]),
        "admin2": guild.add_member("admin2", roles=[managers]),
        "alice": guild.add_member("alice"),
    }
    async with running_tunecord(
        discord_server, tmp_path,
        backend="openai", openai_base_url=openai_server.base_url,
        openai_api_key=openai_server.config.api_key, job_poll_seconds=0.05,
        default_model="gpt-4o-mini", provider_timeout=getattr(request, "param", 120.0),
    ) as bot:  # fmt: skip
        await bot.services.guild_config.set_training_channel(guild.id, guild.channel("training").id)
        yield guild, bot, people


async def start_and_confirm(actor, **options):
    handle = await actor.slash("finetune start", **options)
    plan = await handle.next_followup(timeout=30)
    assert plan.ephemeral and plan.embeds, plan.content
    click = await actor.click(plan, "Confirm")
    return plan, click, await click.next_followup(timeout=30)


async def wait_for(predicate, timeout: float = 15.0):
    async with asyncio.timeout(timeout):
        while not (found := predicate()):
            await asyncio.sleep(0.02)
    return found


async def wait_async(check, timeout: float = 20.0):
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


def bot_texts(server, channel) -> list[str]:
    return [m.content for m in server.messages_in(channel)]


async def test_estimate_lists_each_model_the_backend_can_fine_tune(world):
    guild, bot, people = world
    await seed(bot, guild, 12)
    handle = await people["admin"].slash("finetune estimate", dataset="qa")
    reply = await handle.next_followup(timeout=30)
    [embed] = reply.embeds
    names = {f["name"] for f in embed["fields"]}
    assert "gpt-4o-mini-2024-07-18" in names and "gpt-4.1-2025-04-14" in names
    assert "smollm2-135m-instruct" not in names  # OpenAI does not serve it
    mini = next(f["value"] for f in embed["fields"] if f["name"] == "gpt-4o-mini-2024-07-18")
    assert "billed tokens" in mini and "epochs" in mini and "shuts down 2027-01-14" in mini


async def test_start_refuses_with_every_reason(world, openai_server):
    guild, bot, people = world
    await seed(bot, guild, 4, base_model="gpt-3.5-turbo")
    await bot.services.guild_config.set_budget(guild.id, None)
    handle = await people["admin"].slash("finetune start", dataset="qa", model="smollm2-135m-instruct")
    reply = await handle.next_followup(timeout=30)
    assert reply.ephemeral and not reply.components
    assert "cannot fine-tune `smollm2-135m-instruct`" in reply.content
    assert "has 4 approved examples; a fine-tune needs at least 10" in reply.content
    handle = await people["admin"].slash("finetune start", dataset="qa", model="nonsense-model")
    reply = await handle.next_followup(timeout=30)
    assert "`nonsense-model` is not a model I know the price of" in reply.content
    assert not openai_server.requests_to("POST", "/v1/fine_tuning/jobs")


async def test_start_refuses_an_estimate_over_the_budget(world, openai_server):
    guild, bot, people = world
    await seed(bot, guild, 12, base_model="gpt-4.1")
    await bot.services.guild_config.set_budget(guild.id, Decimal("0"))
    handle = await people["admin"].slash("finetune start", dataset="qa")
    reply = await handle.next_followup(timeout=30)
    assert "over this month's remaining budget ($0.00)" in reply.content
    assert not openai_server.requests_to("POST", "/v1/files")


async def test_a_member_forcing_start_is_refused(world, openai_server):
    guild, bot, people = world
    await seed(bot, guild, 12)
    handle = await people["alice"].slash("finetune start", force=True, dataset="qa")
    assert handle.content == "You need the Manage Server permission to use this command."
    assert (await bot.storage.jobs.recent(guild.id)) == []
    # the trainer role is enough
    role = guild.create_role("trainers")
    trainer = guild.add_member("trainer", roles=[role])
    await bot.services.guild_config.set_trainer_role(guild.id, role.id)
    handle = await trainer.slash("finetune estimate", dataset="qa")
    assert (await handle.next_followup(timeout=30)).embeds


async def test_confirm_starts_one_job_follows_it_and_posts_success_once(world, openai_server, discord_server):
    guild, bot, people = world
    training = guild.channel("training")
    dataset = await seed(bot, guild, 20)
    plan, click, answer = await start_and_confirm(people["admin"], dataset="qa", suffix="hq")
    assert all(c.get("disabled") for c in plan.interactive_components())
    assert answer.ephemeral and "Fine-tune #1 of `qa`" in answer.content and "started" in answer.content
    [job] = await bot.storage.jobs.recent(guild.id)
    assert job.provider_job_id and job.validation_file_id  # 20 examples: 2 held out
    remote = openai_server.jobs.get(job.provider_job_id)
    assert remote.metadata == {"tunecord_job": str(job.id), "guild": str(guild.id),
                               "dataset": str(dataset.id)}
    announce = await discord_server.wait_for_message(
        training, check=lambda m: "started by" in m.content, timeout=10
    )
    assert "Fine-tune #1" in announce.content

    openai_server.jobs.run_to_completion(job.provider_job_id)
    success = await discord_server.wait_for_message(
        training, check=lambda m: m.embeds and "succeeded" in m.content, timeout=20
    )
    [embed] = success.embeds
    shown = {f["name"]: f["value"] for f in embed["fields"]}
    assert shown["Model"].startswith("`ft:gpt-4o-mini-2024-07-18:")
    assert "(estimate $" in shown["Cost"]
    assert [a.filename for a in success.attachments] == ["loss-curve.png"]
    assert success.attachments[0].data.startswith(b"\x89PNG")
    labels = [c.get("label") for c in success.interactive_components()]
    assert labels == ["Activate", "Compare"]

    await asyncio.sleep(0.5)  # more rounds of the follower: nothing posted again
    texts = bot_texts(discord_server, training)
    assert sum("succeeded: `ft:" in t for t in texts) == 1
    assert len(texts) == len(set(texts))  # every status and event line once
    assert any("step" in t and "train loss" in t for t in texts)  # metrics summarised
    assert sum(t.count("train loss") for t in texts) <= 8
    posts = [c.request_json for c in discord_server.calls("POST", "/channels/{channel_id}/messages")
             if c.request_json and c.request_json.get("nonce") is not None]
    assert len(posts) == len(texts)  # every post of the follower, the announcement included
    assert all(p["enforce_nonce"] is True for p in posts)
    assert len({p["nonce"] for p in posts}) == len(posts)
    finished = await bot.storage.jobs.get(guild.id, job.id)
    assert finished.status is JobStatus.SUCCEEDED and finished.trained_tokens

    spent = await people["admin"].slash("finetune list")
    listing = (await spent.next_followup(timeout=30)).embeds[0]
    assert "succeeded" in listing["description"]
    spend = listing["fields"][0]["value"]
    assert spend.startswith("$")

    activate = await people["admin"].click(success, "Activate")
    done = await activate.next_followup(timeout=10)
    assert done.content.startswith(f"`{finished.fine_tuned_model}` now answers")
    active = await bot.storage.active_models.get(guild.id)
    assert (active.model, active.system_prompt, active.job_id) == (
        finished.fine_tuned_model, PROMPT, job.id
    )
    compare = await people["admin"].click(success, "Compare")
    if not bot.extra_events.get("on_model_compare_requested"):
        assert compare.content == "Compare is not available yet."
    denied = await people["alice"].click(success, "Activate")
    assert "Manage Server" in denied.content


async def test_a_post_made_but_not_recorded_is_not_made_twice(world, openai_server, discord_server):
    """The crash window between Discord accepting a post and its record committing: the
    same post sent again (same nonce, enforce_nonce) returns the message already made."""
    guild, bot, people = world
    training = guild.channel("training")
    await seed(bot, guild, 12)
    await start_and_confirm(people["admin"], dataset="qa")
    [job] = await bot.storage.jobs.recent(guild.id)
    follower = bot.get_cog("FinetuneCog").follower
    openai_server.jobs.run_to_completion(job.provider_job_id)
    pending = [u for u in await follower.updates(job) if u.text is not None]
    assert pending
    crashed = pending[-1]  # sent by a process that died before recording it
    channel = bot.get_channel(training.id)
    sent = await channel.send(crashed.text, nonce=crashed.nonce)

    async def recorded():
        return (await bot.storage.jobs.get(guild.id, job.id)).status is JobStatus.SUCCEEDED

    await wait_async(recorded)
    await asyncio.sleep(0.3)  # more rounds of the follower
    copies = [m for m in discord_server.messages_in(training) if m.content == crashed.text]
    assert [m.id for m in copies] == [sent.id]
    assert "succeeded" in crashed.text


async def test_two_admins_confirming_at_once_start_one_job(world, openai_server):
    guild, bot, people = world
    await seed(bot, guild, 12)
    plans = []
    for who in ("admin", "admin2"):
        handle = await people[who].slash("finetune start", dataset="qa")
        plans.append(await handle.next_followup(timeout=30))
    clicks = await asyncio.gather(
        people["admin"].click(plans[0], "Confirm"), people["admin2"].click(plans[1], "Confirm")
    )
    answers = [await c.next_followup(timeout=30) for c in clicks]
    assert sum("started" in a.content for a in answers) == 1
    assert sum("already has a fine-tune under way" in a.content for a in answers) == 1
    assert len(openai_server.requests_to("POST", "/v1/fine_tuning/jobs")) == 1
    assert len(await bot.storage.jobs.recent(guild.id)) == 1


async def test_a_dropped_connection_during_start_makes_one_job(world, openai_server):
    guild, bot, people = world
    await seed(bot, guild, 12)
    openai_server.faults.drop("POST /v1/fine_tuning/jobs", 1)
    _, _, answer = await start_and_confirm(people["admin"], dataset="qa")
    assert "started" in answer.content or "did not confirm" in answer.content
    [remote] = openai_server.jobs.jobs.values()
    assert len(openai_server.requests_to("POST", "/v1/fine_tuning/jobs")) >= 1

    async def adopted():
        [job] = await bot.storage.jobs.recent(guild.id)
        return job.provider_job_id

    async with asyncio.timeout(10):  # adopted at once, or reconciled by the follower
        while await adopted() != remote.id:
            await asyncio.sleep(0.05)
    assert len(openai_server.jobs.jobs) == 1


async def test_the_403_refusal_names_the_alternatives_and_the_job_is_kept(world, openai_server):
    guild, bot, people = world
    await seed(bot, guild, 12)
    openai_server.set_training_available(False)
    _, _, answer = await start_and_confirm(people["admin"], dataset="qa")
    assert answer.ephemeral
    assert "bundled trainer" in answer.content and "OPENAI_BASE_URL" in answer.content
    [job] = await bot.storage.jobs.recent(guild.id)
    assert job.status is JobStatus.FAILED and "bundled trainer" in (job.error or "")


async def test_a_failed_job_is_posted_with_what_to_do(world, openai_server, discord_server):
    guild, bot, people = world
    training = guild.channel("training")
    await seed(bot, guild, 12)
    await start_and_confirm(people["admin"], dataset="qa")
    [job] = await bot.storage.jobs.recent(guild.id)
    openai_server.jobs.fail(job.provider_job_id, "invalid_file_format", "Line 3 is broken.")
    failed = await discord_server.wait_for_message(
        training, check=lambda m: m.embeds and "failed" in m.content, timeout=20
    )
    [embed] = failed.embeds
    assert "Line 3 is broken." in embed["description"]
    assert embed["fields"][0]["name"] == "What to do"
    listing = await bot.services.guild_config.get(guild.id)
    assert listing is not None
    await asyncio.sleep(0.3)  # the post is recorded right after it is sent
    assert await bot.storage.spend.total(guild.id) == 0  # the reserved estimate is released


async def test_cancel_by_either_id_is_acknowledged(world, openai_server, discord_server):
    guild, bot, people = world
    training = guild.channel("training")
    await seed(bot, guild, 12)
    await start_and_confirm(people["admin"], dataset="qa")
    [job] = await bot.storage.jobs.recent(guild.id)
    handle = await people["admin"].slash("finetune cancel", job=job.provider_job_id)
    reply = await handle.next_followup(timeout=30)
    assert reply.content.startswith(f"Cancelling fine-tune #{job.id}")
    cancelled = await discord_server.wait_for_message(
        training, check=lambda m: m.embeds and "was cancelled" in m.content, timeout=20
    )
    assert "Cancelled as asked" in cancelled.embeds[0]["description"]
    await asyncio.sleep(0.3)  # the post is recorded right after it is sent
    status = await people["admin"].slash("finetune status", job=str(job.id))
    shown = {f["name"]: f["value"] for f in (await status.next_followup(timeout=30)).embeds[0]["fields"]}
    assert shown["Status"] == "cancelled"
    again = await people["admin"].slash("finetune cancel", job=f"#{job.id}")
    assert (await again.next_followup(timeout=30)).content == f"Job #{job.id} has already cancelled."

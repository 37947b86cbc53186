"""``python -m bot`` killed with SIGKILL in the middle of a fine-tune and started again: no
status or event is posted twice, and the success is announced once."""

from __future__ import annotations

import asyncio
from collections import Counter

from bot.dataset.pricing import PriceCatalogue
from bot.services.registry import build_services
from storage.records import ExampleStatus
from storage.store import Storage
from tests.bot.process import BotProcess, bot_env
from tests.cogs.test_finetune import qa
from tests.standins.discord import P
from tests.standins.openai import fixtures as standin_fixtures

pytest_plugins = ("tests.standins.discord.fixtures",)
openai_server = standin_fixtures.openai_server


async def seed(tmp_path, guild_id: int, training_channel: int) -> None:
    async with await Storage.open(tmp_path / "bot.sqlite3") as storage:
        services = build_services(storage, PriceCatalogue.load())
        dataset = await services.datasets.create(
            guild_id, "qa", system_prompt="You are a helpful guide.", base_model="gpt-4o-mini"
        )
        for n in range(12):
            added = await services.contributions.add(dataset, 1000 + n, qa(n))
            await services.curation.decide(guild_id, added.record.id, ExampleStatus.APPROVED)
        await services.guild_config.set_training_channel(guild_id, training_channel)


async def test_a_killed_bot_resumes_following_without_posting_twice(
    discord_server, openai_server, tmp_path
):
    guild = discord_server.create_guild("HQ", channels=("general", "training"))
    admin = guild.add_member("admin", roles=[guild.create_role("m", permissions=P.MANAGE_GUILD)])
    training = guild.channel("training")
    await seed(tmp_path, guild.id, training.id)
    env = bot_env(
        tmp_path, discord_server,
        TUNECORD_BACKEND="openai", OPENAI_BASE_URL=openai_server.base_url,
        OPENAI_API_KEY=openai_server.config.api_key, TUNECORD_JOB_POLL_SECONDS="1",
    )  # fmt: skip

    def posted() -> list[str]:
        return [m.content for m in discord_server.messages_in(training)]

    async def until(predicate, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.05)

    process = await BotProcess.start(env, tmp_path)
    try:
        await process.wait_for_line("is online as", timeout=60)
        handle = await admin.slash("finetune start", dataset="qa", timeout=30)
        plan = await handle.next_followup(timeout=60)
        click = await admin.click(plan, "Confirm")
        assert "started" in (await click.next_followup(timeout=60)).content
        [job_id] = openai_server.jobs.jobs
        openai_server.clock.advance(20)  # validated, queued, some steps run
        await until(lambda: any("running" in t for t in posted()))
        await asyncio.sleep(1.5)  # a few more rounds
    finally:
        await process.kill()  # SIGKILL
    before = posted()

    openai_server.jobs.run_to_completion(job_id)
    process = await BotProcess.start(env, tmp_path)
    try:
        await process.wait_for_line("is online as", timeout=60)
        await until(lambda: any("succeeded: `ft:" in t for t in posted()))
        await asyncio.sleep(2.5)  # two more rounds: nothing more
    finally:
        await process.kill()
    after = posted()
    assert after[: len(before)] == before
    counts = Counter(after)
    assert [t for t, n in counts.items() if n > 1] == []
    assert sum("succeeded: `ft:" in t for t in after) == 1
    assert "Traceback" not in process.output

"""The whole story through both stand-ins: members contribute and curate a dataset, an admin
estimates and starts a fine-tune, the job is followed to success, the model is activated,
and a member's message is answered by the fine-tuned model with the dataset's system prompt."""

from __future__ import annotations

import asyncio

from tests.bot.inprocess import running_tunecord
from tests.standins.discord import P
from tests.standins.openai import fixtures as standin_fixtures

pytest_plugins = ("tests.standins.discord.fixtures",)
openai_server = standin_fixtures.openai_server

PROMPT = "You are Marv, a reluctant chatbot."
EXAMPLES = 12


async def answer_of(handle):
    return await handle.next_followup(timeout=30) if handle.deferred else handle.message


async def test_from_an_empty_dataset_to_the_communitys_own_model(
    discord_server, openai_server, tmp_path
):
    guild = discord_server.create_guild("HQ", channels=("general", "reviews", "training"))
    admin = guild.add_member("admin", roles=[guild.create_role("admins", permissions=P.MANAGE_GUILD)])
    members = [guild.add_member(f"member{n}") for n in range(EXAMPLES)]
    async with running_tunecord(
        discord_server, tmp_path,
        backend="openai", openai_base_url=openai_server.base_url,
        openai_api_key=openai_server.config.api_key, job_poll_seconds=0.05,
        default_model="gpt-4o-mini",
    ) as bot:  # fmt: skip
        # The admin sets up through the commands.
        await answer_of(await admin.slash(
            "dataset create", name="marv", system_prompt=PROMPT, policy="include",
            base_model="gpt-4o-mini",
        ))  # fmt: skip
        await answer_of(await admin.slash("config review-channel", channel=guild.channel("reviews")))
        await answer_of(await admin.slash("config vote-threshold", value=1))
        await answer_of(
            await admin.slash("config training-channel", channel=guild.channel("training"))
        )

        # Every member contributes one example; the next member's upvote approves it.
        for n, member in enumerate(members):
            form = await member.slash("example add")
            done = await member.submit_modal(
                form, {"User message": f"What is {n} + {n}?", "Assistant reply": f"{2 * n}. Obviously."}
            )
            assert "waiting for review" in (await answer_of(done)).content
            post = await discord_server.wait_for_message(
                guild.channel("reviews"), check=lambda m, n=n: f"What is {n} + {n}?" in str(m.embeds)
            )
            await members[(n + 1) % EXAMPLES].click(post, "Upvote")
        stats = await answer_of(await members[0].slash("dataset stats"))
        fields = {f["name"]: f["value"] for f in stats.embeds[0]["fields"]}
        assert any(str(EXAMPLES) in value for value in fields.values())

        # The admin estimates, starts and confirms; the job is followed to success.
        estimate = await answer_of(await admin.slash("finetune estimate"))
        assert estimate.embeds
        plan = await answer_of(await admin.slash("finetune start", suffix="marv"))
        confirmed = await admin.click(plan, "Confirm")
        assert "started" in (await confirmed.next_followup(timeout=30)).content
        [job] = await bot.storage.jobs.recent(guild.id)
        openai_server.jobs.run_to_completion(job.provider_job_id)
        success = await discord_server.wait_for_message(
            guild.channel("training"), check=lambda m: m.embeds and "succeeded" in m.content, timeout=30
        )
        assert [a.filename for a in success.attachments] == ["loss-curve.png"]
        # Clicked the moment the post appears (its record may still be on its way).
        activated = await (await admin.click(success, "Activate")).next_followup(timeout=10)
        tuned = (await bot.storage.active_models.get(guild.id)).model
        assert tuned.startswith("ft:gpt-4o-mini") and activated.content.startswith(f"`{tuned}`")

        # A member's message in a chat channel is answered by the community's model.
        await answer_of(await guild.owner.slash("chat enable", channel=guild.channel("general")))
        asked = await members[3].send(guild.channel("general"), "What is 3 + 3?")
        reply = await discord_server.wait_for_message(
            guild.channel("general"), check=lambda m: m.author.id == bot.user.id, timeout=30
        )
        assert reply.reference_id == asked.id and not reply.pings
        call = openai_server.chat_log[-1]
        assert (call.model, call.system_prompt) == (tuned, PROMPT)
        await asyncio.sleep(0.2)
        texts = [m.content for m in discord_server.messages_in(guild.channel("training"))]
        assert sum("succeeded" in t for t in texts) == 1

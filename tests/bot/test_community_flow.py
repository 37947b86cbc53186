"""The whole community flow through ``python -m bot`` itself, as a server uses it: an
admin sets up, members contribute and vote, the numbers and the training file come out
right, a restart changes nothing, and a member who opts out leaves nothing behind."""

from __future__ import annotations

import json
import signal
from typing import Any

from tests.bot.process import BotProcess, bot_env
from tests.standins.discord import P

pytest_plugins = ("tests.standins.discord.fixtures",)

PROMPT = "You are Marv, a reluctant chatbot."


def fields(message: Any) -> dict[str, str]:
    [embed] = message.embeds
    return {f["name"]: f["value"] for f in embed["fields"]}


async def followup(handle: Any) -> Any:
    """The bot's answer: the first follow-up of a deferred interaction, else the response."""
    if handle.deferred:
        return await handle.next_followup()
    assert handle.message is not None, handle
    return handle.message


async def test_a_server_builds_curates_measures_and_forgets(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ", channels=("general", "reviews"))
    reviews = guild.channel("reviews")
    owner = guild.owner
    alice, bob, carol = (guild.add_member(n) for n in ("alice", "bob", "carol"))
    mod = guild.add_member("mod", roles=[guild.create_role("mods", permissions=P.MANAGE_MESSAGES)])
    env = bot_env(tmp_path, discord_server)
    process = await BotProcess.start(env, tmp_path)
    try:
        await process.wait_for_line("is online as")
        # The admin sets the server up.
        created = await followup(
            await owner.slash("dataset create", name="marv", system_prompt=PROMPT, policy="include")
        )
        assert created.content.startswith("Created the dataset **marv**")
        await followup(await owner.slash("config review-channel", channel=reviews))
        await followup(await owner.slash("config vote-threshold", value=2))

        # A member contributes; a mistake is kept for Try again, then fixed.
        form = await alice.slash("example add")
        assert form.modal["title"] == "Add to marv"
        wrong = await alice.submit_modal(
            form,
            {
                "User message": "What is 2 + 2? @everyone",
                "Assistant reply": "4, sadly.",
                "Earlier turns (optional)": "Bot: hello",
            },
        )
        refusal = await followup(wrong)
        assert "**Earlier turns**, line 1" in refusal.content and not refusal.pings
        again = await alice.click(refusal, "Try again")
        typed = {c.get("custom_id"): c.get("value") for c in _inputs(again.modal)}
        assert typed == {
            "user": "What is 2 + 2? @everyone",
            "assistant": "4, sadly.",
            "earlier": "Bot: hello",
        }
        done = await alice.submit_modal(again, {"Earlier turns (optional)": ""})
        confirmation = await followup(done)
        assert "waiting for review" in confirmation.content

        # It is posted for review; two members approve it by vote.
        post = await discord_server.wait_for_message(reviews)
        assert not post.pings
        await bob.click(post, "Upvote")
        await carol.click(post, "Upvote")
        assert fields(discord_server.world.messages[post.id])["Status"] == "approved"

        # The numbers and the training file.
        stats = fields(await followup(await alice.slash("dataset stats")))
        assert any("1" in value for value in stats.values())
        exported = await followup(await mod.slash("dataset export"))
        [attachment] = exported.attachments
        [line] = attachment.data.decode("utf-8").splitlines()
        assert json.loads(line)["messages"] == [
            {"role": "system", "content": PROMPT},
            {"role": "user", "content": "What is 2 + 2? @everyone"},
            {"role": "assistant", "content": "4, sadly."},
        ]
        assert await process.stop() == 0
    finally:
        await process.kill()

    # A restart on the same database: the same numbers, the same file, working buttons.
    process = await BotProcess.start(env, tmp_path)
    try:
        await process.wait_for_line("is online as")
        exported_again = await followup(await mod.slash("dataset export"))
        assert exported_again.attachments[0].data == attachment.data
        decided = discord_server.world.messages[post.id]
        assert decided.component("Upvote")["disabled"] and decided.component("Downvote")["disabled"]
        reopened = await mod.click(decided, "Reject")  # a curator can still change a decision
        assert fields(reopened.message)["Status"] == "rejected"
        await mod.click(post, "Approve")

        # Alice opts out: her example, its review post and the file's line are gone.
        gone = await followup(await alice.slash("privacy optout"))
        assert gone.ephemeral
        assert post.id not in {m.id for m in discord_server.messages_in(reviews)}
        empty = await followup(await mod.slash("dataset export"))
        assert empty.attachments == [] and "no approved examples" in empty.content
        refused = await alice.slash("example add")
        assert refused.modal is None and "opted out" in refused.content
        assert await process.stop(signal.SIGTERM) == 0
    finally:
        await process.kill()
    assert "Traceback" not in process.output


def _inputs(modal: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for row in modal["components"]:
        if row.get("type") == 18:
            found.append(row["component"])
        for comp in row.get("components") or []:
            found.append(comp)
    return [c for c in found if c.get("type") == 4]

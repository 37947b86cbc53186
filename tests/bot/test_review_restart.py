"""Review posts outlive the process: after ``python -m bot`` is killed and started again,
the buttons of a post made before still work, and every acknowledged vote still counts."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from typing import Any

from bot.dataset.examples import ChatExample
from tests.bot.inprocess import running_tunecord
from tests.bot.process import BotProcess, bot_env
from tests.standins.discord import P

pytest_plugins = ("tests.standins.discord.fixtures",)

UPDATE_MESSAGE = 7


def score(message: Any) -> str:
    [embed] = message.embeds
    return {f["name"]: f["value"] for f in embed["fields"]}["Score"]


def status(message: Any) -> str:
    [embed] = message.embeds
    return {f["name"]: f["value"] for f in embed["fields"]}["Status"]


async def test_old_review_posts_keep_working_after_the_bot_is_killed(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ", channels=("general", "reviews"))
    reviews = guild.channel("reviews")
    alice, bob, carol, dave = (guild.add_member(n) for n in ("alice", "bob", "carol", "dave"))
    mod = guild.add_member("mod", roles=[guild.create_role("mods", permissions=P.MANAGE_MESSAGES)])
    database = tmp_path / "tunecord.sqlite3"

    # The bot, built by the same composition root, posts a new example for review.
    # (Once ``/example add`` exists, the first bot process can add it itself.)
    async with running_tunecord(discord_server, tmp_path) as bot:
        assert bot.settings.database_path == database
        dataset = await bot.services.datasets.create(guild.id, "marv")
        await bot.services.guild_config.set_review_channel(guild.id, reviews.id)
        await bot.services.guild_config.set_vote_threshold(guild.id, 10)
        example = ChatExample.from_pairs([("Is this kept?", "Every vote is.")])
        record = (await bot.services.contributions.add(dataset, alice.id, example)).record
        bot.dispatch("example_added", record)
        post = await discord_server.wait_for_message(reviews)
        async with asyncio.timeout(5):
            while await bot.storage.review_posts.get(guild.id, record.id) is None:
                await asyncio.sleep(0.01)

    env = bot_env(tmp_path, discord_server, TUNECORD_DB=str(database))
    process = await BotProcess.start(env, tmp_path)
    try:
        await process.wait_for_line("is online as")
        for voter, expected in ((bob, "+1 (1 up, 0 down)"), (carol, "+2 (2 up, 0 down)")):
            click = await voter.click(post, "Upvote")
            assert click.response_type == UPDATE_MESSAGE  # acknowledged with the new score
            assert score(click.message).startswith(expected)
        assert await process.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        await process.kill()
    with sqlite3.connect(database) as conn:  # every acknowledged vote was stored
        assert conn.execute("SELECT count(*) FROM votes").fetchone() == (2,)

    process = await BotProcess.start(env, tmp_path)
    try:
        await process.wait_for_line("is online as")
        click = await dave.click(post, "Upvote")  # the post made before the crash
        assert click.response_type == UPDATE_MESSAGE
        assert score(click.message).startswith("+3 (3 up, 0 down)")
        await bob.click(post, "Downvote")  # a vote from before the crash is changed, not added
        assert score(discord_server.world.messages[post.id]).startswith("+1 (2 up, 1 down)")
        own = await alice.click(post, "Upvote")
        assert own.ephemeral and own.content == "You cannot vote on your own example."
        await mod.click(post, "Approve")
        assert status(discord_server.world.messages[post.id]) == "approved"
        assert await process.stop() == 0
    finally:
        await process.kill()

    assert [m.id for m in discord_server.messages_in(reviews)] == [post.id]
    assert "Traceback" not in process.output
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT sum(value > 0), sum(value < 0) FROM votes").fetchone() == (2, 1)
        assert conn.execute("SELECT status FROM examples").fetchone() == ("approved",)

"""Base models autocomplete from the price catalogue and the backend: the models the
backend serves come first and are marked; a backend that does not answer costs nothing."""

from __future__ import annotations

import time

from tests.bot.inprocess import running_tunecord
from tests.standins.openai import fixtures as standin_fixtures

pytest_plugins = ("tests.standins.discord.fixtures",)
openai_server = standin_fixtures.openai_server


async def test_models_the_backend_serves_come_first_and_marked(
    discord_server, openai_server, tmp_path
):
    guild = discord_server.create_guild("HQ")
    async with running_tunecord(
        discord_server, tmp_path, backend="openai", openai_base_url=openai_server.base_url,
        openai_api_key=openai_server.config.api_key,
    ):  # fmt: skip
        choices = await guild.owner.autocomplete("dataset create", "base_model", "", name="x")
    names = [c["name"] for c in choices]
    served = [n for n in names if n.endswith("(on this bot's backend)")]
    assert "gpt-4o-mini-2024-07-18 (on this bot's backend)" in served
    assert names[: len(served)] == served  # served first
    assert "smollm2-135m-instruct" in names  # known to the catalogue, not served by OpenAI
    assert all(c["value"] == c["name"].split(" ")[0] for c in choices)
    assert openai_server.requests_to("GET", "/v1/models")


async def test_a_backend_that_does_not_answer_leaves_the_catalogue(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ")
    async with running_tunecord(  # nothing listens at this trainer URL
        discord_server, tmp_path, trainer_url="http://127.0.0.1:9/v1",
        provider_max_retries=0,
    ):  # fmt: skip
        started = time.monotonic()
        choices = await guild.owner.autocomplete("dataset create", "base_model", "gpt", name="x")
    assert time.monotonic() - started < 2.9  # inside Discord's 3 s
    assert choices and all(c["name"] == c["value"] for c in choices)
    assert all("gpt" in c["value"] for c in choices)

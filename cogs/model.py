"""``/model use|info|rollback|compare``: which model answers in this server.

Also answers the ``model_compare_requested`` event (``bot.dispatch("model_compare_requested",
interaction, model_id)``, sent by the **Compare** button of a finished fine-tune) exactly like
``/model compare``. A thin adapter over :class:`~bot.services.models.ModelService`.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.client.bot import TunecordBot
from bot.client.checks import admin_only, curator_only, guild_of
from bot.errors import UserError
from bot.services.models import Comparison, ModelService, ModelStatus, PromptSource

log = logging.getLogger(__name__)

PUBLIC = {"public": True}
PROMPT_CHARS = 200
ANSWER_CHARS = 700


def _cut(text: str, limit: int) -> str:
    text = text.strip() or "-"
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _code(text: str) -> str:
    return f"`{text.replace('`', '')[:100]}`"


PROMPT_SOURCES = {
    PromptSource.GIVEN: "Prompt: yours",
    PromptSource.VALIDATION: "Prompts: held out in the fine-tune's validation file (never trained on)",
    PromptSource.RECENT: (
        "Prompts: the dataset's last approved examples (no validation split was recorded: "
        "the model may have trained on them)"
    ),
}


def comparison_embed(comparison: Comparison) -> discord.Embed:
    """The prompts with both answers side by side (truncated to fit one embed)."""
    embed = discord.Embed(
        title="Base vs fine-tuned",
        description=(
            f"Base: {_code(comparison.base_model)}\n"
            f"Fine-tuned: {_code(comparison.tuned_model)}\n"
            + ("System prompt: the dataset's" if comparison.system_prompt else "No system prompt")
            + f"\n{PROMPT_SOURCES[comparison.prompt_source]}"
        ),
    )
    for i, row in enumerate(comparison.rows, 1):
        embed.add_field(name=f"Prompt {i}", value=_cut(row.prompt, PROMPT_CHARS), inline=False)
        embed.add_field(name="Base", value=_cut(row.base, ANSWER_CHARS), inline=True)
        embed.add_field(name="Fine-tuned", value=_cut(row.tuned, ANSWER_CHARS), inline=True)
    return embed


def status_embed(status: ModelStatus) -> discord.Embed:
    choice = status.choice
    embed = discord.Embed(title="The model answering in this server")
    if status.active is not None:
        embed.add_field(name="Model", value=_code(status.active.model), inline=False)
        embed.add_field(
            name="Active since", value=discord.utils.format_dt(status.active.activated_at)
        )
        job = status.job
        embed.add_field(
            name="Fine-tune",
            value=f"job #{job.id} (base {_code(job.model)})" if job else "a model id, not a job",
        )
    else:
        embed.add_field(
            name="Model",
            value=f"{_code(choice.model)}, a base model: no fine-tuned model is active",
            inline=False,
        )
    prompt = choice.system_prompt
    embed.add_field(
        name="System prompt",
        value=_cut(prompt, 1000) if prompt else "none",
        inline=False,
    )
    embed.add_field(
        name="Rollback goes to",
        value=_code(status.rollback_to) if status.rollback_to else "the base model",
        inline=False,
    )
    return embed


@app_commands.guild_only()
class ModelCog(
    commands.GroupCog, group_name="model", group_description="The model that answers in this server"
):
    def __init__(self, bot: TunecordBot, service: ModelService) -> None:
        self.bot = bot
        self.models = service

    @app_commands.command(name="use", description="Answer with a fine-tuned model from now on")
    @app_commands.describe(target="A fine-tune job's number, or a model id the backend lists")
    @admin_only()
    async def use(self, interaction: discord.Interaction, target: str) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        active = await self.models.use(guild.id, target)
        prompt = "with the dataset's system prompt" if active.system_prompt else "without a system prompt"
        await interaction.followup.send(
            f"{_code(active.model)} answers in this server from now on, {prompt}. "
            "`/model rollback` goes back.",
            ephemeral=True,
        )

    @app_commands.command(name="info", description="Which model answers here", extras=PUBLIC)
    async def info(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        status = await self.models.info(guild.id)
        await interaction.followup.send(embed=status_embed(status), ephemeral=True)

    @app_commands.command(name="rollback", description="Go back to the previous model")
    @admin_only()
    async def rollback(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        done = await self.models.rollback(guild.id)
        kind = "the previous model" if done.fine_tuned else "the base model"
        await interaction.followup.send(
            f"Back to {kind}: {_code(done.model)} answers from now on.", ephemeral=True
        )

    @app_commands.command(
        name="compare", description="The base and the fine-tuned model answer side by side"
    )
    @app_commands.describe(
        prompt="What to ask both (default: three prompts the fine-tune held out for validation)"
    )
    @curator_only()
    async def compare(self, interaction: discord.Interaction, prompt: str | None = None) -> None:
        await self._compare(interaction, prompt, None)

    @commands.Cog.listener("on_model_compare_requested")
    async def compare_requested(self, interaction: discord.Interaction, model_id: str) -> None:
        try:
            await self._compare(interaction, None, model_id)
        except UserError as exc:
            await interaction.followup.send(str(exc), ephemeral=True)

    async def _compare(
        self, interaction: discord.Interaction, prompt: str | None, model_id: str | None
    ) -> None:
        guild = guild_of(interaction)
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=True, thinking=True)
        comparison = await self.models.compare(guild.id, prompt, model_id)
        await interaction.followup.send(embed=comparison_embed(comparison), ephemeral=True)


async def setup(bot: TunecordBot) -> None:
    service = ModelService(bot.storage, bot.provider, bot.services.chat)
    await bot.add_cog(ModelCog(bot, service))

"""``/dataset``: create, describe, change, delete and export a server's datasets.

Admins (Manage Server) create, edit, delete and pick the default; curators export; every
member lists, reads and sizes them up. Checks run on every use (a subcommand cannot carry
Discord's default permissions, so members see the admin subcommands and are refused).
A ``dataset`` option left out means the server's default dataset, or its only one.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import discord
from discord import app_commands
from discord.ext import commands

from bot.client.bot import TunecordBot
from bot.client.checks import admin_only, curator_only, guild_of, require_admin
from bot.client.choices import dataset_choices, model_choices
from bot.client.dataset_embeds import (
    dataset_info_embed,
    dataset_list_embed,
    shown,
    stats_embed,
    total_examples,
)
from bot.client.export_files import (
    describe_plan,
    discord_files,
    file_stem,
    plan_upload,
    upload_budget,
)
from bot.client.posts import delete_review_posts
from bot.client.ui import TunecordView
from bot.dataset.policy import SystemPromptPolicy
from bot.errors import InvalidInput, UserError
from storage.records import Dataset, DatasetStats

CONFIRM_SECONDS = 120.0
"""How long the Delete / Cancel buttons of ``/dataset delete`` wait for an answer."""
CLEAR = "-"
"""What an admin types in ``/dataset edit`` to clear the system prompt or base model."""

POLICY_CHOICES = [app_commands.Choice(name=p.value, value=p.value) for p in SystemPromptPolicy]


def _cleared(value: str | None) -> str | None:
    """``-`` clears a setting (the service clears on an empty string)."""
    if value is not None and value.strip() == CLEAR:
        return ""
    return value


class ConfirmDelete(TunecordView):
    """Delete / Cancel under ``/dataset delete``'s confirmation; only the admin who asked
    may answer, and Delete re-checks that they are still an admin."""

    def __init__(self, bot: TunecordBot, dataset: Dataset, examples: int, owner_id: int) -> None:
        super().__init__(timeout=CONFIRM_SECONDS)
        self.bot = bot
        self.dataset = dataset
        self.examples = examples
        self.owner_id = owner_id
        self.message: discord.WebhookMessage | None = None

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await super().interaction_check(interaction)
        if interaction.user.id != self.owner_id:
            raise UserError("Only the admin who asked for this deletion can answer it.")
        return True

    @discord.ui.button(label="Delete", style=discord.ButtonStyle.danger)
    async def delete(self, interaction: discord.Interaction, _: discord.ui.Button[ConfirmDelete]) -> None:  # fmt: skip
        require_admin(interaction)
        await interaction.response.defer()  # the deletion waits for the write lock
        posts = await self.bot.services.datasets.delete(self.dataset.guild_id, self.dataset.id)
        removed = await delete_review_posts(self.bot, posts)
        self.stop()
        text = f"Deleted **{shown(self.dataset.name)}** and its {self.examples:,} examples."
        if removed:
            text += f" Removed {removed:,} review posts."
        await interaction.edit_original_response(content=text, view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, _: discord.ui.Button[ConfirmDelete]) -> None:  # fmt: skip
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)

    async def on_timeout(self) -> None:
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
        if self.message is None:
            return
        try:
            await self.message.edit(
                content=f"No answer in time: **{shown(self.dataset.name)}** was not deleted.",
                view=self,
            )
        except discord.HTTPException:
            pass  # the confirmation was dismissed or its token expired


@app_commands.guild_only()
class DatasetCog(
    commands.GroupCog, group_name="dataset", group_description="This server's datasets"
):
    """Thin adapter over :class:`~bot.services.datasets.DatasetService`, the stats and
    the file services."""

    def __init__(self, bot: TunecordBot) -> None:
        self.bot = bot
        self.datasets = bot.services.datasets

    async def _counts(self, dataset: Dataset) -> DatasetStats:
        """Examples by status, from the totals the database keeps (no token counting)."""
        return await self.datasets.counts(dataset)

    # -- admins -----------------------------------------------------------------------

    @app_commands.command(name="create", description="Create a dataset")
    @app_commands.describe(
        name="The dataset's name (at most 50 characters)",
        system_prompt="The system prompt its model is trained and chats with",
        policy="How the system prompt goes into training (include when a prompt is given)",
        base_model="The model it is fine-tuned from",
    )
    @app_commands.choices(policy=POLICY_CHOICES)
    @app_commands.autocomplete(base_model=model_choices)
    @admin_only()
    async def create(
        self,
        interaction: discord.Interaction,
        name: str,
        system_prompt: str | None = None,
        policy: str | None = None,
        base_model: str | None = None,
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        dataset = await self.datasets.create(
            guild.id, name, system_prompt=system_prompt, policy=policy, base_model=base_model
        )
        model = f"base model `{dataset.base_model}`" if dataset.base_model else "no base model"
        await interaction.followup.send(
            f"Created the dataset **{shown(dataset.name)}**: policy `{dataset.policy.value}`, "
            f"{model}. `/dataset info` shows it, `/dataset default` makes it the one commands "
            "use when no dataset is named.",
            ephemeral=True,
        )

    @app_commands.command(
        name="edit", description="Change a dataset's system prompt, policy or model"
    )
    @app_commands.describe(
        dataset="The dataset (default: the server's default dataset)",
        system_prompt="The new system prompt; - clears it",
        policy="How the system prompt goes into training",
        base_model="The new base model; - clears it",
    )
    @app_commands.choices(policy=POLICY_CHOICES)
    @app_commands.autocomplete(dataset=dataset_choices, base_model=model_choices)
    @admin_only()
    async def edit(
        self,
        interaction: discord.Interaction,
        dataset: str | None = None,
        system_prompt: str | None = None,
        policy: str | None = None,
        base_model: str | None = None,
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        current = await self.datasets.resolve(guild.id, dataset)
        if system_prompt is None and policy is None and base_model is None:
            raise InvalidInput(
                "Nothing to change: give a `system_prompt`, a `policy` or a `base_model` "
                f"(`{CLEAR}` clears the prompt or the model)."
            )
        updated = await self.datasets.edit(
            guild.id,
            current.id,
            system_prompt=_cleared(system_prompt),
            policy=policy,
            base_model=_cleared(base_model),
        )
        prompt = (
            f"a system prompt of {len(updated.system_prompt):,} characters"
            if updated.system_prompt
            else "no system prompt"
        )
        model = f"base model `{updated.base_model}`" if updated.base_model else "no base model"
        await interaction.followup.send(
            f"Updated **{shown(updated.name)}**: policy `{updated.policy.value}`, {prompt}, "
            f"{model}.",
            ephemeral=True,
        )

    @app_commands.command(name="delete", description="Delete a dataset and all its examples")
    @app_commands.describe(dataset="The dataset to delete")
    @app_commands.autocomplete(dataset=dataset_choices)
    @admin_only()
    async def delete(self, interaction: discord.Interaction, dataset: str) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        found = await self.datasets.resolve(guild.id, dataset)
        counts = await self._counts(found)
        total = total_examples(counts)
        view = ConfirmDelete(self.bot, found, total, interaction.user.id)
        view.message = await interaction.followup.send(
            f"Delete **{shown(found.name)}**? Its {total:,} examples "
            f"({counts.approved.examples:,} approved, {counts.pending.examples:,} pending, "
            f"{counts.rejected.examples:,} rejected), their votes and their review posts "
            "will be gone for good. This cannot be undone.",
            view=view,
            ephemeral=True,
            wait=True,
        )

    @app_commands.command(name="default", description="The dataset commands use when none is named")
    @app_commands.describe(dataset="The dataset to make this server's default")
    @app_commands.autocomplete(dataset=dataset_choices)
    @admin_only()
    async def default(self, interaction: discord.Interaction, dataset: str) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        chosen = await self.datasets.set_default(guild.id, dataset)
        await interaction.followup.send(
            f"**{shown(chosen.name)}** is now this server's default dataset: commands use it "
            "when no `dataset` is given.",
            ephemeral=True,
        )

    # -- members ----------------------------------------------------------------------

    @app_commands.command(
        name="list", description="This server's datasets", extras={"public": True}
    )
    async def list_(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        datasets = await self.datasets.all(guild.id)
        if not datasets:
            await interaction.followup.send(
                "This server has no dataset yet. An admin can create one with `/dataset create`.",
                ephemeral=True,
            )
            return
        rows = [(d, await self._counts(d)) for d in datasets]
        default = await self.datasets.default(guild.id)
        embed = dataset_list_embed(guild.name, rows, default.id if default else None)
        await interaction.followup.send(embed=embed, ephemeral=True)

    @app_commands.command(
        name="info", description="What a dataset is and holds", extras={"public": True}
    )
    @app_commands.describe(dataset="The dataset (default: the server's default dataset)")
    @app_commands.autocomplete(dataset=dataset_choices)
    async def info(self, interaction: discord.Interaction, dataset: str | None = None) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        found = await self.datasets.resolve(guild.id, dataset)
        default = await self.datasets.default(guild.id)
        embed = dataset_info_embed(
            found, await self._counts(found), is_default=default is not None and default.id == found.id
        )  # fmt: skip
        await interaction.followup.send(embed=embed, ephemeral=True)

    @app_commands.command(
        name="stats",
        description="A dataset's size, tier and training cost",
        extras={"public": True},
    )
    @app_commands.describe(
        dataset="The dataset (default: the server's default dataset)",
        model="The model to price (default: the dataset's base model)",
        epochs="Training epochs (default: what OpenAI picks for this many examples)",
    )
    @app_commands.autocomplete(dataset=dataset_choices, model=model_choices)
    async def stats(
        self,
        interaction: discord.Interaction,
        dataset: str | None = None,
        model: str | None = None,
        epochs: app_commands.Range[int, 1, 50] | None = None,
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)  # may count tokens the first time
        found = await self.datasets.resolve(guild.id, dataset)
        report = await self.bot.services.stats.stats(found, model=model, epochs=epochs)
        await interaction.followup.send(embed=stats_embed(report), ephemeral=True)

    # -- curators -----------------------------------------------------------------------

    @app_commands.command(name="export", description="Download a dataset's training file (JSONL)")
    @app_commands.describe(dataset="The dataset (default: the server's default dataset)")
    @app_commands.autocomplete(dataset=dataset_choices)
    @curator_only()
    async def export(self, interaction: discord.Interaction, dataset: str | None = None) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        found = await self.datasets.resolve(guild.id, dataset)
        with tempfile.TemporaryDirectory(prefix="tunecord-export-") as folder:
            workdir = Path(folder)
            source = workdir / "export.jsonl"
            report = await self.bot.services.files.export(found, source)
            if report.examples == 0:
                await interaction.followup.send(
                    f"**{shown(found.name)}** has no approved examples yet: there is nothing "
                    "to export. Examples are approved by members' votes or by a curator.",
                    ephemeral=True,
                )
                return
            limit = guild.filesize_limit
            plan = await asyncio.to_thread(
                plan_upload, source, file_stem(found.name), upload_budget(limit), workdir
            )
            text = describe_plan(plan, shown(found.name), report.examples, limit)
            sent = 0
            for number, batch in enumerate(plan.messages, start=1):
                if number > 1:
                    text = (
                        f"Parts {sent + 1} to {sent + len(batch)} of {len(plan.files)} "
                        f"of **{shown(found.name)}**."
                    )
                await interaction.followup.send(text, files=discord_files(batch), ephemeral=True)
                sent += len(batch)


async def setup(bot: TunecordBot) -> None:
    await bot.add_cog(DatasetCog(bot))

"""``/finetune``: estimate, start (with a confirmation), follow, list and cancel fine-tunes.

Admins (Manage Server) and the guild's trainer role may use it, checked on every use. A
background task follows every unfinished job of every guild and posts its progress in the
training channel (``/config training-channel``; else the channel the job was started
from), each status and event once (see :mod:`bot.services.job_follower`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
from typing import Any, cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.client.bot import TunecordBot
from bot.client.checks import guild_of, require_trainer
from bot.client.choices import dataset_choices
from bot.client.job_embeds import (
    estimate_embed,
    job_embed,
    list_embed,
    outcome_embed,
    plan_embed,
    usd,
)
from bot.client.loss_curve import loss_curve_png
from bot.client.ui import TunecordView, run_component
from bot.errors import UserError
from bot.services.finetune import FineTuneService, StartPlan
from bot.services.job_follower import JobFollower, JobUpdate
from storage.records import JobStatus

log = logging.getLogger(__name__)

COMPARE_EVENT = "model_compare_requested"
"""Dispatched as ``(interaction, model_id)`` when Compare is clicked (the /model cog)."""


def _cog(interaction: discord.Interaction) -> FinetuneCog:
    cog = cast(TunecordBot, interaction.client).get_cog("FinetuneCog")
    if not isinstance(cog, FinetuneCog):
        raise UserError("Fine-tunes are not available right now; try again in a minute.")
    return cog


class ActivateButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"tunecord:job:activate:(?P<job>\d+)"
):
    """Make a succeeded job's model the server's chat model (works after restarts)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(discord.ui.Button(
            label="Activate", style=discord.ButtonStyle.success,
            custom_id=f"tunecord:job:activate:{job_id}",
        ))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ActivateButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await run_component(interaction, f"button {self.custom_id}", lambda: self._act(interaction))

    async def _act(self, interaction: discord.Interaction) -> None:
        await require_trainer(interaction)
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        active = await _cog(interaction).finetunes.activate(guild.id, self.job_id)
        await interaction.followup.send(
            f"`{active.model}` now answers in this server's chat channels.", ephemeral=True
        )


class CompareButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"tunecord:job:compare:(?P<job>\d+)"
):
    """Hand a succeeded job's model to the /model cog's comparison."""

    def __init__(self, job_id: int) -> None:
        super().__init__(discord.ui.Button(
            label="Compare", style=discord.ButtonStyle.secondary,
            custom_id=f"tunecord:job:compare:{job_id}",
        ))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CompareButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await run_component(interaction, f"button {self.custom_id}", lambda: self._act(interaction))

    async def _act(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        bot = cast(TunecordBot, interaction.client)
        job = await _cog(interaction).finetunes.find(guild.id, str(self.job_id))
        if job.fine_tuned_model is None:
            raise UserError("That fine-tune has no model to compare.")
        if not bot.extra_events.get(f"on_{COMPARE_EVENT}"):
            raise UserError("Compare is not available yet.")
        bot.dispatch(COMPARE_EVENT, interaction, job.fine_tuned_model)


def outcome_view(job_id: int) -> TunecordView:
    view = TunecordView(timeout=None)
    view.add_item(ActivateButton(job_id))
    view.add_item(CompareButton(job_id))
    return view


class ConfirmStartView(TunecordView):
    """Confirm / Cancel under a checked start (one use; buttons disabled at once)."""

    def __init__(self, cog: FinetuneCog, plan: StartPlan, guild_id: int) -> None:
        super().__init__(timeout=600)
        self.cog = cog
        self.plan = plan
        self.guild_id = guild_id
        self.used = False

    def _disable(self) -> None:
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.success)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await require_trainer(interaction)
        if self.used:
            await interaction.response.send_message(
                "This start was already confirmed or cancelled.", ephemeral=True
            )
            return
        self.used = True
        self._disable()
        self.stop()
        await interaction.response.edit_message(view=self)
        await self.cog.start_confirmed(interaction, self.plan, self.guild_id)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        if self.used:
            await interaction.response.send_message(
                "This start was already confirmed or cancelled.", ephemeral=True
            )
            return
        self.used = True
        self._disable()
        self.stop()
        await interaction.response.edit_message(content="Nothing was started.", view=self)


@app_commands.guild_only()
class FinetuneCog(commands.GroupCog, group_name="finetune", group_description="Fine-tune a model on this server's dataset"):
    """Thin adapter over :class:`FineTuneService` and :class:`JobFollower`."""

    def __init__(self, bot: TunecordBot) -> None:
        self.bot = bot
        self.finetunes = FineTuneService(
            bot.storage, bot.provider, bot.catalogue,
            datasets=bot.services.datasets, files=bot.services.files, stats=bot.services.stats,
            backend=bot.settings.backend, default_model=bot.settings.default_model,
        )
        self.follower = JobFollower(bot.storage, bot.provider, bot.catalogue, self.finetunes)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(ActivateButton, CompareButton)
        self._task = asyncio.create_task(self._follow_forever(), name="tunecord job follower")

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ActivateButton, CompareButton)
        # A flag as well as the cancel: on Python 3.11, asyncio.wait_for can swallow a
        # cancellation that races its timeout, and the loop would then poll forever.
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await require_trainer(interaction)

    # -- following ----------------------------------------------------------------------
    async def _follow_forever(self) -> None:
        await self.bot.wait_until_ready()
        while not self._stopping and not self.bot.is_closed():
            try:
                await self.follow_once()
            except Exception:
                log.exception("following fine-tune jobs failed; trying again next round")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.bot.settings.job_poll_seconds)
            self._wake.clear()

    def wake(self) -> None:
        """Follow the jobs now rather than at the next poll."""
        self._wake.set()

    async def follow_once(self) -> None:
        """One round: every unfinished job of every guild, posted and recorded."""
        for job in await self.follower.unfinished():
            try:
                for update in await self.follower.updates(job):
                    if not await self._post(update):
                        break
            except Exception as exc:
                log.warning("following job %s: %s", job.id, exc)

    async def _post(self, update: JobUpdate) -> bool:
        """Send ``update`` and record it; False if it could not be sent (tried next round)."""
        message_id = None
        if update.text is not None:
            channel = await self._channel(update.channel_id)
            if channel is None:
                log.warning("job %s: no channel to post in", update.job.id)
                return False
            kwargs: dict[str, Any] = {"content": update.text, "nonce": update.nonce}
            outcome = update.outcome
            if outcome is not None:
                kwargs["embed"] = outcome_embed(update.job, outcome)
                if outcome.status is JobStatus.SUCCEEDED:
                    png = await asyncio.to_thread(
                        loss_curve_png, outcome.curve, f"Fine-tune #{update.job.id}"
                    )
                    if png is not None:
                        kwargs["file"] = discord.File(io.BytesIO(png), "loss-curve.png")
                        kwargs["embed"].set_image(url="attachment://loss-curve.png")
                    kwargs["view"] = outcome_view(update.job.id)
            try:
                message = await channel.send(**kwargs)
            except discord.HTTPException as exc:
                log.warning("job %s: cannot post in %s: %s", update.job.id, channel, exc)
                return False
            message_id = message.id
        await self.follower.record(update, message_id)
        return True

    async def _channel(self, channel_id: int | None) -> discord.abc.Messageable | None:
        if channel_id is None:
            return None
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(channel_id)
            except discord.HTTPException:
                return None
        return channel if isinstance(channel, discord.abc.Messageable) else None

    # -- commands -----------------------------------------------------------------------
    @app_commands.command(name="estimate", description="What a fine-tune of a dataset costs")
    @app_commands.describe(dataset="The dataset (the server's default if left empty)")
    @app_commands.autocomplete(dataset=dataset_choices)
    async def estimate(self, interaction: discord.Interaction, dataset: str | None = None) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await self.finetunes.estimate(guild.id, dataset)
        await interaction.followup.send(embed=estimate_embed(report), ephemeral=True)

    @app_commands.command(name="start", description="Check and start a fine-tune")
    @app_commands.describe(
        dataset="The dataset (the server's default if left empty)",
        model="The base model (the dataset's if left empty)",
        epochs="Epochs (1-50; the backend chooses if left empty)",
        suffix="A name part for the fine-tuned model",
        validation_split="Fraction of examples held out for validation (0-0.5)",
    )
    @app_commands.autocomplete(dataset=dataset_choices)
    async def start(
        self,
        interaction: discord.Interaction,
        dataset: str | None = None,
        model: str | None = None,
        epochs: app_commands.Range[int, 1, 50] | None = None,
        suffix: app_commands.Range[str, 1, 40] | None = None,
        validation_split: app_commands.Range[float, 0.0, 0.5] | None = None,
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        plan = await self.finetunes.plan(
            guild.id, dataset, model=model, epochs=epochs, suffix=suffix,
            validation_split=validation_split,
        )
        await interaction.followup.send(
            embed=plan_embed(plan), view=ConfirmStartView(self, plan, guild.id), ephemeral=True
        )

    @start.autocomplete("model")
    async def _model_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        try:
            names = await self.finetunes.tunable_choices(current)
        except UserError:
            return []
        return [app_commands.Choice(name=n, value=n) for n in names]

    async def start_confirmed(
        self, interaction: discord.Interaction, plan: StartPlan, guild_id: int
    ) -> None:
        """Confirm was clicked: start the job, answer the admin, announce it."""
        training = (await self.bot.services.guild_config.get(guild_id)).training_channel_id
        result = await self.finetunes.start(
            guild_id, plan, requested_by=interaction.user.id, channel_id=interaction.channel_id
        )
        job = result.job
        lines = [f"Fine-tune #{job.id} of `{plan.dataset.name}` on `{plan.price.model}` "]
        lines[0] += (
            f"started (backend job `{job.provider_job_id}`)." if result.confirmed
            else "was sent, but the backend did not confirm it yet: I will check and post."
        )
        if result.flagged:
            lines.append(
                "Moderation flagged and left out: " + ", ".join(result.flagged[:40]) + "."
            )
        where = training or interaction.channel_id
        if training is None:
            lines.append(
                f"No training channel is set: I will post its progress in <#{where}>. "
                "An admin can choose one with `/config training-channel`."
            )
        else:
            lines.append(f"Progress will be posted in <#{training}>.")
        await interaction.followup.send("\n".join(lines), ephemeral=True)
        channel = await self._channel(where)
        if channel is not None and result.confirmed:
            with contextlib.suppress(discord.HTTPException):
                await channel.send(
                    f"**Fine-tune #{job.id}** of `{plan.dataset.name}` on `{plan.price.model}` "
                    f"started by <@{interaction.user.id}>: {plan.training_examples} training "
                    f"examples, estimated {usd(plan.cost_usd)}."
                )
        self.wake()

    @app_commands.command(name="status", description="Where a fine-tune stands")
    @app_commands.describe(job="Our job number or the backend's job id (the latest if empty)")
    async def status(self, interaction: discord.Interaction, job: str | None = None) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        found = await self.finetunes.find(guild.id, job)
        await interaction.followup.send(embed=job_embed(found), ephemeral=True)

    @app_commands.command(name="list", description="This server's fine-tunes and spend")
    async def list_jobs(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        listing = await self.finetunes.jobs(guild.id)
        await interaction.followup.send(embed=list_embed(listing), ephemeral=True)

    @app_commands.command(name="cancel", description="Stop a fine-tune")
    @app_commands.describe(job="Our job number or the backend's job id")
    async def cancel(self, interaction: discord.Interaction, job: str) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        found = await self.finetunes.cancel(guild.id, job)
        await interaction.followup.send(
            f"Cancelling fine-tune #{found.id}: the training channel will say when it stopped.",
            ephemeral=True,
        )
        self.wake()


async def setup(bot: TunecordBot) -> None:
    await bot.add_cog(FinetuneCog(bot))

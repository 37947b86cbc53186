"""``/config``: a server's tunecord settings (admins only, checked on every use)."""

from __future__ import annotations

from decimal import Decimal

import discord
from discord import app_commands
from discord.ext import commands

from bot.client.bot import TunecordBot
from bot.client.checks import guild_of, require_admin
from bot.client.permissions import missing_permissions
from bot.settings import Settings
from storage.records import GuildSettings


def _missing_note(channel: discord.abc.GuildChannel, guild: discord.Guild) -> str | None:
    """A warning naming the permissions the bot lacks in ``channel``, if any."""
    missing = missing_permissions(channel, guild.me)
    if not missing:
        return None
    return (
        f"I am missing {', '.join(missing)} in {channel.mention}: grant them to my role or in "
        "the channel's permissions, or I cannot post reviews there."
    )


def settings_embed(
    settings: GuildSettings,
    guild: discord.Guild,
    defaults: Settings,
    default_dataset: str | None = None,
) -> discord.Embed:
    """Every setting of the guild, as an embed."""
    budget = settings.monthly_budget_usd
    rows = {
        "Default dataset": f"`{default_dataset}`" if default_dataset else "not set",
        "Review channel": _mention("#", settings.review_channel_id, "not set"),
        "Curator role": _mention(
            "@&", settings.curator_role_id, "not set (members with Manage Messages curate)"
        ),
        "Admin role": _mention("@&", settings.admin_role_id, "not set"),
        "Vote threshold": f"{settings.vote_threshold} approving votes",
        "Pending examples per member": str(settings.max_pending_per_member),
        "Capture depth": f"{settings.capture_depth} messages of a reply chain",
        "Chat replies": "on" if settings.chat_enabled else "off",
        "Capture": "on" if settings.capture_enabled else "off",
        "Default base model": settings.default_base_model
        or f"{defaults.default_model} (bot default)",
        "Provider": settings.provider or f"{defaults.backend} (bot default)",
        "Monthly budget": "no limit" if budget is None else f"${budget:,.2f}",
        "Trainer role": _mention(
            "@&", settings.trainer_role_id, "not set (members with Manage Server train)"
        ),
        "Training channel": _mention(
            "#", settings.training_channel_id, "not set (where a fine-tune was started)"
        ),
    }
    embed = discord.Embed(title=f"tunecord settings for {guild.name}")
    for name, value in rows.items():
        embed.add_field(name=name, value=value)
    review = guild.get_channel(settings.review_channel_id or 0)
    note = _missing_note(review, guild) if isinstance(review, discord.abc.GuildChannel) else None
    if note:
        embed.add_field(name="Warning", value=note, inline=False)
    if settings.updated_at is None:
        embed.set_footer(text="never changed: these are the defaults")
    else:
        embed.set_footer(text="last changed")
        embed.timestamp = settings.updated_at
    return embed


def _mention(prefix: str, snowflake: int | None, unset: str) -> str:
    return f"<{prefix}{snowflake}>" if snowflake else unset


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class ConfigCog(
    commands.GroupCog, group_name="config", group_description="tunecord's settings for this server"
):
    """Thin adapter over :class:`~bot.services.guild_config.GuildConfigService`."""

    def __init__(self, bot: TunecordBot) -> None:
        self.bot = bot
        self.config = bot.services.guild_config

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return require_admin(interaction)

    @app_commands.command(name="show", description="Show every tunecord setting of this server")
    async def show(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        settings = await self.config.get(guild.id)
        default = await self.bot.services.datasets.default(guild.id)
        embed = settings_embed(
            settings, guild, self.bot.settings, default.name.replace("`", "'") if default else None
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(
        name="review-channel", description="Where new examples are posted for review"
    )
    @app_commands.describe(channel="The review channel; leave empty to clear it")
    async def review_channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)  # writes wait for the write lock
        await self.config.set_review_channel(guild.id, channel.id if channel else None)
        if channel is None:
            await interaction.followup.send("Review channel cleared.", ephemeral=True)
            return
        lines = [f"New examples will be posted for review in {channel.mention}."]
        note = _missing_note(channel, guild)
        if note:
            lines.append(f"Warning: {note}")
        await interaction.followup.send("\n".join(lines), ephemeral=True)

    @app_commands.command(name="curator-role", description="The role whose members review examples")
    @app_commands.describe(role="The curator role; leave empty to clear it")
    async def curator_role(
        self, interaction: discord.Interaction, role: discord.Role | None = None
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        await self.config.set_curator_role(guild.id, role.id if role else None)
        text = (
            f"Members with {role.mention} (or Manage Messages) can now review examples."
            if role
            else "Curator role cleared: members with Manage Messages review examples."
        )
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="vote-threshold", description="Approving votes an example needs")
    @app_commands.describe(value="How many approving votes approve an example (1-100)")
    async def vote_threshold(
        self, interaction: discord.Interaction, value: app_commands.Range[int, 1, 100]
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        settings = await self.config.set_vote_threshold(guild.id, value)
        await interaction.followup.send(
            f"An example now needs {settings.vote_threshold} approving votes.", ephemeral=True
        )

    @app_commands.command(
        name="max-pending", description="Examples one member may have waiting for review"
    )
    @app_commands.describe(value="How many pending examples one member may have (1-1000)")
    async def max_pending(
        self, interaction: discord.Interaction, value: app_commands.Range[int, 1, 1000]
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        settings = await self.config.set_max_pending(guild.id, value)
        await interaction.followup.send(
            f"Each member may now have {settings.max_pending_per_member} examples waiting for review.",
            ephemeral=True,
        )

    @app_commands.command(
        name="capture-depth", description="How many messages of a reply chain Add to dataset uses"
    )
    @app_commands.describe(value="Messages of a reply chain to turn into turns (2-25)")
    async def capture_depth(
        self, interaction: discord.Interaction, value: app_commands.Range[int, 2, 25]
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        settings = await self.config.set_capture_depth(guild.id, value)
        await interaction.followup.send(
            f"Add to dataset now follows a reply chain up to {settings.capture_depth} messages.",
            ephemeral=True,
        )

    @app_commands.command(name="trainer-role", description="The role whose members start fine-tunes")
    @app_commands.describe(role="The trainer role; leave empty to clear it")
    async def trainer_role(
        self, interaction: discord.Interaction, role: discord.Role | None = None
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        await self.config.set_trainer_role(guild.id, role.id if role else None)
        text = (
            f"Members with {role.mention} (or Manage Server) can now start fine-tunes."
            if role
            else "Trainer role cleared: members with Manage Server start fine-tunes."
        )
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(
        name="training-channel", description="Where fine-tunes are announced and followed"
    )
    @app_commands.describe(channel="The training channel; leave empty to clear it")
    async def training_channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        await self.config.set_training_channel(guild.id, channel.id if channel else None)
        if channel is None:
            await interaction.followup.send(
                "Training channel cleared: fine-tunes are followed where they were started.",
                ephemeral=True,
            )
            return
        lines = [f"Fine-tunes will be announced and followed in {channel.mention}."]
        note = _missing_note(channel, guild)
        if note:
            lines.append(f"Warning: {note}")
        await interaction.followup.send("\n".join(lines), ephemeral=True)

    @app_commands.command(name="budget", description="The most fine-tunes may cost per month")
    @app_commands.describe(usd="US dollars per calendar month (UTC); leave empty for no limit")
    async def budget(
        self,
        interaction: discord.Interaction,
        usd: app_commands.Range[float, 0, 1_000_000] | None = None,
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        amount = None if usd is None else Decimal(str(usd)).quantize(Decimal("0.01"))
        settings = await self.config.set_budget(guild.id, amount)
        budget = settings.monthly_budget_usd
        text = (
            "Fine-tunes now have no monthly limit."
            if budget is None
            else f"Fine-tunes may now cost up to ${budget:,.2f} per month."
        )
        await interaction.followup.send(text, ephemeral=True)


async def setup(bot: TunecordBot) -> None:
    await bot.add_cog(ConfigCog(bot))


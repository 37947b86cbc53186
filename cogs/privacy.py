"""``/privacy``: a member opts in or out, downloads what is stored about them, reads the
policy. Every subcommand is for every member, in a server only.

A thin adapter over :class:`~bot.services.privacy.PrivacyService`; opting out also deletes
the review posts of the deleted examples from Discord
(:func:`bot.client.posts.delete_review_posts`), so no copy of the member's words stays in
the review channel. Server owners: see ``PRIVACY.md``.
"""

from __future__ import annotations

import gzip
import io
from urllib.parse import urlsplit

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import escape_markdown

from bot.client.bot import TunecordBot
from bot.client.checks import guild_of
from bot.client.events import EXAMPLE_CHANGED
from bot.client.posts import delete_review_posts
from bot.errors import UserError
from bot.services.privacy import privacy_policy
from bot.settings import Settings, is_loopback_host

PUBLIC = {"public": True}
OPENAI_HOST = "api.openai.com"


def backend_description(settings: Settings) -> str:
    """Where training data goes, in plain words: the backend and the host it runs on (never
    a key, a path or credentials written into a URL)."""
    if settings.backend == "trainer":
        host = _host(settings.trainer_url)
        if host is None or is_loopback_host(host):
            return "the tunecord trainer running on this bot's own machine"
        return f"the tunecord trainer at {host}"
    host = _host(settings.openai_base_url)
    if host is None or host == OPENAI_HOST:
        return f"OpenAI ({OPENAI_HOST})"
    return f"the OpenAI-compatible service at {host}"


def _host(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).hostname or None
    except ValueError:
        return None


def export_file(data: bytes, guild_id: int, limit: int) -> discord.File:
    """The member's data as ``tunecord-data-<guild id>.json``; gzipped (``.json.gz``) when
    the JSON is larger than Discord lets the bot upload here. Raises :class:`UserError`
    when even that is too large."""
    name = f"tunecord-data-{guild_id}.json"
    if len(data) > limit:
        data, name = gzip.compress(data, mtime=0), name + ".gz"
        if len(data) > limit:
            raise UserError(
                f"Everything stored about you here is {len(data) / 1_048_576:.1f} MB even "
                "compressed: more than Discord lets me send. Ask a server admin for a copy, "
                "or use `/privacy optout` to delete it all."
            )
    return discord.File(io.BytesIO(data), filename=name)


POLICY_MORE = (
    "**Others quoting you.** Only after you use `/privacy optin` can members add "
    "conversations that quote your messages (with **Add to dataset**); each such turn is "
    "stored with your user ID, so `/privacy optout` deletes those examples too.\n"
    "**What deletion cannot reach.** A fine-tune already started, a model already trained "
    "and a file a curator already downloaded with `/dataset export` keep what they were "
    "given. `/example remove` deletes one example of yours."
)
"""Added to :func:`~bot.services.privacy.privacy_policy`'s text: captures of a member's
messages by others, and the limits of deletion."""


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


@app_commands.guild_only()
class PrivacyCog(
    commands.GroupCog,
    group_name="privacy",
    group_description="What tunecord stores about you, and your choices",
):
    """Thin adapter over :class:`~bot.services.privacy.PrivacyService`."""

    def __init__(self, bot: TunecordBot) -> None:
        self.bot = bot
        self.privacy = bot.services.privacy

    @app_commands.command(
        name="optin",
        description="Let members add your messages to this server's datasets",
        extras=PUBLIC,
    )
    async def optin(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        await self.privacy.opt_in(guild.id, interaction.user.id)
        await interaction.followup.send(
            f"You opted in to tunecord in **{escape_markdown(guild.name)}**. This means:\n"
            "- Members can add conversations that include your messages to this server's "
            "datasets with **Add to dataset**: only the messages they pick, after they "
            "confirm them. The bot collects nothing else you write.\n"
            "- Added conversations are reviewed by this server's members, and approved ones "
            "may be used to fine-tune a chat model with "
            f"{backend_description(self.bot.settings)}.\n"
            "- `/privacy mydata` sends you everything stored about you, and `/privacy optout` "
            "deletes it at once and stops this, any time.",
            ephemeral=True,
        )

    @app_commands.command(
        name="optout",
        description="Delete your examples and votes here now, and refuse any capture of your messages",
        extras=PUBLIC,
    )
    async def optout(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        result = await self.privacy.opt_out(guild.id, interaction.user.id)
        await delete_review_posts(self.bot, result.review_posts)
        for example_id in result.voted_examples:  # their tallies lost this member's vote
            self.bot.dispatch(EXAMPLE_CHANGED, guild.id, example_id)
        await interaction.followup.send(
            f"You opted out of tunecord in **{escape_markdown(guild.name)}**. Deleted "
            f"{_count(result.examples_deleted, 'example')} (every one you contributed or "
            f"wrote a turn of, in every dataset of this server) and "
            f"{_count(result.votes_deleted, 'vote')}. From now on your messages cannot be "
            "added to a dataset here, and you cannot contribute. `/privacy optin` lets you "
            "take part again.",
            ephemeral=True,
        )

    @app_commands.command(
        name="mydata",
        description="Get a file of everything tunecord stores about you in this server",
        extras=PUBLIC,
    )
    async def mydata(self, interaction: discord.Interaction) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        data = await self.privacy.my_data(guild.id, interaction.user.id)
        file = export_file(data, guild.id, interaction.filesize_limit)
        await interaction.followup.send(
            f"Everything tunecord stores about you in **{escape_markdown(guild.name)}**: "
            "your opt-in choice, the examples you contributed or wrote a turn of, and your "
            "votes. `/privacy optout` deletes it all.",
            file=file,
            ephemeral=True,
        )

    @app_commands.command(
        name="policy",
        description="What tunecord collects, why, where it goes and how to delete it",
        extras=PUBLIC,
    )
    async def policy(self, interaction: discord.Interaction) -> None:
        guild_of(interaction)
        text = privacy_policy(backend_description(self.bot.settings)) + "\n" + POLICY_MORE
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: TunecordBot) -> None:
    await bot.add_cog(PrivacyCog(bot))

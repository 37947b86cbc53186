"""``/example``: members add, list, show and remove examples; curators import JSONL files.

A thin adapter over :class:`~bot.services.contributions.ContributionService` (and the
file import service): it parses the interaction, calls the service, renders the answer.
The contribution form's submit (:func:`contribute`) is shared with "Add to dataset"
(``cogs/capture.py``).
"""

from __future__ import annotations

import asyncio
import functools
import io
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, Any, Literal, cast

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import escape_markdown

from bot.client.bot import TunecordBot
from bot.client.checks import curator_only, guild_of, is_curator
from bot.client.choices import dataset_choices
from bot.client.events import EXAMPLE_ADDED
from bot.client.example_embed import example_embed
from bot.client.example_form import ExampleForm, FormText, form_title
from bot.client.import_report import REPORT_FILENAME, render_import_report
from bot.client.posts import delete_review_posts
from bot.client.reply_chain import attribute_authors
from bot.client.ui import TunecordView
from bot.dataset.turns import conversation_from_text
from bot.errors import InvalidInput
from bot.services.contributions import Contribution, NotAllowed
from storage.records import Dataset, ExampleRecord, ExampleSource, ExampleStatus

PAGE_SIZE = 10
PAGER_SECONDS = 10 * 60
"""How long the list's buttons work (less than the 15 minutes of the interaction token,
so they can be removed when they stop working)."""
SNIPPET_MAX = 80
MAX_IMPORT_BYTES = 100 * 1024 * 1024
"""The largest file ``/example import`` reads (it is streamed to a temporary file)."""
DOWNLOAD_CHUNK = 1 << 16
IMPORT_SUFFIX = ".jsonl"

DATASET_HELP = "The dataset (default: the server's default dataset, or its only one)"


def _bot(interaction: discord.Interaction) -> TunecordBot:
    return cast(TunecordBot, interaction.client)


# -- adding: the form's submit, shared with "Add to dataset" -------------------------------


def confirmation(added: Contribution, dataset: Dataset) -> str:
    return (
        f"Added example #{added.record.id} to **{escape_markdown(dataset.name)}** "
        f"({added.tokens:,} tokens): it is waiting for review."
    )


async def contribute(
    interaction: discord.Interaction,
    dataset: Dataset,
    text: FormText,
    *,
    source: ExampleSource = ExampleSource.MODAL,
    captured: Sequence[int | None] = (),
) -> None:
    """Store what the member submitted as a pending example and confirm it.

    ``captured`` is the author of each captured turn, in order (a capture); who wrote
    which turn of the submitted conversation follows
    :func:`bot.client.reply_chain.attribute_authors`. A :class:`~bot.errors.UserError`
    raised here is answered by the form with a Try again button.
    """
    example = conversation_from_text(text.user, text.assistant, text.earlier)
    authors = attribute_authors(captured, len(example.messages)) if captured else None
    await interaction.response.defer(ephemeral=True, thinking=True)
    bot = _bot(interaction)
    current = await bot.services.datasets.get(dataset.guild_id, dataset.id)
    added = await bot.services.contributions.add(
        current, interaction.user.id, example, source=source, authors=authors
    )
    await interaction.followup.send(confirmation(added, current), ephemeral=True)
    bot.dispatch(EXAMPLE_ADDED, added.record)


# -- listing -------------------------------------------------------------------------------


def snippet(record: ExampleRecord, limit: int = SNIPPET_MAX) -> str:
    """The first line of the example's (last) user message, shortened, as plain text."""
    users = [m for m in record.example.messages if m.get("role") == "user"]
    content = users[-1].get("content") if users else None
    if not isinstance(content, str):
        return "*(no text)*"
    line = next((part.strip() for part in content.splitlines() if part.strip()), "")
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return escape_markdown(line) or "*(empty)*"


def page_line(record: ExampleRecord) -> str:
    who = f"<@{record.contributor_id}>" if record.contributor_id else "unknown"
    return f"`#{record.id}` · {record.status.value} · {who} · {snippet(record)}"


Loader = Callable[[int], Awaitable[list[ExampleRecord]]]
"""A page of examples after an id (``PAGE_SIZE + 1`` of them, to know if more follow)."""


class ExamplePager(TunecordView):
    """◀ Previous / Next ▶ over a keyset-paginated list; only its owner may turn pages."""

    def __init__(
        self, *, owner_id: int, heading: str, load: Loader, first: list[ExampleRecord]
    ) -> None:
        super().__init__(timeout=PAGER_SECONDS)
        self.owner_id = owner_id
        self.heading = heading
        self._load = load
        self._starts = [0]
        self._records = first
        self.origin: discord.Interaction | None = None
        self._sync_buttons()

    @property
    def page(self) -> int:
        return len(self._starts)

    @property
    def shown(self) -> list[ExampleRecord]:
        return self._records[:PAGE_SIZE]

    @property
    def has_next(self) -> bool:
        return len(self._records) > PAGE_SIZE

    def embed(self) -> discord.Embed:
        embed = discord.Embed(
            title=self.heading[:256], description="\n".join(page_line(r) for r in self.shown)
        )
        embed.set_footer(text=f"Page {self.page} · {PAGE_SIZE} per page · /example show <id>")
        return embed

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.page == 1
        self.next.disabled = not self.has_next

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await super().interaction_check(interaction)
        if interaction.user.id != self.owner_id:
            raise NotAllowed(
                "These buttons belong to whoever ran this `/example list`; run it yourself "
                "to browse."
            )
        return True

    async def _show(self, interaction: discord.Interaction, after_id: int) -> None:
        self._records = await self._load(after_id)
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.embed(), view=self)

    @discord.ui.button(label="◀ Previous", style=discord.ButtonStyle.secondary)
    async def previous(
        self, interaction: discord.Interaction, button: discord.ui.Button[ExamplePager]
    ) -> None:
        if len(self._starts) > 1:
            self._starts.pop()
        await self._show(interaction, self._starts[-1])

    @discord.ui.button(label="Next ▶", style=discord.ButtonStyle.secondary)
    async def next(
        self, interaction: discord.Interaction, button: discord.ui.Button[ExamplePager]
    ) -> None:
        if self.shown:
            self._starts.append(self.shown[-1].id)
        await self._show(interaction, self._starts[-1])

    async def on_timeout(self) -> None:
        if self.origin is None:
            return
        try:
            await self.origin.edit_original_response(view=None)
        except discord.HTTPException:
            pass  # dismissed by the member, or the token expired


def list_heading(dataset: Dataset, status: str | None, contributor: discord.abc.User | None) -> str:
    parts = [f"Examples in {dataset.name}"]
    if status:
        parts.append(status)
    if contributor is not None:
        parts.append(f"by {contributor.display_name}")
    return " · ".join(parts)


# -- importing -----------------------------------------------------------------------------


def check_upload(file: discord.Attachment) -> None:
    name = file.filename.replace("`", "'")
    if not file.filename.lower().endswith(IMPORT_SUFFIX):
        raise InvalidInput(
            f"`{name}` is not a JSONL file: upload a `.jsonl` file with one conversation "
            "(a JSON object with `messages`) per line."
        )
    if file.size > MAX_IMPORT_BYTES:
        raise InvalidInput(
            f"`{name}` is {file.size / 2**20:,.1f} MiB; I import files of up to "
            f"{MAX_IMPORT_BYTES // 2**20} MiB. Split it and import the parts."
        )


async def download(client: discord.Client, file: discord.Attachment, dest: IO[bytes]) -> None:
    """Stream ``file`` from Discord's CDN into ``dest``, refusing more than the limit."""
    http = client.http
    received = 0
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(file.url, proxy=http.proxy, proxy_auth=http.proxy_auth) as response,
        ):
            if response.status != 200:
                raise InvalidInput(
                    f"Discord did not give me the file (HTTP {response.status}); upload it again."
                )
            async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK):
                received += len(chunk)
                if received > MAX_IMPORT_BYTES:
                    raise InvalidInput(
                        f"The file is over {MAX_IMPORT_BYTES // 2**20} MiB; split it and "
                        "import the parts."
                    )
                await asyncio.to_thread(dest.write, chunk)
    except aiohttp.ClientError:
        raise InvalidInput("I could not download the file from Discord; upload it again.") from None
    await asyncio.to_thread(dest.seek, 0)


# -- the cog -------------------------------------------------------------------------------


@app_commands.guild_only()
class ExampleCog(
    commands.GroupCog, group_name="example", group_description="Examples of a dataset"
):
    """Thin adapter over the contribution, curation and file services."""

    def __init__(self, bot: TunecordBot) -> None:
        self.bot = bot
        self.services = bot.services

    @app_commands.command(
        name="add",
        description="Write an example conversation for a dataset",
        extras={"public": True},
    )
    @app_commands.describe(dataset=DATASET_HELP)
    @app_commands.autocomplete(dataset=dataset_choices)
    async def add(self, interaction: discord.Interaction, dataset: str | None = None) -> None:
        guild = guild_of(interaction)
        target = await self.services.datasets.resolve(guild.id, dataset)
        await self.services.contributions.check_contributor(guild.id, interaction.user.id)
        form = ExampleForm(
            title=form_title("Add to", target.name),
            on_submit=functools.partial(self._submit, target),
        )
        await interaction.response.send_modal(form)

    async def _submit(
        self, dataset: Dataset, interaction: discord.Interaction, text: FormText
    ) -> None:
        await contribute(interaction, dataset, text, source=ExampleSource.MODAL)

    @app_commands.command(name="import", description="Import a JSONL file of conversations")
    @app_commands.describe(
        file="A .jsonl file: one conversation (a JSON object with messages) per line",
        dataset=DATASET_HELP,
        status="pending (members review them; the default) or approved",
    )
    @app_commands.autocomplete(dataset=dataset_choices)
    @curator_only()
    async def import_(
        self,
        interaction: discord.Interaction,
        file: discord.Attachment,
        dataset: str | None = None,
        status: Literal["pending", "approved"] = "pending",
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        check_upload(file)
        target = await self.services.datasets.resolve(guild.id, dataset)
        with tempfile.TemporaryFile() as spool:
            await download(self.bot, file, spool)
            report = await self.services.files.import_file(
                target, spool, contributor_id=interaction.user.id, status=ExampleStatus(status)
            )
        reply = render_import_report(report, target.name, status)
        extra: dict[str, Any] = {}
        if reply.report_file is not None:
            extra["file"] = discord.File(io.BytesIO(reply.report_file), filename=REPORT_FILENAME)
        await interaction.followup.send(reply.content, ephemeral=True, **extra)

    @app_commands.command(
        name="list", description="Browse a dataset's examples", extras={"public": True}
    )
    @app_commands.describe(
        dataset=DATASET_HELP,
        status="Only examples with this status",
        contributor="Only examples this member contributed",
    )
    @app_commands.autocomplete(dataset=dataset_choices)
    async def list_(
        self,
        interaction: discord.Interaction,
        dataset: str | None = None,
        status: Literal["pending", "approved", "rejected"] | None = None,
        contributor: discord.Member | discord.User | None = None,
    ) -> None:
        guild = guild_of(interaction)
        target = await self.services.datasets.resolve(guild.id, dataset)

        async def load(after_id: int) -> list[ExampleRecord]:
            return await self.services.contributions.page(
                target,
                status=ExampleStatus(status) if status else None,
                contributor_id=contributor.id if contributor else None,
                after_id=after_id,
                limit=PAGE_SIZE + 1,
            )

        first = await load(0)
        if not first:
            await interaction.response.send_message(
                f"No examples in **{escape_markdown(target.name)}** match.", ephemeral=True
            )
            return
        pager = ExamplePager(
            owner_id=interaction.user.id,
            heading=list_heading(target, status, contributor),
            load=load,
            first=first,
        )
        pager.origin = interaction
        await interaction.response.send_message(embed=pager.embed(), view=pager, ephemeral=True)

    @app_commands.command(name="show", description="Show one example", extras={"public": True})
    @app_commands.describe(example_id="The example's number")
    @app_commands.rename(example_id="id")
    async def show(
        self, interaction: discord.Interaction, example_id: app_commands.Range[int, 1]
    ) -> None:
        guild = guild_of(interaction)
        review = await self.services.curation.review(guild.id, example_id)
        dataset = await self.services.datasets.get(guild.id, review.record.dataset_id)
        authors = await self.services.contributions.authors(guild.id, example_id)
        embed = example_embed(
            review.record,
            dataset_name=dataset.name,
            tally=review.tally,
            threshold=review.threshold,
            authors=authors,
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(
        name="remove",
        description="Remove an example (your own; curators: any)",
        extras={"public": True},
    )
    @app_commands.describe(example_id="The example's number")
    @app_commands.rename(example_id="id")
    async def remove(
        self, interaction: discord.Interaction, example_id: app_commands.Range[int, 1]
    ) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        settings = await self.services.guild_config.get(guild.id)
        post = await self.services.contributions.remove(
            guild.id, example_id, interaction.user.id, curator=is_curator(interaction, settings)
        )
        if post is not None:
            await delete_review_posts(self.bot, [post])
        await interaction.followup.send(f"Example #{example_id} is removed.", ephemeral=True)


async def setup(bot: TunecordBot) -> None:
    await bot.add_cog(ExampleCog(bot))

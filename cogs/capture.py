"""The **Add to dataset** message context menu: turn a message (and the reply chain above
it) into a pre-filled contribution form.

The selected message is the Assistant reply; when it is a reply, the message it replies
to is the User message and earlier messages of the chain become earlier turns (at most
the guild's ``capture_depth`` messages, an even number of them; the rules are in
:mod:`bot.client.reply_chain`). A message that is not a reply becomes the Assistant reply
with an empty User message for the contributor to write.

Refused, ephemerally, before the form opens: a bot's or a system message, a message
without text, and a chain quoting a member (other than the contributor) who has not
opted in. The walk up the chain uses the message Discord sent with the interaction, the
bot's message cache, then ``fetch_message``, within :data:`WALK_SECONDS` (a modal must be
the interaction's first answer, within 3 seconds); it stops at the depth, at a deleted or
unreachable message, at one in another channel and at one that cannot be a turn.

On submit the contributor's text is stored like ``/example add`` does (source
``capture``), with who wrote which turn (see
:func:`bot.client.reply_chain.attribute_authors`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands
from discord.ext import commands

from bot.client.bot import TunecordBot
from bot.client.checks import guild_of
from bot.client.example_form import ExampleForm, FormText, form_title
from bot.client.reply_chain import Capture, Quoted, capture_turns, refusal
from bot.client.ui import TunecordView
from bot.errors import InvalidInput
from bot.services.contributions import NotAllowed
from cogs.example import contribute
from storage.records import Dataset, ExampleSource

MENU_NAME = "Add to dataset"
WALK_SECONDS = 1.5
"""Time allowed for fetching the reply chain (what is fetched by then is captured)."""
PICKER_SECONDS = 10 * 60
SELECT_MAX = 25


async def parent_of(message: discord.Message, deadline: float) -> discord.Message | None:
    """The message ``message`` replies to, in the same channel; ``None`` when it is not a
    reply, or that message is deleted, unreachable or not fetched before ``deadline``."""
    ref = message.reference
    if ref is None or ref.message_id is None or ref.type is not discord.MessageReferenceType.reply:
        return None
    if ref.channel_id != message.channel.id:
        return None
    resolved = ref.resolved
    if isinstance(resolved, discord.Message):
        return resolved
    if isinstance(resolved, discord.DeletedReferencedMessage):
        return None
    cached = ref.cached_message
    if cached is not None:
        return cached
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        return None
    try:
        async with asyncio.timeout(remaining):
            return await message.channel.fetch_message(ref.message_id)
    except (TimeoutError, discord.HTTPException):
        return None


async def reply_chain(message: discord.Message, depth: int) -> list[discord.Message]:
    """``message`` and up to ``depth - 1`` messages above it, oldest first."""
    deadline = asyncio.get_running_loop().time() + WALK_SECONDS
    chain = [message]
    while len(chain) < depth:
        parent = await parent_of(chain[-1], deadline)
        if parent is None or refusal(parent) is not None:
            break
        chain.append(parent)
    chain.reverse()
    return chain


OpenForm = Callable[[discord.Interaction, Dataset], Awaitable[None]]


class DatasetPicker(TunecordView):
    """A select of the guild's datasets, for a server with several and no default."""

    def __init__(self, *, owner_id: int, datasets: list[Dataset], open_form: OpenForm) -> None:
        super().__init__(timeout=PICKER_SECONDS)
        self.owner_id = owner_id
        self._datasets = {str(d.id): d for d in datasets[:SELECT_MAX]}
        self._open_form = open_form
        self.choice: discord.ui.Select[DatasetPicker] = discord.ui.Select(
            placeholder="Choose a dataset",
            options=[
                discord.SelectOption(label=d.name, value=k) for k, d in self._datasets.items()
            ],
        )
        self.choice.callback = self._picked  # type: ignore[method-assign]
        self.add_item(self.choice)

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await super().interaction_check(interaction)
        if interaction.user.id != self.owner_id:
            raise NotAllowed("This choice belongs to whoever used Add to dataset.")
        return True

    async def _picked(self, interaction: discord.Interaction) -> None:
        await self._open_form(interaction, self._datasets[self.choice.values[0]])


class CaptureCog(commands.Cog):
    """Thin adapter: reads the chain, asks the contribution service about consent, opens
    the form; the form's submit is :func:`cogs.example.contribute`."""

    def __init__(self, bot: TunecordBot) -> None:
        self.bot = bot
        self.services = bot.services
        self.menu = app_commands.ContextMenu(
            name=MENU_NAME, callback=self.add_to_dataset, extras={"public": True}
        )
        app_commands.guild_only()(self.menu)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def add_to_dataset(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        guild = guild_of(interaction)
        reason = refusal(message)
        if reason is not None:
            raise InvalidInput(reason)
        datasets = self.services.datasets
        chosen = await datasets.default(guild.id)
        candidates: list[Dataset] = []
        if chosen is None:
            candidates = await datasets.all(guild.id)
            if len(candidates) <= 1:
                chosen = await datasets.resolve(guild.id, None)  # explains "no dataset yet"
        await self.services.contributions.check_contributor(guild.id, interaction.user.id)
        settings = await self.services.guild_config.get(guild.id)
        chain = await reply_chain(message, settings.capture_depth)
        capture = capture_turns([Quoted.of(m) for m in chain])
        await self.services.contributions.check_authors(
            guild.id, interaction.user.id, capture.quoted()
        )
        open_form = functools.partial(self._open_form, capture)
        if chosen is not None:
            await open_form(interaction, chosen)
            return
        picker = DatasetPicker(
            owner_id=interaction.user.id, datasets=candidates, open_form=open_form
        )
        await interaction.response.send_message(
            "This server has several datasets and no default: which one is this conversation for?",
            view=picker,
            ephemeral=True,
        )

    async def _open_form(
        self, capture: Capture, interaction: discord.Interaction, dataset: Dataset
    ) -> None:
        text = FormText(capture.user, capture.assistant, capture.earlier)
        submit = functools.partial(self._submit, dataset, capture.authors)
        form = ExampleForm(title=form_title("Add to", dataset.name), on_submit=submit, text=text)
        await interaction.response.send_modal(form)

    async def _submit(
        self,
        dataset: Dataset,
        captured: tuple[int | None, ...],
        interaction: discord.Interaction,
        text: FormText,
    ) -> None:
        await contribute(
            interaction, dataset, text, source=ExampleSource.CAPTURE, captured=captured
        )


async def setup(bot: TunecordBot) -> None:
    await bot.add_cog(CaptureCog(bot))

"""The contribution form: one modal for adding, capturing and editing an example.

Its three inputs, in this order: **User message**, **Assistant reply**, **Earlier turns
(optional)** (lines starting ``User:`` / ``Assistant:``), and one line saying that
submitting is the contributor's consent. Whoever opens it passes what to do with the
text (``on_submit``). When that raises a :class:`~bot.errors.UserError` (an empty turn, a
malformed line, a duplicate, a conversation over the context), the member is told exactly
what to fix, ephemerally, with a **Try again** button that reopens the form holding
everything they typed: nothing typed is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

from bot.client.ui import TunecordModal, TunecordView
from bot.errors import UserError

log = logging.getLogger(__name__)

TEXT_MAX = 4000
"""Discord's limit for one text input."""
TITLE_MAX = 45
"""Discord's limit for a modal title."""
TRY_AGAIN_SECONDS = 24 * 60 * 60
"""How long a Try again button keeps the typed text (it lives in the bot's memory)."""

CONSENT_LINE = (
    "-# Submitting shares what you typed with this server's dataset, to train its model "
    "(`/privacy policy`)."
)


@dataclass(frozen=True)
class FormText:
    """What the form's three inputs hold."""

    user: str = ""
    assistant: str = ""
    earlier: str = ""

    def clipped(self) -> FormText:
        """The text cut to what a text input can hold (a capture may quote more)."""
        return FormText(self.user[:TEXT_MAX], self.assistant[:TEXT_MAX], self.earlier[:TEXT_MAX])


OnSubmit = Callable[[discord.Interaction, FormText], Awaitable[None]]
"""What to do with the submitted text; raise a ``UserError`` to have it fixed and retried."""


def form_title(action: str, dataset_name: str) -> str:
    """``"Add to <dataset>"``, shortened to Discord's 45 characters."""
    title = f"{action} {dataset_name}"
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…"


def _paragraph(
    label: str, custom_id: str, placeholder: str, default: str, *, required: bool = True
) -> discord.ui.TextInput[ExampleForm]:
    return discord.ui.TextInput(
        label=label,
        custom_id=custom_id,
        style=discord.TextStyle.paragraph,
        placeholder=placeholder,
        default=default or None,
        required=required,
        max_length=TEXT_MAX,
    )


class ExampleForm(TunecordModal):
    """The modal; ``text`` pre-fills it (Try again, a capture, a curator's edit)."""

    def __init__(
        self,
        *,
        title: str,
        on_submit: OnSubmit,
        text: FormText = FormText(),
        note: str = CONSENT_LINE,
    ) -> None:
        super().__init__(title=title[:TITLE_MAX], timeout=None)
        self._on_submit = on_submit
        text = text.clipped()
        self.user_message = _paragraph("User message", "user", "What the user says", text.user)
        self.assistant_reply = _paragraph(
            "Assistant reply", "assistant", "How the model should answer", text.assistant
        )
        self.earlier_turns = _paragraph(
            "Earlier turns (optional)",
            "earlier",
            "User: ...\nAssistant: ...",
            text.earlier,
            required=False,
        )
        self.add_item(self.user_message)
        self.add_item(self.assistant_reply)
        self.add_item(self.earlier_turns)
        if note:
            self.add_item(discord.ui.TextDisplay(note))

    def typed(self) -> FormText:
        return FormText(
            self.user_message.value or "",
            self.assistant_reply.value or "",
            self.earlier_turns.value or "",
        )

    async def on_submit(self, interaction: discord.Interaction, /) -> None:
        text = self.typed()
        try:
            await self._on_submit(interaction, text)
        except UserError as exc:
            await offer_retry(interaction, str(exc), self.title, self._on_submit, text)


async def offer_retry(
    interaction: discord.Interaction,
    message: str,
    title: str,
    on_submit: OnSubmit,
    text: FormText,
) -> None:
    """Say what to fix, ephemerally, with a Try again button holding ``text``."""
    view = TryAgainView(title=title, on_submit=on_submit, text=text)
    content = f"{message}\nNothing you typed is lost: **Try again** reopens the form."
    if interaction.response.is_done():
        await interaction.followup.send(content, view=view, ephemeral=True)
    else:
        await interaction.response.send_message(content, view=view, ephemeral=True)


class TryAgainView(TunecordView):
    """One button that reopens the form with the text the member typed."""

    def __init__(self, *, title: str, on_submit: OnSubmit, text: FormText) -> None:
        super().__init__(timeout=TRY_AGAIN_SECONDS)
        self._title = title
        self._on_submit = on_submit
        self.text = text

    @discord.ui.button(label="Try again", style=discord.ButtonStyle.primary)
    async def try_again(
        self, interaction: discord.Interaction, button: discord.ui.Button[TryAgainView]
    ) -> None:
        await interaction.response.send_modal(
            ExampleForm(title=self._title, on_submit=self._on_submit, text=self.text)
        )

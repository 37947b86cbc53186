"""The buttons of a review post, and how a post looks.

Each button's ``custom_id`` holds everything needed to act on it
(``tunecord:review:<action>:<example id>``), and the buttons are discord.py
``DynamicItem``\\ s: whatever message they are on, and however long ago the bot that
posted it started, a click reaches :class:`ReviewButton`, which hands it to the cog
registered as :data:`REVIEW_COG` (the ``ReviewHandler``). Nothing about a post lives in
memory, so the buttons keep working after a restart.

discord.py runs a dynamic item's callback outside any ``View.on_error``, so
:class:`ReviewButton` sends its errors to the one error handler itself, and registers the
click as in flight so a shutdown waits for it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import discord

from bot.client.example_embed import example_embed
from bot.client.ui import TunecordView, run_component
from bot.errors import UserError
from bot.services.curation import Review
from storage.records import ExampleStatus

if TYPE_CHECKING:
    from bot.client.bot import TunecordBot

REVIEW_COG = "Review"
"""The name of the cog that handles the clicks (``commands.Cog`` ``name=``)."""

CUSTOM_ID_PREFIX = "tunecord:review"
TEMPLATE = re.compile(
    rf"{CUSTOM_ID_PREFIX}:(?P<action>up|down|approve|reject|edit):(?P<example>[0-9]+)"
)


class ReviewAction(StrEnum):
    UP = "up"
    DOWN = "down"
    APPROVE = "approve"
    REJECT = "reject"
    EDIT = "edit"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    ReviewAction.UP: "Upvote",
    ReviewAction.DOWN: "Downvote",
    ReviewAction.APPROVE: "Approve",
    ReviewAction.REJECT: "Reject",
    ReviewAction.EDIT: "Edit",
}
_STYLES = {
    ReviewAction.UP: discord.ButtonStyle.primary,
    ReviewAction.DOWN: discord.ButtonStyle.secondary,
    ReviewAction.APPROVE: discord.ButtonStyle.success,
    ReviewAction.REJECT: discord.ButtonStyle.danger,
    ReviewAction.EDIT: discord.ButtonStyle.secondary,
}


def custom_id(action: ReviewAction, example_id: int) -> str:
    return f"{CUSTOM_ID_PREFIX}:{action.value}:{example_id}"


@runtime_checkable
class ReviewHandler(Protocol):
    """What handles a click on a review post's button (the review cog)."""

    async def on_review_action(
        self, interaction: discord.Interaction, action: ReviewAction, example_id: int
    ) -> None: ...


class ReviewButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """One button of a review post; rebuilt from its ``custom_id`` on every click."""

    def __init__(self, action: ReviewAction, example_id: int, *, disabled: bool = False) -> None:
        super().__init__(
            discord.ui.Button(
                label=action.label,
                style=_STYLES[action],
                custom_id=custom_id(action, example_id),
                disabled=disabled,
            )
        )
        self.action = action
        self.example_id = example_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ReviewButton:
        return cls(ReviewAction(match["action"]), int(match["example"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await run_component(interaction, f"button {self.custom_id}", lambda: self._act(interaction))

    async def _act(self, interaction: discord.Interaction) -> None:
        bot = cast("TunecordBot", interaction.client)
        handler = bot.get_cog(REVIEW_COG)
        if not isinstance(handler, ReviewHandler):
            raise UserError("Reviewing is not available right now; try again in a minute.")
        await handler.on_review_action(interaction, self.action, self.example_id)


def review_view(example_id: int, status: ExampleStatus) -> TunecordView:
    """The post's buttons: votes only while pending; a curator can still change a decision
    (Approve is off once approved, Reject once rejected) and edit the example."""
    pending = status is ExampleStatus.PENDING
    view = TunecordView(timeout=None)
    view.add_item(ReviewButton(ReviewAction.UP, example_id, disabled=not pending))
    view.add_item(ReviewButton(ReviewAction.DOWN, example_id, disabled=not pending))
    view.add_item(
        ReviewButton(ReviewAction.APPROVE, example_id, disabled=status is ExampleStatus.APPROVED)
    )
    view.add_item(
        ReviewButton(ReviewAction.REJECT, example_id, disabled=status is ExampleStatus.REJECTED)
    )
    view.add_item(ReviewButton(ReviewAction.EDIT, example_id))
    return view


async def review_message(bot: TunecordBot, review: Review) -> tuple[discord.Embed, TunecordView]:
    """The review post of an example in the state ``review`` describes."""
    record = review.record
    dataset = await bot.services.datasets.get(record.guild_id, record.dataset_id)
    authors = await bot.services.contributions.authors(record.guild_id, record.id)
    embed = example_embed(
        record,
        dataset_name=dataset.name,
        tally=review.tally,
        threshold=review.threshold,
        authors=authors,
    )
    return embed, review_view(record.id, record.status)

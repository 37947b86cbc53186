"""The review channel: each new pending example is posted there with buttons.

Members vote (**Upvote**, **Downvote**: one vote each, changeable, never on their own
example); curators **Approve**, **Reject** or **Edit**. The service applies the guild's
threshold. The post is edited in place as its score and status change; it is never
re-posted. The buttons are persistent (:mod:`bot.client.review_buttons`).

Every render of a post happens under a per-example lock and reads the example's state
afresh, so when many members vote at once each vote is stored once (the service) and the
post ends up showing the final tally: a click that finds the post busy acknowledges at
once (its vote is already stored) and, when its turn comes, edits the post only if what
it shows is out of date.

When the bot may not post in the review channel, the guild owner is told once per
failure streak, naming the missing permissions; a later successful post ends the streak.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import discord
from discord.ext import commands

from bot.client.bot import TunecordBot
from bot.client.checks import PermissionCheckFailure, guild_of, require_curator
from bot.client.events import EXAMPLE_ADDED, EXAMPLE_CHANGED
from bot.client.example_form import ExampleForm, FormText, form_title
from bot.client.permissions import missing_permissions
from bot.client.review_buttons import (
    REVIEW_COG,
    ReviewAction,
    ReviewButton,
    review_message,
)
from bot.dataset.examples import ChatExample
from bot.dataset.turns import conversation_from_text, conversation_to_text
from bot.errors import InvalidInput, MissingPermission
from bot.services.curation import Review
from storage.errors import NotFoundError
from storage.records import ExampleRecord, ExampleStatus

log = logging.getLogger(__name__)

CURATOR_ACTION = "approve, reject or edit examples"
EDIT_NOTE = "-# Saving replaces the example for everyone; its votes are kept."
VOTES = {ReviewAction.UP: 1, ReviewAction.DOWN: -1}
DECISIONS = {
    ReviewAction.APPROVE: ExampleStatus.APPROVED,
    ReviewAction.REJECT: ExampleStatus.REJECTED,
}

Key = tuple[int, int]
"""(guild id, example id)."""


def _shown(review: Review) -> tuple[object, ...]:
    """What a post shows of an example: re-rendering the same state changes nothing."""
    record = review.record
    return (record.status, record.updated_at, review.tally.up, review.tally.down, review.threshold)


@dataclass
class _Post:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    shown: tuple[object, ...] | None = None
    """What the post was last edited to show (``None``: unknown, edit it)."""


class _PostLocks:
    """One lock per example whose post is being rendered; forgotten when nobody waits."""

    def __init__(self) -> None:
        self._posts: dict[Key, _Post] = {}

    @contextlib.contextmanager
    def entry(self, key: Key) -> Iterator[_Post]:
        post = self._posts.setdefault(key, _Post())
        post.users += 1
        try:
            yield post
        finally:
            post.users -= 1
            if post.users == 0:
                del self._posts[key]


class ReviewCog(commands.Cog, name=REVIEW_COG):
    """Posts examples for review and handles the posts' buttons (see module docstring)."""

    def __init__(self, bot: TunecordBot) -> None:
        self.bot = bot
        self.curation = bot.services.curation
        self._posts = _PostLocks()
        self._failing: set[int] = set()
        """Guilds whose last review post failed for a permission (their owner was told)."""

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(ReviewButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ReviewButton)

    # ------------------------------------------------------------------ posting
    @commands.Cog.listener(f"on_{EXAMPLE_ADDED}")
    async def post_for_review(self, record: ExampleRecord) -> None:
        """Post a new pending example in the guild's review channel, if it has one."""
        settings = await self.bot.services.guild_config.get(record.guild_id)
        if settings.review_channel_id is None:
            return  # it waits in /example list status:pending
        guild = self.bot.get_guild(record.guild_id)
        channel = guild.get_channel_or_thread(settings.review_channel_id) if guild else None
        if guild is None or not isinstance(channel, (discord.TextChannel, discord.Thread)):
            log.warning("review channel %s of guild %s is gone; example #%s waits unposted",
                        settings.review_channel_id, record.guild_id, record.id)  # fmt: skip
            return
        with self._posts.entry((guild.id, record.id)) as post:
            async with post.lock:
                try:
                    review = await self.curation.review(guild.id, record.id)
                except NotFoundError:
                    return  # deleted before it could be posted
                embed, view = await review_message(self.bot, review)
                try:
                    message = await channel.send(embed=embed, view=view)
                except discord.Forbidden as exc:
                    await self._report_forbidden(guild, channel, record.id, exc)
                    return
                except discord.HTTPException as exc:
                    log.warning("could not post example #%s for review in guild %s: %s",
                                record.id, guild.id, exc)  # fmt: skip
                    return
                self._failing.discard(guild.id)
                if not await self.bot.storage.review_posts.record(
                    guild.id, record.id, channel.id, message.id
                ):  # the example was deleted while it was being posted
                    with contextlib.suppress(discord.HTTPException):
                        await message.delete()
                    return
                post.shown = _shown(review)

    async def _report_forbidden(
        self,
        guild: discord.Guild,
        channel: discord.TextChannel | discord.Thread,
        example_id: int,
        exc: discord.Forbidden,
    ) -> None:
        missing = missing_permissions(channel, guild.me)
        what = ", ".join(missing) or f"a permission ({exc.text or 'Missing Permissions'})"
        first = guild.id not in self._failing
        self._failing.add(guild.id)
        outcome = "owner already told"
        if first:
            told = await self._tell_owner(
                guild,
                f"I could not post a new example for review in #{channel.name} "
                f"({guild.name}): I am missing {what} there. Grant "
                f"{'them' if len(missing) > 1 else 'it'} to my role or in the channel's "
                "permissions. Until then, new examples wait in `/example list status:pending`.",
            )
            outcome = "owner told" if told else "owner could not be told"
        log.warning("could not post example #%s for review in channel %s of guild %s: "
                    "missing %s (%s)", example_id, channel.id, guild.id, what, outcome)  # fmt: skip

    async def _tell_owner(self, guild: discord.Guild, text: str) -> bool:
        try:
            owner: discord.Member | discord.User | None = guild.owner
            if owner is None and guild.owner_id is not None:
                owner = await self.bot.fetch_user(guild.owner_id)
            if owner is None:
                return False
            await owner.send(text)
        except discord.HTTPException as exc:
            log.info("could not DM the owner of guild %s: %s", guild.id, exc)
            return False
        return True

    # ----------------------------------------------------------------- updating
    @commands.Cog.listener(f"on_{EXAMPLE_CHANGED}")
    async def on_example_changed(self, guild_id: int, example_id: int) -> None:
        await self.refresh_post(guild_id, example_id)

    async def refresh_post(self, guild_id: int, example_id: int) -> None:
        """Edit the example's review post, if it has one, to show its current state."""
        stored = await self.bot.storage.review_posts.get(guild_id, example_id)
        if stored is None:
            return
        channel = self.bot.get_channel(stored.channel_id)
        if not isinstance(channel, (discord.TextChannel, discord.Thread)):
            log.info(
                "review post of example #%s: channel %s is gone", example_id, stored.channel_id
            )
            return
        with self._posts.entry((guild_id, example_id)) as post:
            async with post.lock:
                try:
                    review = await self.curation.review(guild_id, example_id)
                except NotFoundError:
                    return  # deleted: its post is deleted with it
                if _shown(review) == post.shown:
                    return
                embed, view = await review_message(self.bot, review)
                try:
                    await channel.get_partial_message(stored.message_id).edit(
                        embed=embed, view=view
                    )
                except discord.NotFound:
                    await self.bot.storage.review_posts.forget(guild_id, example_id)
                    return
                except discord.HTTPException as exc:
                    log.warning("could not update the review post of example #%s in guild %s: "
                                "%s", example_id, guild_id, exc)  # fmt: skip
                    return
                post.shown = _shown(review)

    async def _show_on_clicked_post(
        self, interaction: discord.Interaction, guild_id: int, example_id: int
    ) -> None:
        """Acknowledge a click by showing the example's current state on the post clicked.

        Free post: the response itself edits it. Busy post: acknowledge at once, then, in
        turn, edit it if it shows an older state than the current one. Buttons on another
        message than the example's post (a copy of it elsewhere) update that message, then
        the post.
        """
        stored = await self.bot.storage.review_posts.get(guild_id, example_id)
        clicked = interaction.message
        if stored is not None and clicked is not None and clicked.id != stored.message_id:
            review = await self.curation.review(guild_id, example_id)
            embed, view = await review_message(self.bot, review)
            await interaction.response.edit_message(embed=embed, view=view)
            await self.refresh_post(guild_id, example_id)
            return
        with self._posts.entry((guild_id, example_id)) as post:
            if post.lock.locked():
                await interaction.response.defer()
                async with post.lock:
                    review = await self.curation.review(guild_id, example_id)
                    if _shown(review) != post.shown:
                        embed, view = await review_message(self.bot, review)
                        await interaction.edit_original_response(embed=embed, view=view)
                        post.shown = _shown(review)
                return
            async with post.lock:
                review = await self.curation.review(guild_id, example_id)
                embed, view = await review_message(self.bot, review)
                await interaction.response.edit_message(embed=embed, view=view)
                post.shown = _shown(review)

    # ------------------------------------------------------------------ buttons
    async def on_review_action(
        self, interaction: discord.Interaction, action: ReviewAction, example_id: int
    ) -> None:
        guild = guild_of(interaction)
        if action in VOTES:
            await self._vote(interaction, guild.id, example_id, VOTES[action])
            return
        await self._require_curator(interaction)
        if action is ReviewAction.EDIT:
            await self._open_editor(interaction, guild.id, example_id)
            return
        await self.curation.decide(guild.id, example_id, DECISIONS[action])
        await self._show_on_clicked_post(interaction, guild.id, example_id)

    async def _vote(
        self, interaction: discord.Interaction, guild_id: int, example_id: int, value: int
    ) -> None:
        review = await self.curation.vote(guild_id, example_id, interaction.user.id, value)
        await self._show_on_clicked_post(interaction, guild_id, example_id)  # vote stored first
        outcome = ""
        if review.changed:
            outcome = f" Example #{example_id} is now **{review.record.status.value}**."
        await interaction.followup.send(
            f"Your vote on #{example_id}: **{'up' if value > 0 else 'down'}** "
            f"(score {review.tally.score:+d}).{outcome}",
            ephemeral=True,
        )

    @staticmethod
    async def _require_curator(interaction: discord.Interaction) -> None:
        try:
            await require_curator(interaction)
        except PermissionCheckFailure as exc:
            raise MissingPermission(exc.needed, CURATOR_ACTION) from None

    async def _open_editor(
        self, interaction: discord.Interaction, guild_id: int, example_id: int
    ) -> None:
        review = await self.curation.review(guild_id, example_id)
        system, text = _editable(review.record.example)
        form = ExampleForm(
            title=form_title("Edit", f"#{example_id}"),
            on_submit=functools.partial(self._save_edit, example_id=example_id, system=system),
            text=text,
            note=EDIT_NOTE,
        )
        await interaction.response.send_modal(form)

    async def _save_edit(
        self,
        interaction: discord.Interaction,
        text: FormText,
        *,
        example_id: int,
        system: tuple[dict[str, object], ...],
    ) -> None:
        """The edit form's submit: a UserError raised here offers **Try again**."""
        guild = guild_of(interaction)
        await self._require_curator(interaction)
        typed = conversation_from_text(text.user, text.assistant, text.earlier)
        example = ChatExample.from_messages([*system, *typed.messages])
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.curation.edit(guild.id, example_id, example)
        await self.refresh_post(guild.id, example_id)
        await interaction.followup.send(f"Example #{example_id} updated.", ephemeral=True)


def _editable(example: ChatExample) -> tuple[tuple[dict[str, object], ...], FormText]:
    """The example's leading system messages (kept as they are) and its turns as form text.

    Only plain conversations can be edited in the form: tool calls, tools or structured
    content would be lost, so those examples are refused.
    """
    messages = list(example.messages)
    system: list[dict[str, object]] = []
    while messages and messages[0].get("role") == "system":
        system.append(dict(messages.pop(0)))
    plain = all(
        m.get("role") in ("user", "assistant")
        and isinstance(m.get("content"), str)
        and set(m) <= {"role", "content"}
        for m in messages
    )
    if not plain or example.tools is not None or example.functions is not None:
        raise InvalidInput(
            "This example has tool calls or structured content, so it cannot be edited in the form."
        )
    return tuple(system), FormText(*conversation_to_text(example))


async def setup(bot: TunecordBot) -> None:
    await bot.add_cog(ReviewCog(bot))

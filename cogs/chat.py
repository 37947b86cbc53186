"""Chat: ``/chat enable|disable channel`` and the answers the bot writes in channels.

The bot answers every message from a person in a chat channel (a thread follows its
parent), and anywhere it can read a message that mentions it or replies to one of its
messages. It never answers bots, webhooks or itself. The answer streams into a reply
(:func:`bot.client.stream_editor.stream_answer`: typing indicator, an edit at most once a
second, split at 2,000 characters, nobody pinged); backend errors end it with a short line.

Cooldown and busy notices: a message reply cannot be ephemeral, so the notice is a short
reply (pinging nobody) deleted after :data:`~bot.services.chat.NOTICE_SECONDS`, sent once
per cooldown window; further messages in that window are ignored silently.

A thin adapter over :class:`~bot.services.chat.ChatService`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.client.bot import TunecordBot
from bot.client.channel_memory import ChannelMemory
from bot.client.chat_context import addresses_bot, as_turn, conversation, is_human
from bot.client.checks import guild_of, require_manage_channels
from bot.client.stream_editor import NO_PINGS, stream_answer
from bot.errors import UserError
from bot.providers.interface import Provider
from bot.services.chat import (
    NOTICE_SECONDS,
    ChatPlan,
    ChatService,
    Refusal,
    error_message,
)

log = logging.getLogger(__name__)


async def answer_deltas(provider: Provider, plan: ChatPlan) -> AsyncIterator[str]:
    """The model's answer as text deltas, then the plan's note (if any) on its own line."""
    async with provider.stream_chat(
        plan.model, plan.messages, max_tokens=plan.max_tokens
    ) as stream:
        async for delta in stream:
            yield delta
    if plan.note:
        yield f"\n\n{plan.note}"


@app_commands.guild_only()
@app_commands.default_permissions(manage_channels=True)
class ChatCog(
    commands.GroupCog, group_name="chat", group_description="Where the server's model answers"
):
    def __init__(self, bot: TunecordBot, service: ChatService) -> None:
        self.bot = bot
        self.chat = service
        self.memory = ChannelMemory()

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return require_manage_channels(interaction)

    @app_commands.command(name="enable", description="Answer every message in a channel")
    @app_commands.describe(channel="The channel (its threads follow it)")
    async def enable(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        added = await self.chat.enable(guild.id, channel.id, by=interaction.user.id)
        text = (
            f"I will answer every message in {channel.mention} and its threads."
            if added
            else f"Chat was already on in {channel.mention}."
        )
        me = guild.me
        if me is not None:
            perms = channel.permissions_for(me)
            if not (perms.view_channel and perms.send_messages and perms.read_message_history):
                text += (
                    "\nWarning: I need View Channel, Send Messages and Read Message History "
                    "there to answer."
                )
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="disable", description="Stop answering every message in a channel")
    @app_commands.describe(channel="The channel")
    async def disable(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        guild = guild_of(interaction)
        await interaction.response.defer(ephemeral=True)
        removed = await self.chat.disable(guild.id, channel.id)
        text = (
            f"I no longer answer every message in {channel.mention} (mentions and replies "
            "to me still get an answer)."
            if removed
            else f"Chat was not on in {channel.mention}."
        )
        await interaction.followup.send(text, ephemeral=True)

    # -- answering ----------------------------------------------------------------------

    async def cog_load(self) -> None:
        self.bot.message_readers.append(self.read)

    async def cog_unload(self) -> None:
        self.bot.message_readers.remove(self.read)

    def read(self, message: discord.Message) -> Coroutine[Any, Any, None] | None:
        """Every message: kept if its channel is remembered, answered if it is for the bot
        (a :data:`~bot.client.bot.MessageReader`: no await for the messages it leaves)."""
        me = self.bot.user
        if me is None:
            return None
        channel = message.channel
        if self.memory.remembers(channel.id):
            self.memory.observe(channel.id, message.id, as_turn(message, me))
        guild = message.guild
        if guild is None or message.author.id == me.id:
            return None
        if not is_human(message) or not message.content.strip():
            return None
        if addresses_bot(message, me):
            return self.answer(message)
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
        known = self.chat.known_chat_channel(guild.id, channel.id, parent_id)
        if known is None:
            return self._answer_in_chat_channel(message, guild.id, parent_id)
        return self.answer(message) if known else None

    async def _answer_in_chat_channel(
        self, message: discord.Message, guild_id: int, parent_id: int | None
    ) -> None:
        if await self.chat.is_chat_channel(guild_id, message.channel.id, parent_id):
            await self.answer(message)

    async def answer(self, message: discord.Message) -> None:
        """Answer ``message`` within the limits (a short notice when they refuse)."""
        assert message.guild is not None and self.bot.user is not None
        ticket = self.chat.limits.acquire(message.guild.id, message.author.id, message.channel.id)
        if isinstance(ticket, Refusal):
            await self._notice(message, ticket.notice)
            return
        try:
            await self._answer(message)
        finally:
            ticket.release()

    async def _answer(self, message: discord.Message) -> None:
        assert message.guild is not None and self.bot.user is not None
        try:
            history = await conversation(message, self.bot.user, self.memory)
            plan = await self.chat.prepare(message.guild.id, history)
        except UserError as exc:
            await self._reply(message, error_message(exc))
            return
        if plan.dropped:
            log.debug("context trimmed: %d messages left out", plan.dropped)
        try:
            result = await stream_answer(
                message.channel,
                answer_deltas(self.bot.provider, plan),
                error_note=error_message,
                reply_to=message,
            )
        except discord.HTTPException as exc:  # could not post at all (permissions, gone)
            log.info("could not answer in %s: %s", message.channel.id, exc)
            return
        if result.error is not None and not isinstance(result.error, UserError):
            log.warning("chat answer failed", exc_info=result.error)

    # -- keeping the remembered channels up to date (see bot.client.channel_memory) ------

    @commands.Cog.listener("on_raw_message_edit")
    async def remember_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        me = self.bot.user
        if me is not None and self.memory.remembers(payload.channel_id):
            self.memory.edited(payload.channel_id, payload.message_id, as_turn(payload.message, me))

    @commands.Cog.listener("on_raw_message_delete")
    async def remember_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.memory.deleted(payload.channel_id, (payload.message_id,))

    @commands.Cog.listener("on_raw_bulk_message_delete")
    async def remember_bulk_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        self.memory.deleted(payload.channel_id, payload.message_ids)

    @commands.Cog.listener("on_guild_channel_delete")
    async def forget_channel(self, channel: discord.abc.GuildChannel) -> None:
        self.memory.forget(channel.id)

    @commands.Cog.listener("on_raw_thread_delete")
    async def forget_thread(self, payload: discord.RawThreadDeleteEvent) -> None:
        self.memory.forget(payload.thread_id)

    @commands.Cog.listener("on_connect")
    async def forget_all(self) -> None:
        """A new gateway session (discord.py dispatches ``connect`` on READY, not on a
        RESUME, and before any later event): events may have been missed meanwhile."""
        self.memory.forget()

    async def _reply(self, message: discord.Message, text: str) -> None:
        try:
            await message.reply(text, mention_author=False, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.info("could not reply in %s: %s", message.channel.id, exc)

    async def _notice(self, message: discord.Message, text: str | None) -> None:
        if text is None:
            return
        try:
            await message.reply(
                text, mention_author=False, allowed_mentions=NO_PINGS, delete_after=NOTICE_SECONDS
            )
        except discord.HTTPException as exc:
            log.info("could not send a notice in %s: %s", message.channel.id, exc)


async def setup(bot: TunecordBot) -> None:
    await bot.add_cog(ChatCog(bot, bot.services.chat))

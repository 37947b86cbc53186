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
from collections.abc import AsyncIterator

import discord
from discord import app_commands
from discord.ext import commands

from bot.client.bot import TunecordBot
from bot.client.chat_context import addresses_bot, conversation, is_human
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

    async def should_answer(self, message: discord.Message) -> bool:
        me = self.bot.user
        if me is None or message.guild is None or message.author.id == me.id:
            return False
        if not is_human(message) or not message.content.strip():
            return False
        if addresses_bot(message, me):
            return True
        channel = message.channel
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
        return await self.chat.is_chat_channel(message.guild.id, channel.id, parent_id)

    @commands.Cog.listener("on_message")
    async def answer(self, message: discord.Message) -> None:
        if not await self.should_answer(message):
            return
        assert message.guild is not None and self.bot.user is not None
        self.bot.in_flight.track_current()
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
            history = await conversation(message, self.bot.user)
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

"""Reading what a chat answer needs from Discord into plain data.

* :func:`addresses_bot`: whether a message asks the bot (a mention of it, or a reply to
  one of its messages), from what the gateway sent: no REST call.
* :func:`conversation`: the reply chain above the message when it is a reply (the
  message's resolved reference, the bot's cache, then ``fetch_message``; same channel
  only; it stops at a deleted or unreachable message), otherwise the recent messages of
  the channel or thread before it, from :class:`~bot.client.channel_memory.ChannelMemory`
  (one REST read per channel, then the gateway's events). At most
  :data:`~bot.services.chat.HISTORY_MESSAGES`,
  oldest first, the message itself last. System messages, other bots' and webhooks'
  messages and messages without text are left out.
* Text: the bot's own mention is removed, other user mentions become ``@name``.
"""

from __future__ import annotations

import logging
import re

import discord

from bot.client.channel_memory import ChannelMemory
from bot.services.chat import HISTORY_MESSAGES, ContextMessage

log = logging.getLogger(__name__)

_TURN_TYPES = (discord.MessageType.default, discord.MessageType.reply)
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_SPACES = re.compile(r"[ \t]{2,}")


def is_human(message: discord.Message) -> bool:
    """Written by a person: not a bot, not a webhook, not a system message."""
    return (
        not message.author.bot
        and message.webhook_id is None
        and message.type in _TURN_TYPES
    )


def _replied(message: discord.Message) -> discord.Message | None:
    ref = message.reference
    if ref is None or ref.type is not discord.MessageReferenceType.reply:
        return None
    resolved = ref.resolved
    if isinstance(resolved, discord.Message):
        return resolved
    return ref.cached_message


def addresses_bot(message: discord.Message, me: discord.abc.User) -> bool:
    """Whether ``message`` mentions the bot or replies to one of its messages."""
    if any(user.id == me.id for user in message.mentions):
        return True
    replied = _replied(message)
    return replied is not None and replied.author.id == me.id


def message_text(message: discord.Message, me: discord.abc.User) -> str:
    """The text as the model reads it (see the module docstring)."""
    names = {user.id: user.display_name for user in message.mentions}

    def replace(match: re.Match[str]) -> str:
        user_id = int(match.group(1))
        if user_id == me.id:
            return ""
        name = names.get(user_id)
        return f"@{name}" if name else match.group(0)

    return _SPACES.sub(" ", _USER_MENTION.sub(replace, message.content)).strip()


def _context(message: discord.Message, me: discord.abc.User) -> ContextMessage:
    return ContextMessage(
        message.author.id, message_text(message, me), from_bot=message.author.id == me.id
    )


def _usable(message: discord.Message, me: discord.abc.User) -> bool:
    ours = message.author.id == me.id
    return (ours or is_human(message)) and bool(message.content.strip())


def as_turn(message: discord.Message, me: discord.abc.User) -> ContextMessage | None:
    """The message as context, or None when it is not a turn (see :func:`_usable`)."""
    return _context(message, me) if _usable(message, me) else None


async def _parent(message: discord.Message) -> discord.Message | None:
    ref = message.reference
    if ref is None or ref.message_id is None or ref.type is not discord.MessageReferenceType.reply:
        return None
    if ref.channel_id != message.channel.id:
        return None
    replied = _replied(message)
    if replied is not None:
        return replied
    if isinstance(ref.resolved, discord.DeletedReferencedMessage):
        return None
    try:
        return await message.channel.fetch_message(ref.message_id)
    except discord.HTTPException as exc:
        log.debug("reply chain stops at %s: %s", ref.message_id, exc)
        return None


async def reply_chain(
    message: discord.Message, me: discord.abc.User, limit: int = HISTORY_MESSAGES
) -> list[ContextMessage]:
    """``message`` and the messages it replies to, up the chain, oldest first."""
    chain = [message]
    current = message
    while len(chain) < limit:
        parent = await _parent(current)
        if parent is None or not _usable(parent, me):
            break
        chain.append(parent)
        current = parent
    return [_context(m, me) for m in reversed(chain)]


async def recent_history(
    message: discord.Message,
    me: discord.abc.User,
    memory: ChannelMemory,
    limit: int = HISTORY_MESSAGES,
) -> list[ContextMessage]:
    """The recent messages of the channel before ``message``, then ``message``."""
    channel = message.channel

    async def fetch() -> list[tuple[int, ContextMessage]]:
        found: list[tuple[int, ContextMessage]] = []
        async for older in channel.history(limit=limit - 1, before=message):
            turn = as_turn(older, me)
            if turn is not None:
                found.append((older.id, turn))
        return found

    current = _context(message, me)
    try:
        earlier = await memory.history(channel.id, message.id, limit - 1, fetch)
    except discord.HTTPException as exc:  # no Read Message History: the message alone
        log.debug("history of %s unreadable: %s", channel.id, exc)
        earlier = []
    memory.observe(channel.id, message.id, current)
    return [*earlier, current]


async def conversation(
    message: discord.Message, me: discord.abc.User, memory: ChannelMemory
) -> list[ContextMessage]:
    """The context for answering ``message`` (see the module docstring)."""
    if message.reference is not None and message.reference.message_id is not None:
        return await reply_chain(message, me)
    return await recent_history(message, me, memory)

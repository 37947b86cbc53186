"""The recent messages of the channels the bot answers in, kept from the gateway.

Answering a message in a chat channel needs the messages before it. Reading them over
REST costs a round trip to Discord before every answer (and a share of the channel's rate
limit), so the bot reads them once per channel and then keeps them up to date from the
gateway events it receives anyway: each new message, edit and deletion.

* A channel is **seeded** by one history read (:meth:`ChannelMemory.history`), after which
  every message the gateway delivers in it is kept (:meth:`ChannelMemory.observe`), at most
  :data:`KEPT_PER_CHANNEL` per channel, for at most :data:`CHANNELS` channels (the least
  recently used one is forgotten and seeded again when needed).
* Messages that arrive while the seeding read is in flight are merged with what it
  returns, by message id: nothing that happened meanwhile is missed or doubled.
* A new gateway session (``on_connect``, dispatched on READY after a fresh IDENTIFY: events
  may have been missed while disconnected) forgets everything; a RESUME replays the missed
  events and keeps it.
* Kept as plain data (:class:`~bot.services.chat.ContextMessage` plus the id): an edit
  replaces the text, a deletion removes the message.

No lock is needed: every method runs on the event loop, and only :meth:`history` awaits.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from bot.services.chat import ContextMessage

log = logging.getLogger(__name__)

KEPT_PER_CHANNEL = 25
"""Messages kept per channel (more than :data:`~bot.services.chat.HISTORY_MESSAGES`, so
deletions do not leave the context short)."""
CHANNELS = 256
"""Channels remembered at once: at most 256 x 25 messages of 4,000 characters, 25 MB
or so, and usually far less."""


@dataclass
class _Channel:
    seeded: bool = False
    messages: dict[int, ContextMessage] = field(default_factory=dict)
    """By message id; ids grow with time, so sorting them orders the channel."""
    gone: set[int] = field(default_factory=set)
    """Deleted while the seeding read was in flight (it may still return them)."""

    def trim(self) -> None:
        if len(self.messages) > KEPT_PER_CHANNEL:
            for old in sorted(self.messages)[: len(self.messages) - KEPT_PER_CHANNEL]:
                del self.messages[old]


Fetch = Callable[[], Awaitable[Iterable[tuple[int, ContextMessage]]]]
"""Reads a channel's recent messages over REST: (message id, message as context)."""


class ChannelMemory:
    """Recent messages per channel (see the module docstring)."""

    def __init__(self) -> None:
        self._channels: OrderedDict[int, _Channel] = OrderedDict()

    def observe(self, channel_id: int, message_id: int, message: ContextMessage | None) -> None:
        """A message the gateway delivered (``None``: one that is not a turn, such as a
        system message: it is not kept). Ignored for channels not being remembered."""
        channel = self._channels.get(channel_id)
        if channel is None or message is None:
            return
        channel.messages[message_id] = message
        channel.trim()

    def edited(self, channel_id: int, message_id: int, message: ContextMessage | None) -> None:
        """A message's new text (``None``: it is no longer a turn)."""
        channel = self._channels.get(channel_id)
        if channel is None:
            return
        if message is None:
            channel.messages.pop(message_id, None)
        elif message_id in channel.messages or (
            channel.messages and message_id > min(channel.messages)
        ):
            channel.messages[message_id] = message
            channel.trim()

    def deleted(self, channel_id: int, message_ids: Iterable[int]) -> None:
        channel = self._channels.get(channel_id)
        if channel is not None:
            for message_id in message_ids:
                channel.messages.pop(message_id, None)
                if not channel.seeded:
                    channel.gone.add(message_id)

    def forget(self, channel_id: int | None = None) -> None:
        """Forget one channel (deleted, or unreadable), or all of them (a new session)."""
        if channel_id is None:
            self._channels.clear()
        else:
            self._channels.pop(channel_id, None)

    def remembers(self, channel_id: int) -> bool:
        """Whether messages in the channel are kept (seeded, or being seeded)."""
        return channel_id in self._channels

    async def history(
        self, channel_id: int, before: int, limit: int, fetch: Fetch
    ) -> list[ContextMessage]:
        """Up to ``limit`` kept messages older than message ``before``, oldest first; the
        channel is seeded with ``fetch`` first when it is not yet. A failed read raises
        (the channel stays unseeded)."""
        channel = self._channels.get(channel_id)
        if channel is None:
            channel = self._channels[channel_id] = _Channel()
            while len(self._channels) > CHANNELS:
                self._channels.popitem(last=False)
        else:
            self._channels.move_to_end(channel_id)
        if not channel.seeded:
            try:
                fetched = list(await fetch())
            except BaseException:
                if not channel.seeded and self._channels.get(channel_id) is channel:
                    del self._channels[channel_id]
                raise
            if self._channels.get(channel_id) is channel and not channel.seeded:
                for message_id, message in fetched:
                    if message_id not in channel.gone:
                        channel.messages.setdefault(message_id, message)  # gateway news wins
                channel.seeded = True
                channel.gone.clear()
                channel.trim()
            else:  # forgotten meanwhile (a new session): answer from the read alone
                return [m for i, m in sorted(fetched) if i < before][-limit:] if limit else []
        older = sorted(i for i in channel.messages if i < before)
        return [channel.messages[i] for i in older[-limit:]] if limit > 0 else []

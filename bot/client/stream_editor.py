"""Streaming a model's answer into Discord messages while it is being written.

:func:`stream_answer` shows the typing indicator until the first visible text arrives
(sent alongside the model's request once it takes more than a quarter of a second),
sends it as a reply to the asking message (without pinging its author), then edits that
message at most once per ``interval`` (measured on the event loop's clock) as the text
grows. Past 2,000 characters the answer continues in new messages, split by
:mod:`bot.client.chat_split` so code blocks and words stay whole; a message followed by
another is final and never edited again. When the text is complete, one last edit shows
all of it at once.

When the iterator of text deltas raises, what was already sent stays, the caller's short
note is appended (after closing an open code block) and the error is handed back in the
result: the stream ends cleanly, never with a traceback in the channel. Every send and
edit passes ``AllowedMentions.none()``: text the model writes pings nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field

import discord

from bot.client.chat_split import CLOSE, MESSAGE_LIMIT, fence_state, plan_parts

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 1.0
"""Seconds between two edits of a streaming answer (Discord allows about 5 edits in 5 s)."""
DEFAULT_EMPTY_NOTE = "*(The model returned an empty answer.)*"
TYPING_AFTER_SECONDS = 0.25
"""An answer whose first text comes sooner needs no typing indicator (one REST call less)."""
TYPING_RENEW_SECONDS = 8.0
"""Discord shows a typing indicator for about 10 seconds after each call."""

NO_PINGS = discord.AllowedMentions.none()

ErrorNote = str | Callable[[Exception], str]
"""The note appended when the stream fails: fixed text, or made from the error."""


@dataclass
class StreamedAnswer:
    """What :func:`stream_answer` did."""

    text: str
    """The text the model wrote, as received (without any note)."""
    messages: list[discord.Message] = field(default_factory=list)
    """The messages sent, in order, as last edited."""
    error: Exception | None = None
    """The exception that ended the stream early (its note was appended), or None."""
    removed: bool = False
    """A message of the answer was deleted while it streamed: streaming stopped there."""


class _Removed(Exception):
    """A message of the answer no longer exists."""


async def stream_answer(
    channel: discord.abc.Messageable,
    deltas: AsyncIterable[str],
    *,
    error_note: ErrorNote,
    reply_to: discord.Message | None = None,
    interval: float = DEFAULT_INTERVAL,
    empty_note: str | None = DEFAULT_EMPTY_NOTE,
    limit: int = MESSAGE_LIMIT,
) -> StreamedAnswer:
    """Stream ``deltas`` into messages in ``channel``, the first one replying to ``reply_to``.

    ``error_note`` is appended when ``deltas`` raises (and sent alone when nothing was sent
    yet); ``empty_note`` is sent when the answer has no visible text (None: send nothing).
    Discord errors on the first message propagate; later ones are logged and retried at the
    next edit. ``deltas`` is closed (``aclose``) however the stream ends.
    """
    stream = _Stream(channel, reply_to, interval, limit)
    iterator = aiter(deltas)
    try:
        error = await stream.run(iterator)
        if not stream.removed:
            if error is not None:
                note = error_note(error) if callable(error_note) else error_note
                await stream.flush(_with_note(stream.text, note), final=True)
            elif stream.text.strip():
                await stream.flush(stream.text, final=True)
            elif empty_note:
                await stream.flush(empty_note, final=True)
        return StreamedAnswer(stream.text, list(stream.messages), error, stream.removed)
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def _with_note(text: str, note: str) -> str:
    body = text.rstrip()
    if not body:
        return note
    if fence_state(body) is not None:
        body += CLOSE  # the note goes after the code block, not inside it
    return f"{body}\n\n{note}"


class _Stream:
    """The messages of one answer and the text they show."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        reply_to: discord.Message | None,
        interval: float,
        limit: int,
    ) -> None:
        self.channel = channel
        self.reply_to = reply_to
        self.interval = interval
        self.limit = limit
        self.text = ""
        self.messages: list[discord.Message] = []
        self.shown: list[str] = []
        self.frozen = 0
        """Messages followed by another: their content is final."""
        self.resume_at = 0
        self.open_tag: str | None = None
        """Where the text after the frozen messages starts, and the code block open there."""
        self.removed = False
        self.changed = asyncio.Event()
        self.stopping = asyncio.Event()
        self.next_flush = 0.0

    async def run(self, iterator: AsyncIterator[str]) -> Exception | None:
        """Read ``iterator`` to its end, showing the text as it grows; the error that ended it."""
        typing_done = asyncio.Event()
        typing: list[asyncio.Task[None]] = []
        timer = asyncio.get_running_loop().call_later(
            TYPING_AFTER_SECONDS,
            lambda: typing.append(asyncio.create_task(self._type_until(typing_done))),
        )  # a quick answer costs no task and no REST call for the indicator
        try:
            try:
                while not self.text.strip():
                    self.text += await anext(iterator)
            except StopAsyncIteration:
                return None
            except Exception as exc:
                return exc
            finally:
                timer.cancel()
                typing_done.set()
            return await self._stream_rest(iterator)
        finally:
            for task in typing:  # stopped by ``typing_done`` (set above) after its call
                await task

    async def _type_until(self, done: asyncio.Event) -> None:
        """The typing indicator, alongside the backend's request (not before it), once the
        first text takes longer than :data:`TYPING_AFTER_SECONDS`, renewed until it arrives;
        a refusal is no reason not to answer."""
        while not done.is_set():
            try:
                await self.channel.typing()
            except discord.HTTPException as exc:
                log.debug("typing indicator refused: %s", exc)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), TYPING_RENEW_SECONDS)

    async def _stream_rest(self, iterator: AsyncIterator[str]) -> Exception | None:
        """Show the first text at once, then the rest as it grows."""
        loop = asyncio.get_running_loop()
        self.next_flush = loop.time() + self.interval
        await self.flush(self.text, final=False)
        if self.removed:
            return None
        flusher = asyncio.create_task(self._flush_periodically())
        try:
            async for delta in iterator:
                self.text += delta
                self.changed.set()
                if self.removed:
                    break
        except Exception as exc:
            return exc
        finally:
            self.stopping.set()
            self.changed.set()
            await flusher  # lets an edit in progress finish: no message is left half-known
        return None

    async def _flush_periodically(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.changed.wait()
            delay = self.next_flush - loop.time()
            if delay > 0 and not self.stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set() or self.removed:
                return
            self.changed.clear()
            self.next_flush = loop.time() + self.interval
            await self.flush(self.text, final=False)

    async def flush(self, text: str, *, final: bool) -> None:
        """Make the messages show ``text``: edit the changed ones, send the new ones.

        A message followed by another is frozen once it shows its final part. A Discord error
        stops this flush (logged; the next one tries again), except on the first message.
        """
        parts = plan_parts(text, self.limit, start=self.resume_at, state=self.open_tag)
        for i, part in enumerate(parts):
            index = self.frozen + i
            try:
                if index >= len(self.messages):
                    await self._send(part.text)
                elif self.shown[index] != part.text:
                    await self._edit(index, part.text)
            except _Removed:
                self.removed = True
                return
            except discord.HTTPException as exc:
                if not self.messages:
                    raise
                when = "final" if final else "live"
                log.warning("could not update a streamed answer (%s edit): %s", when, exc)
                return
            if i < len(parts) - 1:
                self.frozen += 1
                self.resume_at, self.open_tag = part.resume_at, part.open_after

    async def _send(self, content: str) -> None:
        if self.messages:
            try:
                message = await self.channel.send(content, allowed_mentions=NO_PINGS)
            except discord.NotFound as exc:  # the channel or thread was deleted meanwhile
                raise _Removed from exc
        elif self.reply_to is None:
            message = await self.channel.send(content, allowed_mentions=NO_PINGS)
        else:
            message = await self.channel.send(
                content,
                reference=self.reply_to.to_reference(fail_if_not_exists=False),
                mention_author=False,
                allowed_mentions=NO_PINGS,
            )
        self.messages.append(message)
        self.shown.append(content)

    async def _edit(self, index: int, content: str) -> None:
        try:
            self.messages[index] = await self.messages[index].edit(
                content=content, allowed_mentions=NO_PINGS
            )
        except discord.NotFound as exc:
            raise _Removed from exc
        self.shown[index] = content

"""Awaitable views of an interaction, from the user's side of the screen.

An :class:`InteractionHandle` is what a test gets back from
``member.slash(...)``, ``member.click(...)`` etc.  Everything the bot does
with the interaction (initial response, deferral, modal, edits, follow-ups,
rejected double responses) is recorded on the server and can be awaited
without sleeping: each ``wait_*`` re-checks after every state change and
times out with a clear message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .state import Message

if TYPE_CHECKING:
    from .interactions import InteractionRecord
    from .server import DiscordStandIn

CALLBACK_NAMES = {
    4: "CHANNEL_MESSAGE_WITH_SOURCE",
    5: "DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE",
    6: "DEFERRED_UPDATE_MESSAGE",
    7: "UPDATE_MESSAGE",
    8: "APPLICATION_COMMAND_AUTOCOMPLETE_RESULT",
    9: "MODAL",
}


class InteractionFailed(AssertionError):
    """The Discord client would show "This interaction failed": the bot did
    not acknowledge within the deadline (later callbacks get 10062)."""


class InteractionHandle:
    """The user's view of one interaction (see module docstring)."""

    def __init__(self, server: DiscordStandIn, record: InteractionRecord) -> None:
        self.server = server
        self.record = record
        self._followups_seen = 0
        self._edits_seen = 0

    def __repr__(self) -> str:
        return f"<InteractionHandle id={self.id} response={self.response_name}>"

    # --------------------------------------------------------------- state
    @property
    def id(self) -> int:
        return self.record.id

    @property
    def acknowledged(self) -> bool:
        return self.record.acknowledged

    @property
    def response_type(self) -> int | None:
        """The callback type the bot used (4, 5, 6, 7, 8 or 9)."""
        return self.record.callback_type

    @property
    def response_name(self) -> str | None:
        return CALLBACK_NAMES.get(self.record.callback_type or 0)

    @property
    def response(self) -> dict[str, Any] | None:
        """The raw callback body the bot sent."""
        return self.record.callback

    @property
    def deferred(self) -> bool:
        return self.record.callback_type in (5, 6)

    @property
    def message(self) -> Message | None:
        """The original response message, as it is *now* (after edits)."""
        mid = self.record.original_id
        return self.server.world.messages.get(mid) if mid else None

    @property
    def content(self) -> str | None:
        msg = self.message
        return msg.content if msg else None

    @property
    def ephemeral(self) -> bool:
        msg = self.message
        return bool(msg and msg.ephemeral)

    @property
    def modal(self) -> dict[str, Any] | None:
        """The modal the bot showed (``data`` of a type 9 callback)."""
        return self.record.modal

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        """Autocomplete choices the bot returned (type 8)."""
        return self.record.choices

    @property
    def followups(self) -> list[Message]:
        return [self.server.world.messages[m] for m in self.record.followup_ids]

    @property
    def rejections(self) -> list[tuple[int, int]]:
        """``(status, code)`` of bot requests Discord refused (e.g. 40060)."""
        return list(self.record.rejections)

    # ---------------------------------------------------------------- waits
    async def wait_response(self, timeout: float | None = None) -> InteractionHandle:
        """Wait for the initial response; raises :class:`InteractionFailed`
        once the acknowledgement deadline has passed without one."""
        rec = self.record
        limit = rec.ack_deadline + 0.25 if timeout is None else timeout
        try:
            await self.server.wait_for(lambda: rec.acknowledged, limit, "the interaction response")
        except TimeoutError:
            raise InteractionFailed(
                f"This interaction failed: the bot did not respond to interaction {rec.id} "
                f"within {rec.ack_deadline}s"
            ) from None
        return self

    async def wait_original(self, predicate: Any = None, timeout: float = 5.0) -> Message:
        """The original message once it is no longer "thinking" (and
        ``predicate(message)`` holds, if given)."""

        def ready() -> Message | None:
            msg = self.message
            if msg is None or msg.loading:
                return None
            return msg if predicate is None or predicate(msg) else None

        return await self.server.wait_for(ready, timeout, "the original response")

    async def next_followup(self, timeout: float = 5.0) -> Message:
        """The next follow-up message not yet returned by this method."""
        index = self._followups_seen

        def got() -> Message | None:
            ids = self.record.followup_ids
            return self.server.world.messages[ids[index]] if len(ids) > index else None

        msg = await self.server.wait_for(got, timeout, f"follow-up #{index + 1}")
        self._followups_seen += 1
        return msg

    async def next_edit(self, timeout: float = 5.0) -> Message:
        """The message after the next ``PATCH`` of ``@original`` / a follow-up."""
        index = self._edits_seen

        def got() -> Message | None:
            edits = [m for kind, m in self.record.events if kind == "edit"]
            return edits[index] if len(edits) > index else None

        msg = await self.server.wait_for(got, timeout, f"edit #{index + 1}")
        self._edits_seen += 1
        return msg

    async def wait_rejection(self, code: int, timeout: float = 5.0) -> tuple[int, int]:
        """Wait until Discord refused a bot request with ``code``."""

        def got() -> tuple[int, int] | None:
            return next((r for r in self.record.rejections if r[1] == code), None)

        return await self.server.wait_for(got, timeout, f"a rejection with code {code}")

    async def wait_deleted(self, timeout: float = 5.0) -> Message:
        return await self.server.wait_for(
            lambda: next((m for k, m in self.record.events if k == "delete"), None),
            timeout,
            "a deletion",
        )

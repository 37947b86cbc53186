"""Curation: members vote on pending examples, curators approve, reject and edit.

A vote is stored before anything else happens, one per member and example (a new vote
replaces the old one), never on one's own example. When the net score of a pending
example reaches the guild's threshold it is approved; at minus the threshold, rejected.
Votes serialise on the database's single writer, so many members voting at once each
count exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.dataset.errors import InvalidInput
from bot.dataset.examples import ChatExample
from bot.dataset.validation import validate_example
from bot.services.contributions import NotAllowed
from storage.errors import DuplicateError, NotFoundError
from storage.records import ExampleRecord, ExampleStatus, VoteTally
from storage.store import Storage


@dataclass(frozen=True)
class Review:
    """An example's state after a vote or a curator's decision."""

    record: ExampleRecord
    tally: VoteTally
    threshold: int
    changed: bool
    """True when this action changed the example's status."""


class CurationService:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def vote(self, guild_id: int, example_id: int, user_id: int, value: int) -> Review:
        """Record a member's up (+1) or down (-1) vote and apply the threshold."""
        record = await self._get(guild_id, example_id)
        if record.contributor_id == user_id:
            raise NotAllowed("You cannot vote on your own example.")
        consent = await self._storage.consents.get(guild_id, user_id)
        if consent is not None and not consent.granted:
            raise NotAllowed(
                "You opted out of tunecord in this server, so your votes are not stored. "
                "`/privacy optin` lets you take part again."
            )
        if record.status is not ExampleStatus.PENDING:
            raise InvalidInput(f"Example #{example_id} is already {record.status.value}.")
        if value not in (1, -1):
            raise InvalidInput("A vote is up or down.")
        if await self._storage.votes.cast(guild_id, example_id, user_id, value) is None:
            raise NotFoundError(f"There is no example #{example_id} in this server.")
        threshold = (await self._storage.guilds.get(guild_id)).vote_threshold
        tally = await self._storage.votes.tally(guild_id, example_id)
        decided = None
        if tally.score >= threshold:
            decided = ExampleStatus.APPROVED
        elif tally.score <= -threshold:
            decided = ExampleStatus.REJECTED
        changed = False
        if decided is not None:
            changed = await self._storage.examples.set_status(guild_id, example_id, decided)
        return Review(await self._get(guild_id, example_id), tally, threshold, changed)

    async def decide(self, guild_id: int, example_id: int, status: ExampleStatus) -> Review:
        """A curator approves, rejects or reopens (pending) an example."""
        await self._get(guild_id, example_id)
        changed = await self._storage.examples.set_status(guild_id, example_id, status)
        return await self._review(guild_id, example_id, changed)

    async def edit(self, guild_id: int, example_id: int, example: ChatExample) -> Review:
        """A curator replaces an example's conversation (its token counts are recounted
        when stats next need them)."""
        await self._get(guild_id, example_id)
        problems = [p for p in validate_example(example.to_obj()) if p.is_error]
        if problems:
            raise InvalidInput(problems[0].message)
        try:
            updated = await self._storage.examples.update_content(guild_id, example_id, example)
        except DuplicateError:
            raise InvalidInput("The dataset already has this conversation.") from None
        if updated is None:
            raise NotFoundError(f"There is no example #{example_id} in this server.")
        return await self._review(guild_id, example_id, True)

    async def review(self, guild_id: int, example_id: int) -> Review:
        """An example's current state, for rendering its review post."""
        return await self._review(guild_id, example_id, False)

    async def _review(self, guild_id: int, example_id: int, changed: bool) -> Review:
        record = await self._get(guild_id, example_id)
        tally = await self._storage.votes.tally(guild_id, example_id)
        threshold = (await self._storage.guilds.get(guild_id)).vote_threshold
        return Review(record, tally, threshold, changed)

    async def _get(self, guild_id: int, example_id: int) -> ExampleRecord:
        record = await self._storage.examples.get(guild_id, example_id)
        if record is None:
            raise NotFoundError(f"There is no example #{example_id} in this server.")
        return record

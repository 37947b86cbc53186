"""Contributions: a member adds an example to a dataset, looks at examples, removes one.

A contribution is checked before anything is stored: the member has not opted out, is
under the guild's limit of pending examples per dataset, the conversation passes the one
set of validation rules, fits the model's training context and is not already in the
dataset. Its token count is stored with it, so stats never recount it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from bot.dataset.errors import InvalidInput
from bot.dataset.examples import ChatExample
from bot.dataset.pricing import PriceCatalogue
from bot.dataset.tokens import count_example
from bot.dataset.validation import validate_example
from bot.services.counting import counting_for_dataset
from storage.errors import DuplicateError, NotFoundError
from storage.records import Dataset, ExampleRecord, ExampleSource, ExampleStatus
from storage.review_posts import ReviewPost
from storage.store import Storage


class NotAllowed(InvalidInput):
    """The member may not do this (someone else's example, an opted-out member...)."""


@dataclass(frozen=True)
class Contribution:
    record: ExampleRecord
    tokens: int


class ContributionService:
    def __init__(self, storage: Storage, catalogue: PriceCatalogue) -> None:
        self._storage = storage
        self._catalogue = catalogue

    async def add(
        self,
        dataset: Dataset,
        contributor_id: int,
        example: ChatExample,
        *,
        source: ExampleSource = ExampleSource.MODAL,
        authors: Mapping[int, int] | None = None,
    ) -> Contribution:
        """Store ``example`` as pending, contributed by ``contributor_id``.

        Submitting is the contributor's consent for what they typed, unless they opted out
        (then they are told how to opt back in). ``authors`` names who wrote captured turns
        (message index to user id); each of them other than the contributor must have
        opted in.
        """
        guild_id = dataset.guild_id
        await self.check_contributor(guild_id, contributor_id)
        await self.check_authors(guild_id, contributor_id, authors or {})
        await self._check_pending_limit(dataset, contributor_id)
        problems = [p for p in validate_example(example.to_obj()) if p.is_error]
        if problems:
            raise InvalidInput(problems[0].message)
        counting = counting_for_dataset(dataset, self._catalogue)
        tokens = await asyncio.to_thread(
            count_example, counting.trained(example), counting.encoding
        )
        if tokens > counting.billed_cap:
            raise InvalidInput(
                f"This conversation is {tokens:,} tokens long; the model trains on at most "
                f"{counting.billed_cap:,}. Shorten it or split it in two."
            )
        try:
            record = await self._storage.examples.add(
                guild_id,
                dataset.id,
                example,
                contributor_id=contributor_id,
                source=source,
                status=ExampleStatus.PENDING,
                token_counts={counting.key: tokens},
                billed_cap=counting.billed_cap,
                authors=authors,
            )
        except DuplicateError as exc:
            raise InvalidInput(
                f"The dataset already has this conversation (example #{exc.existing_id})."
            ) from None
        return Contribution(record, tokens)

    async def check_contributor(self, guild_id: int, contributor_id: int) -> None:
        """Refuse a member who opted out (before they type anything into a form)."""
        consent = await self._storage.consents.get(guild_id, contributor_id)
        if consent is not None and not consent.granted:
            raise NotAllowed(
                "You opted out of contributing in this server. `/privacy optin` lets you "
                "contribute again."
            )

    async def check_authors(
        self, guild_id: int, contributor_id: int, authors: Mapping[int, int]
    ) -> None:
        """Refuse turns written by members, other than the contributor, who have not opted
        in (a capture must not take anyone's words without their consent)."""
        others = sorted({u for u in authors.values() if u != contributor_id})
        if not others:
            return
        consented = await self._storage.consents.consented_users(guild_id, others)
        missing = [u for u in others if u not in consented]
        if missing:
            who = ", ".join(f"<@{u}>" for u in missing)
            raise NotAllowed(
                f"This conversation quotes {who}, who {'has' if len(missing) == 1 else 'have'} "
                "not opted in to contributing. They can use `/privacy optin`; until then "
                "their messages cannot be added."
            )

    async def _check_pending_limit(self, dataset: Dataset, contributor_id: int) -> None:
        settings = await self._storage.guilds.get(dataset.guild_id)
        pending = await self._storage.examples.contributor_count(
            dataset.guild_id, dataset.id, contributor_id, ExampleStatus.PENDING
        )
        if pending >= settings.max_pending_per_member:
            raise InvalidInput(
                f"You already have {pending} examples waiting for review in "
                f"**{dataset.name}** (the limit is {settings.max_pending_per_member}). "
                "Try again once some are reviewed."
            )

    async def get(self, guild_id: int, example_id: int) -> ExampleRecord:
        record = await self._storage.examples.get(guild_id, example_id)
        if record is None:
            raise NotFoundError(f"There is no example #{example_id} in this server.")
        return record

    async def page(
        self,
        dataset: Dataset,
        *,
        status: ExampleStatus | None = None,
        contributor_id: int | None = None,
        after_id: int = 0,
        limit: int = 10,
    ) -> list[ExampleRecord]:
        """A page of the dataset's examples in id order (``after_id`` for the next)."""
        if contributor_id is None:
            return await self._storage.examples.page(
                dataset.guild_id, dataset.id, status=status, after_id=after_id, limit=limit
            )
        return await self._storage.examples.page_by_contributor(
            dataset.guild_id,
            dataset.id,
            contributor_id,
            status=status,
            after_id=after_id,
            limit=limit,
        )

    async def remove(
        self, guild_id: int, example_id: int, user_id: int, *, curator: bool
    ) -> ReviewPost | None:
        """Delete an example: its contributor may, and so may a curator. Returns its review
        post, if it had one, for the caller to delete from Discord."""
        record = await self.get(guild_id, example_id)
        if record.contributor_id != user_id and not curator:
            raise NotAllowed("You can remove only your own examples; a curator can remove any.")
        post = await self._storage.review_posts.get(guild_id, example_id)
        if not await self._storage.examples.delete(guild_id, example_id):
            raise NotFoundError(f"There is no example #{example_id} in this server.")
        return post

    async def authors(self, guild_id: int, example_id: int) -> dict[int, int]:
        """Who wrote which captured turn (message index to user id)."""
        return await self._storage.examples.authors(guild_id, example_id)

"""Contributions: a member adds an example to a dataset, looks at examples, removes one.

A contribution is checked before anything is stored: the member has not opted out, is
under the guild's limit of pending examples per dataset, the conversation passes the one
set of validation rules, fits the model's training context and is not already in the
dataset. Its token count is stored with it, so stats never recount it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.dataset.errors import InvalidInput
from bot.dataset.examples import ChatExample
from bot.dataset.policy import apply_policy
from bot.dataset.pricing import PriceCatalogue
from bot.dataset.tokens import count_example
from bot.dataset.validation import validate_example
from bot.services.counting import counting_for_model
from storage.errors import DuplicateError, NotFoundError
from storage.records import Dataset, ExampleRecord, ExampleSource, ExampleStatus
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
    ) -> Contribution:
        """Store ``example`` as pending, contributed by ``contributor_id``.

        Submitting is the contributor's consent for what they typed, unless they opted out
        (then they are told how to opt back in).
        """
        guild_id = dataset.guild_id
        consent = await self._storage.consents.get(guild_id, contributor_id)
        if consent is not None and not consent.granted:
            raise NotAllowed(
                "You opted out of contributing in this server. `/privacy optin` lets you "
                "contribute again."
            )
        await self._check_pending_limit(dataset, contributor_id)
        problems = [p for p in validate_example(example.to_obj()) if p.is_error]
        if problems:
            raise InvalidInput(problems[0].message)
        counting = counting_for_model(dataset.base_model, self._catalogue)
        trained = apply_policy(example, dataset.policy, dataset.system_prompt)
        tokens = await asyncio.to_thread(count_example, trained, counting.encoding)
        if tokens > counting.billed_cap:
            raise InvalidInput(
                f"This conversation is {tokens:,} tokens long; the model trains on at most "
                f"{counting.billed_cap:,}. Shorten it or split it in two."
            )
        stored_tokens = await asyncio.to_thread(count_example, example, counting.encoding)
        try:
            record = await self._storage.examples.add(
                guild_id,
                dataset.id,
                example,
                contributor_id=contributor_id,
                source=source,
                status=ExampleStatus.PENDING,
                token_counts={counting.encoding: stored_tokens},
                billed_cap=counting.billed_cap,
            )
        except DuplicateError as exc:
            raise InvalidInput(
                f"The dataset already has this conversation (example #{exc.existing_id})."
            ) from None
        return Contribution(record, tokens)

    async def _check_pending_limit(self, dataset: Dataset, contributor_id: int) -> None:
        settings = await self._storage.guilds.get(dataset.guild_id)
        mine = await self._storage.examples.list_by_contributor(dataset.guild_id, contributor_id)
        pending = sum(
            1 for r in mine if r.dataset_id == dataset.id and r.status is ExampleStatus.PENDING
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
        mine = await self._storage.examples.list_by_contributor(dataset.guild_id, contributor_id)
        return [
            r for r in mine
            if r.dataset_id == dataset.id and r.id > after_id
            and (status is None or r.status is status)
        ][:limit]

    async def remove(self, guild_id: int, example_id: int, user_id: int, *, curator: bool) -> None:
        """Delete an example: its contributor may, and so may a curator."""
        record = await self.get(guild_id, example_id)
        if record.contributor_id != user_id and not curator:
            raise NotAllowed("You can remove only your own examples; a curator can remove any.")
        await self._storage.examples.delete(guild_id, example_id)

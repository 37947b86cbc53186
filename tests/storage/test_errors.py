"""The storage errors a member can cause are user errors, with messages for them."""

from __future__ import annotations

import pytest

from bot.dataset.errors import InvalidInput, UserError
from storage.errors import DuplicateError, MigrationError, NotFoundError, StorageError
from storage.examples import PreparedExample
from tests.storage.helpers import ALICE, GUILD_A, example


def test_not_found_and_duplicate_are_user_errors():
    for cls in (NotFoundError, DuplicateError):
        assert issubclass(cls, StorageError) and issubclass(cls, UserError)
    assert not issubclass(MigrationError, UserError)  # for the operator, not a member
    duplicate = DuplicateError("That name is taken.", 7)
    assert duplicate.message == "That name is taken." and duplicate.existing_id == 7


async def test_dataset_mistakes_are_invalid_input(store):
    with pytest.raises(InvalidInput, match="needs a name") as caught:
        await store.datasets.create(GUILD_A, "   ")
    assert isinstance(caught.value, ValueError)  # callers catching ValueError still do
    with pytest.raises(InvalidInput, match="`include`.*system prompt"):
        await store.datasets.create(GUILD_A, "d", policy="include")
    with pytest.raises(InvalidInput, match="`include`.*system prompt"):
        await store.datasets.create(GUILD_A, "d", policy="include", system_prompt="  ")
    with pytest.raises(InvalidInput, match="not a system prompt policy"):
        await store.datasets.create(GUILD_A, "d", policy="sometimes")
    dataset = await store.datasets.create(GUILD_A, "d")
    with pytest.raises(InvalidInput, match="needs a name"):
        await store.datasets.update(GUILD_A, dataset.id, name="")
    with pytest.raises(InvalidInput, match="not a system prompt policy"):
        await store.datasets.update(GUILD_A, dataset.id, policy="never")
    assert await store.datasets.list_all(GUILD_A) == [dataset]


async def test_duplicate_names_and_examples_say_what_to_do(store):
    first = await store.datasets.create(GUILD_A, "Pirates")
    with pytest.raises(UserError, match="already has a dataset named `pirates`") as caught:
        await store.datasets.create(GUILD_A, "pirates")
    assert isinstance(caught.value, DuplicateError) and caught.value.existing_id == first.id
    other = await store.datasets.create(GUILD_A, "Ninjas")
    with pytest.raises(DuplicateError, match="already has a dataset named `PIRATES`"):
        await store.datasets.update(GUILD_A, other.id, name="PIRATES")
    await store.datasets.create(GUILD_A, "a`b")
    with pytest.raises(DuplicateError, match="named `a'b`"):  # no markdown from the name
        await store.datasets.create(GUILD_A, "a`b")
    record = await store.examples.add(GUILD_A, first.id, example(1), contributor_id=ALICE)
    with pytest.raises(UserError, match=f"already has this conversation .example #{record.id}"):
        await store.examples.add(GUILD_A, first.id, example(1))


async def test_missing_rows_say_so_without_ids(store):
    with pytest.raises(UserError, match="That dataset does not exist in this server") as caught:
        await store.examples.add(GUILD_A, 12345, example(1))
    assert isinstance(caught.value, NotFoundError)
    assert "12345" not in str(caught.value)
    with pytest.raises(NotFoundError, match="does not exist"):
        await store.examples.stats(GUILD_A, 12345, "o200k_base")


async def test_votes_are_plus_or_minus_one(store):
    dataset = await store.datasets.create(GUILD_A, "d")
    record = await store.examples.add(GUILD_A, dataset.id, example(1))
    for value in (0, 2, -3):
        with pytest.raises(InvalidInput, match=r"\+1 .* or -1"):
            await store.votes.cast(GUILD_A, record.id, ALICE, value)
    assert await store.votes.by_user(GUILD_A, ALICE) == []


def test_text_that_is_not_unicode_is_invalid_input():
    broken = type(example(1))(messages=({"role": "user", "content": "bad \ud800"},
                                         {"role": "assistant", "content": "ok"}))
    with pytest.raises(InvalidInput, match="not valid Unicode"):
        PreparedExample.of(broken)

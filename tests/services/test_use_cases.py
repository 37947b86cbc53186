"""The services (datasets, contributions, curation, privacy, stats) on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from importlib import resources

import pytest

from bot.dataset.errors import InvalidInput, UserError
from bot.dataset.examples import ChatExample
from bot.dataset.pricing import PriceCatalogue
from bot.dataset.turns import conversation_from_text, conversation_to_text
from bot.services.contributions import ContributionService, NotAllowed
from bot.services.curation import CurationService
from bot.services.datasets import DatasetService
from bot.services.privacy import PrivacyService
from bot.services.stats import StatsService
from storage.errors import NotFoundError
from storage.records import ExampleStatus
from tests.storage.helpers import ALICE, BOB, GUILD_A, GUILD_B, example

CATALOGUE = PriceCatalogue.load()
CATALOGUE_PATH = resources.files("bot.dataset").joinpath("data/models.json")


@pytest.fixture
def datasets(store):
    return DatasetService(store, CATALOGUE)


@pytest.fixture
def contributions(store):
    return ContributionService(store, CATALOGUE)


async def test_create_defaults_the_policy_and_checks_what_was_asked(datasets):
    with_prompt = await datasets.create(GUILD_A, "  marv  ", system_prompt="Be Marv.")
    assert (with_prompt.name, with_prompt.policy.value) == ("marv", "include")
    plain = await datasets.create(GUILD_A, "plain", base_model="gpt-4o-mini")
    assert plain.policy.value == "as_written" and plain.base_model == "gpt-4o-mini-2024-07-18"
    for kwargs, words in [
        ({"policy": "include"}, "give a `system_prompt`"),
        ({"policy": "sometimes"}, "must be one of include, omit, as_written"),
        ({"base_model": "gpt-9"}, "Unknown base model `gpt-9`"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            await datasets.create(GUILD_A, "x", **kwargs)
    with pytest.raises(UserError, match="already has a dataset named"):
        await datasets.create(GUILD_A, "MARV")
    with pytest.raises(InvalidInput, match="at most 50"):
        await datasets.create(GUILD_A, "n" * 51)


async def test_resolve_means_the_named_or_the_only_dataset_and_never_another_guilds(datasets):
    with pytest.raises(NotFoundError, match="no dataset yet"):
        await datasets.resolve(GUILD_A, None)
    only = await datasets.create(GUILD_A, "only")
    assert (await datasets.resolve(GUILD_A, None)).id == only.id
    await datasets.create(GUILD_A, "second")
    with pytest.raises(InvalidInput, match="has 2 datasets"):
        await datasets.resolve(GUILD_A, None)
    assert (await datasets.resolve(GUILD_A, "ONLY")).id == only.id
    with pytest.raises(NotFoundError, match="no dataset named `only`"):
        await datasets.resolve(GUILD_B, "only")
    with pytest.raises(NotFoundError):
        await datasets.get(GUILD_B, only.id)
    with pytest.raises(NotFoundError):
        await datasets.delete(GUILD_B, only.id)
    assert await datasets.names(GUILD_A, "sec") == ["second"]


async def test_edit_changes_only_what_was_given_and_empty_clears(datasets):
    dataset = await datasets.create(GUILD_A, "d", system_prompt="P", base_model="gpt-4o")
    edited = await datasets.edit(GUILD_A, dataset.id, base_model="")
    assert (edited.system_prompt, edited.policy.value, edited.base_model) == ("P", "include", None)
    with pytest.raises(InvalidInput, match="give a `system_prompt`"):
        await datasets.edit(GUILD_A, dataset.id, system_prompt="")
    edited = await datasets.edit(GUILD_A, dataset.id, system_prompt="", policy="omit")
    assert (edited.system_prompt, edited.policy.value) == (None, "omit")


def test_the_form_text_becomes_a_conversation_and_back():
    typed = conversation_from_text(" Why? ", "Because.", "User: hi\nAssistant: hello\nthere\nUser: ok\nAssistant: fine")
    assert [m["role"] for m in typed.messages] == ["user", "assistant"] * 3
    assert typed.messages[1]["content"] == "hello\nthere"
    assert conversation_to_text(typed) == ("Why?", "Because.", "User: hi\nAssistant: hello\nthere\nUser: ok\nAssistant: fine")
    for args, words in [
        (("", "a"), "User message"),
        (("q", "  "), "Assistant reply"),
        (("q", "a", "hello"), "line 1: start each turn with `User:`"),
        (("q", "a", "User: a\nUser: b"), "line 2: expected a `Assistant:`"),
        (("q", "a", "User: a"), "must end with an `Assistant:` line"),
        (("q", "a", "User: a\nAssistant:"), "`Assistant:` turn is empty"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            conversation_from_text(*args)


async def test_a_contribution_is_checked_counted_and_stored_pending(store, datasets, contributions):
    dataset = await datasets.create(GUILD_A, "d", system_prompt="Be brief.", base_model="gpt-4o-mini")
    added = await contributions.add(dataset, ALICE, example(1))
    assert added.record.status is ExampleStatus.PENDING and added.record.contributor_id == ALICE
    assert added.tokens > 0 and await store.examples.token_counts(GUILD_A, added.record.id)
    with pytest.raises(InvalidInput, match=f"already has this conversation \\(example #{added.record.id}\\)"):
        await contributions.add(dataset, BOB, example(1))
    long = ChatExample.from_pairs([("q", "word " * 70_000)])
    with pytest.raises(InvalidInput, match="the model trains on at most 65,536"):
        await contributions.add(dataset, ALICE, long)
    await store.guilds.update(GUILD_A, max_pending_per_member=2)
    await contributions.add(dataset, ALICE, example(2))
    with pytest.raises(InvalidInput, match="already have 2 examples waiting"):
        await contributions.add(dataset, ALICE, example(3))


async def test_removing_is_for_the_contributor_or_a_curator(datasets, contributions):
    dataset = await datasets.create(GUILD_A, "d")
    added = await contributions.add(dataset, ALICE, example(1))
    with pytest.raises(NotAllowed, match="only your own"):
        await contributions.remove(GUILD_A, added.record.id, BOB, curator=False)
    with pytest.raises(NotFoundError):
        await contributions.remove(GUILD_B, added.record.id, ALICE, curator=True)
    await contributions.remove(GUILD_A, added.record.id, ALICE, curator=False)
    with pytest.raises(NotFoundError):
        await contributions.get(GUILD_A, added.record.id)


async def test_votes_reach_the_threshold_and_twenty_at_once_each_count_once(store, datasets, contributions):
    curation = CurationService(store)
    dataset = await datasets.create(GUILD_A, "d")
    added = await contributions.add(dataset, ALICE, example(1))
    with pytest.raises(NotAllowed, match="your own"):
        await curation.vote(GUILD_A, added.record.id, ALICE, 1)
    await store.guilds.update(GUILD_A, vote_threshold=15)
    voters = [1000 + n for n in range(20)]
    reviews = await asyncio.gather(
        *(curation.vote(GUILD_A, added.record.id, v, 1 if n < 18 else -1) for n, v in enumerate(voters)),
        return_exceptions=True,
    )
    late = [r for r in reviews if isinstance(r, Exception)]
    assert all(isinstance(r, InvalidInput) and "already approved" in str(r) for r in late)
    final = await curation.review(GUILD_A, added.record.id)
    assert final.tally.up + final.tally.down + len(late) == 20  # each vote counted once
    assert final.record.status is ExampleStatus.APPROVED
    assert sum(1 for r in reviews if not isinstance(r, Exception) and r.changed) == 1
    with pytest.raises(InvalidInput, match="already approved"):
        await curation.vote(GUILD_A, added.record.id, 5, 1)
    with pytest.raises(NotFoundError):
        await curation.vote(GUILD_B, added.record.id, 5, 1)


async def test_a_vote_can_be_changed_and_downvotes_reject(store, datasets, contributions):
    curation = CurationService(store)
    dataset = await datasets.create(GUILD_A, "d")
    added = await contributions.add(dataset, ALICE, example(1))
    await curation.vote(GUILD_A, added.record.id, BOB, 1)
    review = await curation.vote(GUILD_A, added.record.id, BOB, -1)
    assert (review.tally.up, review.tally.down, review.record.status) == (0, 1, ExampleStatus.PENDING)
    await curation.vote(GUILD_A, added.record.id, 7, -1)
    review = await curation.vote(GUILD_A, added.record.id, 8, -1)
    assert review.record.status is ExampleStatus.REJECTED and review.changed
    review = await curation.decide(GUILD_A, added.record.id, ExampleStatus.APPROVED)
    assert review.record.status is ExampleStatus.APPROVED and review.changed


async def test_opting_out_deletes_contributions_and_votes_and_blocks_new_ones(store, datasets, contributions):
    privacy = PrivacyService(store)
    curation = CurationService(store)
    dataset = await datasets.create(GUILD_A, "d")
    mine = await contributions.add(dataset, ALICE, example(1))
    theirs = await contributions.add(dataset, BOB, example(2))
    await curation.vote(GUILD_A, theirs.record.id, ALICE, 1)
    await privacy.opt_in(GUILD_A, ALICE)
    data = json.loads(await privacy.my_data(GUILD_A, ALICE))
    assert [e["id"] for e in data["examples"]] == [mine.record.id]
    assert data["votes"] == [{"example_id": theirs.record.id, "value": 1, "updated_at": data["votes"][0]["updated_at"]}]
    assert data["consent"]["opted_in"] is True
    result = await privacy.opt_out(GUILD_A, ALICE)
    assert (result.examples_deleted, result.votes_deleted) == (1, 1)
    data = json.loads(await privacy.my_data(GUILD_A, ALICE))
    assert data["examples"] == [] and data["votes"] == [] and data["consent"]["opted_in"] is False
    assert (await curation.review(GUILD_A, theirs.record.id)).tally.up == 0
    with pytest.raises(NotAllowed, match="/privacy optin"):
        await contributions.add(dataset, ALICE, example(3))
    await privacy.opt_in(GUILD_A, ALICE)
    await contributions.add(dataset, ALICE, example(3))


async def test_stats_give_tier_tokens_and_cost_from_the_catalogue_it_was_given(store, datasets, contributions, tmp_path):
    dataset = await datasets.create(GUILD_A, "d", base_model="gpt-4o-mini")
    for n in range(12):
        added = await contributions.add(dataset, 2000 + n, example(n))
        await store.examples.set_status(GUILD_A, added.record.id, ExampleStatus.APPROVED)
    report = await StatsService(store, CATALOGUE).stats(dataset)
    assert report.tier.tier.value == "minimum" and report.tier.needed_for_next == 38
    assert report.counts.approved.examples == 12 and report.epochs == 8 and report.epochs_auto
    assert report.chosen is not None and report.chosen.model.model == "gpt-4o-mini-2024-07-18"
    assert report.chosen.estimate.cost_usd == Decimal("3") / 1000 * report.chosen.billed_tokens / 1000 * 8
    assert all(not e.estimate.retired for e in report.comparison)
    own = tmp_path / "prices.json"
    entries = json.loads((CATALOGUE_PATH).read_text())
    for entry in entries["models"]:
        entry["training_per_1m"] = "1000.00"
    own.write_text(json.dumps(entries))
    pricey = await StatsService(store, PriceCatalogue.load(own)).stats(dataset, epochs=2)
    assert pricey.epochs == 2 and not pricey.epochs_auto
    assert pricey.chosen.estimate.cost_usd == Decimal(1) * pricey.chosen.billed_tokens / 1000 * 2
    with pytest.raises(InvalidInput, match="Unknown model"):
        await StatsService(store, CATALOGUE).stats(dataset, model="gpt-9")


async def test_domain_input_errors_are_user_errors(store, datasets):
    dataset = await datasets.create(GUILD_A, "d")
    with pytest.raises(UserError, match="from 1 to 50"):
        await StatsService(store, CATALOGUE).stats(dataset, epochs=51)
    from bot.dataset.policy import apply_policy

    with pytest.raises(UserError, match="needs the dataset to have a system prompt"):
        apply_policy(example(1), "include", None)

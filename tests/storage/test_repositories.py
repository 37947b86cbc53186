"""Repositories on a real SQLite file: unique constraints, upserts, typed records."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.dataset.errors import InvalidInput
from bot.dataset.policy import SystemPromptPolicy
from storage.errors import DuplicateError, NotFoundError
from storage.examples import PreparedExample
from storage.records import ExampleSource, ExampleStatus, JobStatus
from storage.store import Storage
from tests.storage.helpers import ALICE, BOB, GUILD_A, example


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
async def store(tmp_db_path, clock):
    storage = await Storage.open(tmp_db_path, clock=clock)
    yield storage
    await storage.close()


async def test_dataset_names_are_unique_per_guild_ignoring_case(store):
    first = await store.datasets.create(GUILD_A, "Pirates")
    with pytest.raises(DuplicateError) as caught:
        await store.datasets.create(GUILD_A, "pirates")
    assert caught.value.existing_id == first.id
    other_guild = await store.datasets.create(GUILD_A + 1, "Pirates")
    assert other_guild.id != first.id
    second = await store.datasets.create(GUILD_A, "Ninjas")
    with pytest.raises(DuplicateError):
        await store.datasets.update(GUILD_A, second.id, name="PIRATES")
    assert (await store.datasets.get(GUILD_A, second.id)).name == "Ninjas"
    assert [d.name for d in await store.datasets.list_all(GUILD_A)] == ["Ninjas", "Pirates"]


async def test_dataset_update_and_policy_checks(store):
    dataset = await store.datasets.create(GUILD_A, "d", base_model="gpt-4o-mini")
    assert dataset.policy is SystemPromptPolicy.AS_WRITTEN
    with pytest.raises(InvalidInput, match="system prompt"):
        await store.datasets.update(GUILD_A, dataset.id, policy="include")
    updated = await store.datasets.update(
        GUILD_A, dataset.id, policy="include", system_prompt="You are a pirate."
    )
    assert updated.policy is SystemPromptPolicy.INCLUDE
    assert updated.system_prompt == "You are a pirate."
    assert updated.base_model == "gpt-4o-mini"
    assert await store.datasets.get_by_name(GUILD_A, "D") == updated
    with pytest.raises(TypeError):
        await store.datasets.update(GUILD_A, dataset.id, guild_id=5)  # type: ignore[misc]
    with pytest.raises(TypeError):
        await store.datasets.update(GUILD_A, dataset.id, label="x")  # type: ignore[call-arg]


async def test_content_hash_is_unique_per_dataset(store):
    one = await store.datasets.create(GUILD_A, "one")
    two = await store.datasets.create(GUILD_A, "two")
    first = await store.examples.add(GUILD_A, one.id, example(1), contributor_id=ALICE)
    with pytest.raises(DuplicateError) as caught:
        await store.examples.add(GUILD_A, one.id, example(1), contributor_id=BOB)
    assert caught.value.existing_id == first.id
    # The same content in another dataset is fine.
    other = await store.examples.add(GUILD_A, two.id, example(1))
    assert other.dataset_id == two.id
    # Key order does not make a different example.
    reordered = type(example(1))(
        messages=tuple({"content": m["content"], "role": m["role"]} for m in example(1).messages)
    )
    with pytest.raises(DuplicateError):
        await store.examples.add(GUILD_A, one.id, reordered)
    assert (await store.examples.stats(GUILD_A, one.id, "o200k_base")).total.examples == 1


async def test_add_to_a_missing_dataset_raises_not_found(store):
    with pytest.raises(NotFoundError):
        await store.examples.add(GUILD_A, 12345, example(1))


async def test_example_record_round_trip_and_paging(store, clock):
    dataset = await store.datasets.create(GUILD_A, "d")
    ids = []
    for n in range(7):
        clock.advance(seconds=1)
        record = await store.examples.add(
            GUILD_A, dataset.id, example(n, system="sys"), contributor_id=ALICE,
            source=ExampleSource.CAPTURE,
        )
        ids.append(record.id)
    got = await store.examples.get(GUILD_A, ids[0])
    assert got.example == example(0, system="sys")
    assert got.content_hash == example(0, system="sys").content_hash()
    assert got.source is ExampleSource.CAPTURE and got.status is ExampleStatus.PENDING
    assert got.created_at == datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC)
    page1 = await store.examples.page(GUILD_A, dataset.id, limit=3)
    page2 = await store.examples.page(GUILD_A, dataset.id, after_id=page1[-1].id, limit=3)
    page3 = await store.examples.page(GUILD_A, dataset.id, after_id=page2[-1].id, limit=3)
    assert [r.id for r in page1 + page2 + page3] == ids
    await store.examples.set_status_many(GUILD_A, ids[:3], "approved")
    approved = [r.id async for r in store.examples.iterate(
        GUILD_A, dataset.id, status=ExampleStatus.APPROVED, batch_size=2
    )]
    assert approved == ids[:3]


async def test_status_changes_and_edits(store, clock):
    dataset = await store.datasets.create(GUILD_A, "d")
    record = await store.examples.add(GUILD_A, dataset.id, example(1), token_counts={"cl100k_base": 30})
    clock.advance(minutes=5)
    assert await store.examples.set_status(GUILD_A, record.id, "approved")
    assert not await store.examples.set_status(GUILD_A, record.id, "approved")  # no change
    updated = await store.examples.get(GUILD_A, record.id)
    assert updated.status is ExampleStatus.APPROVED
    assert updated.updated_at - updated.created_at == timedelta(minutes=5)

    edited = await store.examples.update_content(
        GUILD_A, record.id, example(2), token_counts={"o200k_base": 12}
    )
    assert edited.example == example(2) and edited.content_hash == example(2).content_hash()
    assert await store.examples.token_counts(GUILD_A, record.id) == {"o200k_base": 12}
    stats = await store.examples.stats(GUILD_A, dataset.id, "cl100k_base")
    assert stats.approved.examples == 1 and stats.approved.counted == 0
    await store.examples.add(GUILD_A, dataset.id, example(3))
    with pytest.raises(DuplicateError):
        await store.examples.update_content(GUILD_A, record.id, example(3))


async def test_an_example_cannot_move_between_datasets(store):
    one = await store.datasets.create(GUILD_A, "one")
    two = await store.datasets.create(GUILD_A, "two")
    record = await store.examples.add(GUILD_A, one.id, example(1))
    with pytest.raises(sqlite3.IntegrityError, match="cannot move"):
        await store.db.execute("UPDATE examples SET dataset_id = ? WHERE id = ?", (two.id, record.id))


async def test_one_vote_per_member_per_example_voting_again_updates(store, clock):
    dataset = await store.datasets.create(GUILD_A, "d")
    record = await store.examples.add(GUILD_A, dataset.id, example(1))
    first = await store.votes.cast(GUILD_A, record.id, ALICE, 1)
    clock.advance(hours=1)
    second = await store.votes.cast(GUILD_A, record.id, ALICE, -1)
    assert second.value == -1
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    await store.votes.cast(GUILD_A, record.id, BOB, 1)
    tally = await store.votes.tally(GUILD_A, record.id)
    assert (tally.up, tally.down, tally.score) == (1, 1, 0)
    assert await store.db.fetchval("SELECT count(*) FROM votes") == 2
    assert await store.votes.retract(GUILD_A, record.id, BOB)
    assert await store.votes.get(GUILD_A, record.id, BOB) is None
    with pytest.raises(InvalidInput, match=r"\+1 .* or -1"):
        await store.votes.cast(GUILD_A, record.id, BOB, 2)
    # Deleting the example removes its votes.
    await store.examples.delete(GUILD_A, record.id)
    assert await store.votes.by_user(GUILD_A, ALICE) == []


async def test_consent_opt_in_out_and_forget(store, clock):
    assert await store.consents.get(GUILD_A, ALICE) is None
    assert not await store.consents.has_consented(GUILD_A, ALICE)
    granted = await store.consents.grant(GUILD_A, ALICE)
    assert granted.granted and granted.granted_at == clock.now and granted.revoked_at is None
    clock.advance(days=1)
    revoked = await store.consents.revoke(GUILD_A, ALICE)
    assert not revoked.granted and revoked.revoked_at == clock.now
    assert revoked.granted_at == granted.granted_at
    assert not await store.consents.has_consented(GUILD_A, ALICE)
    await store.consents.grant(GUILD_A, BOB)
    assert await store.consents.consented_users(GUILD_A, [ALICE, BOB, 5]) == {BOB}
    assert await store.consents.delete(GUILD_A, ALICE)
    assert await store.consents.get(GUILD_A, ALICE) is None


async def test_job_lifecycle(store, clock):
    dataset = await store.datasets.create(GUILD_A, "d")
    job = await store.jobs.create(
        GUILD_A, dataset_id=dataset.id, provider="openai", model="gpt-4o-mini-2024-07-18",
        hyperparameters={"n_epochs": 3}, estimated_cost_usd=Decimal("1.234567"),
        estimated_tokens=411_522, requested_by=ALICE,
    )
    assert job.status is JobStatus.PENDING and job.finished_at is None
    assert job.estimated_cost_usd == Decimal("1.234567")
    clock.advance(minutes=1)
    job = await store.jobs.update(
        GUILD_A, job.id, status="queued", provider_job_id="ftjob-abc", provider_file_id="file-1"
    )
    assert [j.id for j in await store.jobs.unfinished(GUILD_A)] == [job.id]
    assert (await store.jobs.get_by_provider_id(GUILD_A, "openai", "ftjob-abc")).id == job.id
    clock.advance(minutes=30)
    job = await store.jobs.update(
        GUILD_A, job.id, status=JobStatus.SUCCEEDED, fine_tuned_model="ft:gpt-4o-mini:x",
        trained_tokens=411_000, event_cursor="ftevent-9",
    )
    assert job.finished_at == clock.now and job.status.is_finished
    assert job.hyperparameters == {"n_epochs": 3}
    assert await store.jobs.unfinished(GUILD_A) == []
    assert [j.id for j in await store.jobs.recent(GUILD_A)] == [job.id]
    with pytest.raises(TypeError):
        await store.jobs.update(GUILD_A, job.id, guild_id=1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        await store.jobs.update(GUILD_A, job.id, finished_at=None)  # type: ignore[call-arg]
    # A dataset deletion keeps the job (billing history) and unlinks it.
    await store.datasets.delete(GUILD_A, dataset.id)
    assert (await store.jobs.get(GUILD_A, job.id)).dataset_id is None


async def test_active_model_channels_spend_and_settings(store, clock):
    assert await store.active_models.get(GUILD_A) is None
    job = await store.jobs.create(GUILD_A, dataset_id=None, provider="local", model="smollm2")
    active = await store.active_models.set(GUILD_A, "ft:one", system_prompt="Arr", job_id=job.id)
    assert (active.model, active.job_id) == ("ft:one", job.id)
    await store.active_models.set(GUILD_A, "ft:two")
    assert (await store.active_models.get(GUILD_A)).model == "ft:two"
    assert await store.active_models.clear(GUILD_A)

    assert await store.channels.add(GUILD_A, 10, added_by=ALICE)
    assert not await store.channels.add(GUILD_A, 10)
    await store.channels.add(GUILD_A, 5)
    assert [c.channel_id for c in await store.channels.list_all(GUILD_A)] == [5, 10]
    assert await store.channels.contains(GUILD_A, 10)
    assert await store.channels.remove(GUILD_A, 10)
    assert not await store.channels.contains(GUILD_A, 10)

    start = clock.now
    await store.spend.record(GUILD_A, Decimal("0.10"), kind="estimate", job_id=job.id)
    clock.advance(days=40)
    await store.spend.record(GUILD_A, "0.20", kind="charge")
    await store.spend.record(GUILD_A, Decimal("-0.05"), kind="refund", note="cancelled")
    assert await store.spend.total(GUILD_A) == Decimal("0.25")
    assert await store.spend.total(GUILD_A, since=start + timedelta(days=1)) == Decimal("0.15")
    assert await store.spend.total(GUILD_A, kind="charge") == Decimal("0.2")
    assert [e.kind for e in await store.spend.entries(GUILD_A)] == ["refund", "charge", "estimate"]

    defaults = await store.guilds.get(GUILD_A)
    assert defaults.chat_enabled is False and defaults.created_at is None
    settings = await store.guilds.update(
        GUILD_A, chat_enabled=True, default_base_model="gpt-4o-mini", monthly_budget_usd="25"
    )
    assert settings.chat_enabled and settings.monthly_budget_usd == Decimal("25")
    settings = await store.guilds.update(GUILD_A, admin_role_id=77)
    assert settings.chat_enabled and settings.admin_role_id == 77
    assert await store.guilds.get(GUILD_A) == settings
    with pytest.raises(TypeError):
        await store.guilds.update(GUILD_A, guild_id=3)


async def test_add_prepared_inserts_a_batch_and_marks_duplicates(store):
    dataset = await store.datasets.create(GUILD_A, "d")
    stored = await store.examples.add(GUILD_A, dataset.id, example(1))
    batch = [
        PreparedExample.of(example(2), {"o200k_base": 30}, billed_cap=20),
        PreparedExample.of(example(1)),   # already stored
        PreparedExample.of(example(3)),
        PreparedExample.of(example(2)),   # repeats the first item
    ]
    ids = await store.examples.add_prepared(
        GUILD_A, dataset.id, batch, contributor_id=BOB, status="approved"
    )
    assert ids[1] is None and ids[3] is None and ids[0] and ids[2]
    assert len({stored.id, ids[0], ids[2]}) == 3
    second = await store.examples.get(GUILD_A, ids[0])
    assert (second.example, second.contributor_id, second.status) == (
        example(2), BOB, ExampleStatus.APPROVED
    )
    stats = await store.examples.stats(GUILD_A, dataset.id, "o200k_base")
    assert (stats.approved.examples, stats.approved.tokens, stats.approved.billed_tokens) == (
        2, 30, 20
    )

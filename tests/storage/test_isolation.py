"""Guild isolation at the repository level: guild B cannot see or touch guild A's rows,
even when it passes the right ids."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from bot.services.counting import Counting
from bot.services.imports import export_jsonl, import_jsonl
from storage.errors import NotFoundError
from storage.records import ExampleStatus
from storage.store import Storage
from tests.storage.helpers import ALICE, BOB, GUILD_A, GUILD_B, example

O200K = Counting("o200k_base")


@pytest.fixture
async def guild_a(store):
    """Guild A's rows: a dataset, two examples with counts and votes, a job, a channel."""
    dataset = await store.datasets.create(GUILD_A, "secret", system_prompt="A's prompt")
    first = await store.examples.add(
        GUILD_A, dataset.id, example(1), contributor_id=ALICE, token_counts={"o200k_base": 20}
    )
    second = await store.examples.add(GUILD_A, dataset.id, example(2), contributor_id=ALICE)
    await store.examples.set_status(GUILD_A, first.id, "approved")
    await store.votes.cast(GUILD_A, first.id, ALICE, 1)
    job = await store.jobs.create(
        GUILD_A, dataset_id=dataset.id, provider="openai", model="gpt-4o-mini"
    )
    await store.active_models.set(GUILD_A, "ft:a", job_id=job.id)
    await store.consents.grant(GUILD_A, ALICE)
    await store.spend.record(GUILD_A, "3", kind="charge", job_id=job.id)
    return {"dataset": dataset, "first": first, "second": second, "job": job}


_EVERY_TABLE = (
    "SELECT * FROM datasets ORDER BY 1, 2",
    "SELECT * FROM examples ORDER BY 1, 2",
    "SELECT * FROM example_tokens ORDER BY 1, 2",
    "SELECT * FROM votes ORDER BY 1, 2",
    "SELECT * FROM fine_tune_jobs ORDER BY 1, 2",
    "SELECT * FROM active_models ORDER BY 1, 2",
    "SELECT * FROM consents ORDER BY 1, 2",
    "SELECT * FROM spend_ledger ORDER BY 1, 2",
    "SELECT * FROM dataset_status_counts ORDER BY 1, 2",
    "SELECT * FROM dataset_token_totals ORDER BY 1, 2",
)


async def _snapshot(store: Storage) -> list[list[tuple]]:
    return [[tuple(r) for r in await store.db.fetchall(query)] for query in _EVERY_TABLE]


async def test_guild_b_cannot_read_guild_a(store, guild_a):
    dataset, first, job = guild_a["dataset"], guild_a["first"], guild_a["job"]
    assert await store.datasets.get(GUILD_B, dataset.id) is None
    assert await store.datasets.get_by_name(GUILD_B, "secret") is None
    assert await store.datasets.list_all(GUILD_B) == []
    assert await store.examples.get(GUILD_B, first.id) is None
    assert await store.examples.page(GUILD_B, dataset.id) == []
    assert [r async for r in store.examples.iterate(GUILD_B, dataset.id)] == []
    assert await store.examples.find_by_hash(GUILD_B, dataset.id, first.content_hash) is None
    assert await store.examples.existing_hashes(GUILD_B, dataset.id, [first.content_hash]) == {}
    assert await store.examples.uncounted(GUILD_B, dataset.id, "o200k_base") == []
    assert await store.examples.token_counts(GUILD_B, first.id) == {}
    assert await store.examples.list_by_contributor(GUILD_B, ALICE) == []
    with pytest.raises(NotFoundError):
        await store.examples.stats(GUILD_B, dataset.id, "o200k_base")
    with pytest.raises(NotFoundError):
        await store.examples.stats_from_rows(GUILD_B, dataset.id, "o200k_base")
    assert await store.votes.get(GUILD_A, first.id, ALICE) is not None
    assert await store.votes.get(GUILD_B, first.id, ALICE) is None
    assert (await store.votes.tally(GUILD_B, first.id)).up == 0
    assert await store.votes.by_user(GUILD_B, ALICE) == []
    assert await store.jobs.get(GUILD_B, job.id) is None
    assert await store.jobs.recent(GUILD_B) == []
    assert await store.jobs.unfinished(GUILD_B) == []
    assert await store.active_models.get(GUILD_B) is None
    assert await store.consents.get(GUILD_B, ALICE) is None
    assert await store.spend.total(GUILD_B) == Decimal(0)
    data = await store.privacy.user_data(GUILD_B, ALICE)
    assert data.examples == () and data.votes == () and data.consent is None
    with pytest.raises(NotFoundError):
        await export_jsonl(store.db, GUILD_B, dataset.id, io.BytesIO())


async def test_guild_b_cannot_change_or_delete_guild_a(store, guild_a):
    dataset, first, second, job = (guild_a[k] for k in ("dataset", "first", "second", "job"))
    before = await _snapshot(store)

    assert await store.datasets.update(GUILD_B, dataset.id, name="stolen") is None
    assert not await store.datasets.delete(GUILD_B, dataset.id)
    with pytest.raises(NotFoundError):
        await store.examples.add(GUILD_B, dataset.id, example(3))
    with pytest.raises(NotFoundError):
        await store.examples.add_prepared(GUILD_B, dataset.id, [])
    with pytest.raises(NotFoundError):
        await import_jsonl(store.db, GUILD_B, dataset.id, counting=O200K, source=io.BytesIO(example(4).to_json().encode()))
    assert not await store.examples.set_status(GUILD_B, second.id, ExampleStatus.APPROVED)
    assert await store.examples.set_status_many(GUILD_B, [first.id, second.id], "rejected") == 0
    assert await store.examples.update_content(GUILD_B, first.id, example(9)) is None
    assert not await store.examples.delete(GUILD_B, first.id)
    assert await store.examples.store_token_counts(GUILD_B, "o200k_base", [(second.id, 99)]) == 0
    assert await store.examples.store_token_counts(GUILD_B, "o200k_base", [(first.id, 99)]) == 0
    with pytest.raises(NotFoundError):
        await store.examples.rebuild_stats(GUILD_B, dataset.id)
    assert await store.votes.cast(GUILD_B, first.id, BOB, -1) is None
    assert not await store.votes.retract(GUILD_B, first.id, ALICE)
    assert await store.jobs.update(GUILD_B, job.id, status="cancelled") is None
    assert not await store.jobs.delete(GUILD_B, job.id)
    assert await store.jobs.create(GUILD_B, dataset_id=dataset.id, provider="x", model="y") is None
    assert await store.active_models.set(GUILD_B, "ft:b", job_id=job.id) is None
    assert await store.spend.record(GUILD_B, "1", kind="charge", job_id=job.id) is None
    assert not await store.consents.delete(GUILD_B, ALICE)
    deletion = await store.privacy.delete_user_data(GUILD_B, ALICE)
    assert (deletion.examples, deletion.votes, deletion.consents) == (0, 0, 0)

    assert await _snapshot(store) == before


async def test_same_names_in_two_guilds_stay_apart(store, guild_a):
    mine = await store.datasets.create(GUILD_B, "secret")
    await store.examples.add(GUILD_B, mine.id, example(1))  # same content as A's, other guild
    stats_b = await store.examples.stats(GUILD_B, mine.id, "o200k_base")
    stats_a = await store.examples.stats(GUILD_A, guild_a["dataset"].id, "o200k_base")
    assert stats_b.total.examples == 1 and stats_a.total.examples == 2
    assert (await store.datasets.get_by_name(GUILD_B, "secret")).id == mine.id


async def test_unfinished_everywhere_is_the_one_cross_guild_read(store):
    """The job follower's start-up read: every guild's unfinished jobs, by id, and nothing
    finished."""
    made = []
    for guild, status in [
        (GUILD_A, "pending"),
        (GUILD_B, "running"),
        (GUILD_A, "succeeded"),
        (GUILD_B, "queued"),
        (GUILD_B, "failed"),
        (GUILD_A, "validating_files"),
        (GUILD_A, "cancelled"),
    ]:
        job = await store.jobs.create(guild, dataset_id=None, provider="openai", model="m")
        made.append(await store.jobs.update(guild, job.id, status=status))
    unfinished = [j for j in made if not j.status.is_finished]

    everywhere = await store.jobs.unfinished_everywhere()
    assert everywhere == unfinished
    assert [j.id for j in everywhere] == sorted(j.id for j in everywhere)
    assert {j.guild_id for j in everywhere} == {GUILD_A, GUILD_B}
    # The guild-scoped read still sees only its own.
    assert await store.jobs.unfinished(GUILD_B) == [j for j in unfinished if j.guild_id == GUILD_B]
    # Finishing a job takes it out.
    await store.jobs.update(GUILD_B, unfinished[1].id, status="cancelled")
    assert [j.id for j in await store.jobs.unfinished_everywhere()] == [
        unfinished[0].id, unfinished[2].id, unfinished[3].id
    ]


async def test_unfinished_everywhere_is_empty_without_jobs(store):
    assert await store.jobs.unfinished_everywhere() == []

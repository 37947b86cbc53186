"""The validation split of each fine-tune: its example ids, scoped to the guild and the
job's dataset, gone with the examples (an opt-out) and with the job."""

from __future__ import annotations

from storage.store import Storage
from tests.storage.helpers import ALICE, BOB, GUILD_A, GUILD_B, example


async def test_a_split_keeps_the_jobs_own_examples_in_id_order(tmp_db_path):
    async with await Storage.open(tmp_db_path) as store:
        dataset = await store.datasets.create(GUILD_A, "d")
        other = await store.datasets.create(GUILD_A, "other")
        mine = [
            (await store.examples.add(GUILD_A, dataset.id, example(n), status="approved")).id
            for n in range(4)
        ]
        elsewhere = await store.examples.add(GUILD_A, other.id, example(9))
        job = await store.jobs.create(GUILD_A, dataset_id=dataset.id, provider="p", model="m")
        assert job is not None

        kept = await store.job_splits.record(
            GUILD_A, job.id, [mine[3], mine[1], elsewhere.id, 10_000, mine[1]]
        )
        assert kept == 2  # another dataset's example, a missing id and a repeat are skipped
        assert await store.job_splits.example_ids(GUILD_A, job.id) == [mine[1], mine[3]]
        assert await store.job_splits.example_ids(GUILD_A, job.id, limit=1) == [mine[1]]
        assert await store.job_splits.example_ids(
            GUILD_A, job.id, after_id=mine[1], limit=5
        ) == [mine[3]]
        assert await store.job_splits.record(GUILD_A, job.id, []) == 0


async def test_another_guild_can_neither_record_nor_read_a_split(tmp_db_path):
    async with await Storage.open(tmp_db_path) as store:
        dataset = await store.datasets.create(GUILD_A, "d")
        theirs = await store.datasets.create(GUILD_B, "d")
        record = await store.examples.add(GUILD_A, dataset.id, example(1))
        their_example = await store.examples.add(GUILD_B, theirs.id, example(1))
        job = await store.jobs.create(GUILD_A, dataset_id=dataset.id, provider="p", model="m")
        assert job is not None

        assert await store.job_splits.record(GUILD_B, job.id, [their_example.id]) == 0
        assert await store.job_splits.record(GUILD_A, job.id, [their_example.id]) == 0
        assert await store.job_splits.record(GUILD_A, job.id, [record.id]) == 1
        assert await store.job_splits.example_ids(GUILD_B, job.id) == []
        assert await store.job_splits.example_ids(GUILD_A, job.id) == [record.id]


async def test_an_opt_out_removes_the_members_examples_from_every_split(tmp_db_path):
    async with await Storage.open(tmp_db_path) as store:
        dataset = await store.datasets.create(GUILD_A, "d")
        alices = await store.examples.add(
            GUILD_A, dataset.id, example(1), contributor_id=ALICE, status="approved"
        )
        bobs = await store.examples.add(
            GUILD_A, dataset.id, example(2), contributor_id=BOB, status="approved"
        )
        rejected = await store.examples.add(
            GUILD_A, dataset.id, example(3), contributor_id=BOB, status="rejected"
        )
        job = await store.jobs.create(GUILD_A, dataset_id=dataset.id, provider="p", model="m")
        assert job is not None
        await store.job_splits.record(GUILD_A, job.id, [alices.id, bobs.id, rejected.id])
        assert await store.job_splits.example_ids(GUILD_A, job.id, status="approved") == [
            alices.id, bobs.id
        ]

        await store.privacy.delete_user_data(GUILD_A, ALICE)
        assert await store.job_splits.example_ids(GUILD_A, job.id) == [bobs.id, rejected.id]
        left = await store.db.fetchall(
            "SELECT example_id FROM job_validation_examples WHERE guild_id = ?", (GUILD_A,)
        )
        assert sorted(r["example_id"] for r in left) == [bobs.id, rejected.id]  # no dangling row


async def test_a_dropped_dataset_leaves_no_split_behind(tmp_db_path):
    async with await Storage.open(tmp_db_path) as store:
        dataset = await store.datasets.create(GUILD_A, "d")
        record = await store.examples.add(GUILD_A, dataset.id, example(1))
        job = await store.jobs.create(GUILD_A, dataset_id=dataset.id, provider="p", model="m")
        assert job is not None
        await store.job_splits.record(GUILD_A, job.id, [record.id])
        assert await store.datasets.delete(GUILD_A, dataset.id)
        assert await store.db.fetchval("SELECT count(*) FROM job_validation_examples") == 0

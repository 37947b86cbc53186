"""FineTuneService's pure parts and storage guards: the deterministic validation split,
refusals listing every reason, one unfinished job per dataset."""

from __future__ import annotations

import pytest

from bot.services.finetune import StartRefused, month_start, split_lines
from storage.jobs import UnfinishedJobExists
from storage.records import JobStatus
from storage.store import Storage


def test_the_validation_split_is_deterministic_and_sized():
    lines = [f'{{"n": {n}}}\n'.encode() for n in range(20)]
    training, validation = split_lines(lines, 0.1)
    assert len(validation) == 2 and len(training) == 18
    assert set(split_lines(list(reversed(lines)), 0.1)[1]) == set(validation)  # by content
    assert set(training) | set(validation) == set(lines)
    assert split_lines(lines, 0.0) == (lines, [])


def test_a_refusal_lists_every_reason():
    refused = StartRefused(["one", "two"])
    assert str(refused) == "I cannot start this fine-tune:\n- one\n- two"


def test_month_start_is_the_first_of_the_month_utc():
    start = month_start()
    assert (start.day, start.hour, start.minute) == (1, 0, 0)


async def test_a_dataset_has_at_most_one_unfinished_job(tmp_path):
    async with await Storage.open(tmp_path / "db.sqlite3") as storage:
        dataset = await storage.datasets.create(1, "qa")
        first = await storage.jobs.create(1, dataset_id=dataset.id, provider="openai", model="m")
        assert first is not None
        with pytest.raises(UnfinishedJobExists) as caught:
            await storage.jobs.create(1, dataset_id=dataset.id, provider="openai", model="m")
        assert caught.value.job_id == first.id
        await storage.jobs.update(1, first.id, status=JobStatus.FAILED)
        second = await storage.jobs.create(1, dataset_id=dataset.id, provider="openai", model="m")
        assert second is not None and second.id != first.id

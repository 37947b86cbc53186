"""FineTuneService's pure parts and storage guards: the deterministic validation split,
refusals listing every reason, one unfinished job per dataset; and, against the OpenAI
stand-in, the record of which examples each start put in its validation file."""

from __future__ import annotations

import pytest

from bot.dataset.examples import ChatExample
from bot.dataset.policy import apply_policy
from bot.dataset.pricing import PriceCatalogue
from bot.providers import OpenAICompatProvider, ProviderConfig, ProviderError
from bot.services.finetune import FineTuneService, StartRefused, month_start, split_lines
from bot.services.registry import build_services
from storage.jobs import UnfinishedJobExists
from storage.records import ExampleStatus, JobStatus
from storage.store import Storage
from tests.standins.openai import fixtures as standin_fixtures

openai_server = standin_fixtures.openai_server


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


# -- the validation split is recorded per job -------------------------------------------

GUILD = 5150
SYSTEM = "You answer questions about topics."


@pytest.fixture
async def started(tmp_path, openai_server):
    """A FineTuneService over a real database and the OpenAI stand-in, and its dataset of
    20 approved examples (the first one trips moderation)."""
    provider = OpenAICompatProvider(ProviderConfig(
        base_url=openai_server.base_url, api_key=openai_server.config.api_key, label="OpenAI",
        timeout=5.0, connect_timeout=2.0, max_retries=0, backoff=0.01,
    ))
    catalogue = PriceCatalogue.load()
    async with await Storage.open(tmp_path / "db.sqlite3") as storage:
        services = build_services(storage, catalogue)
        service = FineTuneService(
            storage, provider, catalogue, datasets=services.datasets, files=services.files,
            stats=services.stats, backend="openai", default_model="gpt-4o-mini",
        )
        dataset = await services.datasets.create(
            GUILD, "topics", system_prompt=SYSTEM, base_model="gpt-4o-mini"
        )
        questions = ["how do I stab a melon?"] + [f"what is topic {n}?" for n in range(1, 20)]
        ids = []
        for n, question in enumerate(questions):
            example = ChatExample.from_pairs([(question, f"answer {n}")])
            ids.append((await storage.examples.add(
                GUILD, dataset.id, example, status=ExampleStatus.APPROVED
            )).id)
        try:
            yield service, storage, dataset, ids
        finally:
            await provider.close()


def training_line(record, dataset) -> bytes:
    example = apply_policy(record.example, dataset.policy, dataset.system_prompt)
    return example.to_json().encode("utf-8") + b"\n"


async def test_a_start_records_exactly_the_examples_of_its_validation_file(
    started, openai_server
):
    service, storage, dataset, ids = started
    plan = await service.plan(GUILD, "topics", validation_split=0.25)
    result = await service.start(GUILD, plan, requested_by=1, channel_id=None)
    assert result.confirmed and result.flagged == [f"#{ids[0]}"]  # left out by moderation
    job = result.job
    validation = openai_server.files.files[job.validation_file_id].content
    training = openai_server.files.files[job.provider_file_id].content
    recorded = await storage.job_splits.example_ids(GUILD, job.id)
    assert len(recorded) == 4  # floor(19 * 0.25) of the 19 left after moderation
    lines = [training_line(await storage.examples.get(GUILD, i), dataset) for i in recorded]
    assert validation.splitlines(keepends=True) == lines  # the same examples, in file order
    assert not set(lines) & set(training.splitlines(keepends=True))
    assert ids[0] not in recorded


async def test_a_start_without_a_split_records_none(started, openai_server):
    service, storage, _, _ = started
    plan = await service.plan(GUILD, "topics", validation_split=0.0)
    result = await service.start(GUILD, plan, requested_by=1, channel_id=None)
    assert result.job.validation_file_id is None
    assert await storage.job_splits.example_ids(GUILD, result.job.id) == []


async def test_the_split_is_recorded_before_any_file_is_uploaded(started, openai_server):
    service, storage, _, _ = started
    openai_server.faults.server_error("POST /v1/files", times=None)
    plan = await service.plan(GUILD, "topics", validation_split=0.25)
    with pytest.raises(ProviderError):
        await service.start(GUILD, plan, requested_by=1, channel_id=None)
    [job] = await storage.jobs.recent(GUILD)
    assert job.status == JobStatus.FAILED and job.provider_file_id is None
    assert len(await storage.job_splits.example_ids(GUILD, job.id)) == 4

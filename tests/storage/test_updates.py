"""Typed updates: a field left out keeps its value, ``None`` clears it, and mypy checks the
names and types callers pass."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.dataset.errors import InvalidInput
from bot.dataset.policy import SystemPromptPolicy
from storage.records import JobStatus
from storage.store import Storage
from storage.unset import UNSET, Unset, value_or
from tests.storage.helpers import ALICE, GUILD_A

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_db_path, clock):
    storage = await Storage.open(tmp_db_path, clock=clock)
    yield storage
    await storage.close()


def test_unset_is_its_own_value():
    assert UNSET is Unset.UNSET and repr(UNSET) == "UNSET"
    assert value_or(UNSET, "kept") == "kept"
    assert value_or(None, "kept") is None
    assert value_or("new", "kept") == "new"
    assert value_or(0, 5) == 0  # a falsy value is still a value


async def test_dataset_update_keeps_what_is_left_out(store):
    dataset = await store.datasets.create(
        GUILD_A, "pirates", system_prompt="You are a pirate.", policy="include",
        base_model="gpt-4o-mini",
    )
    renamed = await store.datasets.update(GUILD_A, dataset.id, name="Pirates II")
    assert renamed is not None
    assert (renamed.name, renamed.system_prompt, renamed.policy, renamed.base_model) == (
        "Pirates II", "You are a pirate.", SystemPromptPolicy.INCLUDE, "gpt-4o-mini"
    )
    assert await store.datasets.update(GUILD_A, dataset.id) == renamed  # nothing given
    explicit_unset = await store.datasets.update(
        GUILD_A, dataset.id, system_prompt=UNSET, base_model=UNSET
    )
    assert explicit_unset == renamed


async def test_dataset_update_none_clears_a_field(store):
    dataset = await store.datasets.create(
        GUILD_A, "d", system_prompt="Be brief.", base_model="gpt-4o-mini"
    )
    cleared = await store.datasets.update(GUILD_A, dataset.id, base_model=None)
    assert cleared is not None
    assert cleared.base_model is None and cleared.system_prompt == "Be brief."
    cleared = await store.datasets.update(GUILD_A, dataset.id, system_prompt=None)
    assert cleared is not None and cleared.system_prompt is None
    assert await store.datasets.get(GUILD_A, dataset.id) == cleared


async def test_dataset_update_cannot_clear_the_prompt_the_policy_needs(store):
    dataset = await store.datasets.create(
        GUILD_A, "d", system_prompt="Be brief.", policy=SystemPromptPolicy.INCLUDE
    )
    with pytest.raises(InvalidInput, match="system prompt"):
        await store.datasets.update(GUILD_A, dataset.id, system_prompt=None)
    assert await store.datasets.get(GUILD_A, dataset.id) == dataset
    # Both at once is fine: the policy no longer needs it.
    changed = await store.datasets.update(
        GUILD_A, dataset.id, system_prompt=None, policy=SystemPromptPolicy.OMIT
    )
    assert changed is not None
    assert changed.system_prompt is None and changed.policy is SystemPromptPolicy.OMIT


async def test_job_update_keeps_clears_and_tracks_finished_at(store, clock):
    job = await store.jobs.create(
        GUILD_A, dataset_id=None, provider="openai", model="gpt-4o-mini",
        hyperparameters={"n_epochs": 3}, estimated_cost_usd=Decimal("2.50"),
        estimated_tokens=1000, requested_by=ALICE,
    )
    assert job is not None
    clock.now += timedelta(minutes=1)
    failed = await store.jobs.update(
        GUILD_A, job.id, status=JobStatus.FAILED, error="quota exceeded",
        provider_job_id="ftjob-1", event_cursor="ev-1",
    )
    assert failed is not None
    assert failed.finished_at == clock.now and failed.updated_at == clock.now
    assert failed.estimated_cost_usd == Decimal("2.50") and failed.hyperparameters == {
        "n_epochs": 3
    }

    clock.now += timedelta(minutes=1)
    retried = await store.jobs.update(GUILD_A, job.id, status="queued", error=None)
    assert retried is not None
    assert retried.error is None and retried.finished_at is None
    assert (retried.provider_job_id, retried.event_cursor) == ("ftjob-1", "ev-1")

    cleared = await store.jobs.update(
        GUILD_A, job.id, estimated_cost_usd=None, estimated_tokens=None,
        hyperparameters={"n_epochs": 1}, provider_job_id=None,
    )
    assert cleared is not None
    assert cleared.estimated_cost_usd is None and cleared.estimated_tokens is None
    assert cleared.hyperparameters == {"n_epochs": 1} and cleared.provider_job_id is None
    assert (cleared.status, cleared.event_cursor) == (JobStatus.QUEUED, "ev-1")

    clock.now += timedelta(minutes=1)
    done = await store.jobs.update(GUILD_A, job.id, status="succeeded")
    first_finish = clock.now
    clock.now += timedelta(minutes=1)
    again = await store.jobs.update(GUILD_A, job.id, trained_tokens=900)
    assert done is not None and again is not None
    assert again.finished_at == first_finish == done.finished_at
    assert again.trained_tokens == 900 and again.updated_at == clock.now


_CALLS = '''
from decimal import Decimal

from storage.store import Storage
from storage.unset import UNSET


async def calls(s: Storage) -> None:
    await s.datasets.update(1, 2, system_prompt=None, base_model=UNSET, policy="omit")
    await s.datasets.update(1, 2, name="new name")
    await s.jobs.update(1, 2, status="queued", error=None, estimated_cost_usd=Decimal(1))
    await s.datasets.update(1, 2, label="x")
    await s.datasets.update(1, 2, name=None)
    await s.jobs.update(1, 2, trained_tokens="many")
    await s.jobs.update(1, 2, finished_at=None)
'''


def test_mypy_checks_the_update_keywords():
    """The good calls pass; a misspelt field, a ``None`` for a required column and a wrong
    type are all reported (one error per bad line)."""
    api = pytest.importorskip("mypy.api")
    stdout, stderr, status = api.run([
        "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(ROOT / ".mypy_cache"),
        "--no-error-summary",
        "--hide-error-context",
        "-c", textwrap.dedent(_CALLS),
    ])
    assert status == 1, stdout + stderr
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    bad_lines = {int(line.split(":")[1]) for line in errors}
    source = _CALLS.splitlines()
    first_bad = next(i for i, line in enumerate(source, 1) if "label=" in line)
    assert bad_lines == set(range(first_bad, first_bad + 4)), stdout
    assert 'Unexpected keyword argument "label"' in stdout
    assert 'Unexpected keyword argument "finished_at"' in stdout

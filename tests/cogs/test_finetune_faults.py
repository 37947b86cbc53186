"""Faults while ``/finetune start`` runs after Confirm, and members forcing ``/finetune``.

Each backend step of a start (upload ``POST /v1/files``, moderation ``POST /v1/moderations``,
job creation ``POST /v1/fine_tuning/jobs`` and the job-list reconciliation
``GET /v1/fine_tuning/jobs``) meets a 429 storm, 5xx, a timeout and a dropped connection
from the OpenAI stand-in. Every start ends in a started job or a clear ephemeral message,
never a crash, and never two jobs at the backend.

Sizes follow bot/providers: 2 retries per call (3 attempts), 429s wait the backend's
``retry-after`` (20 ms here), 5xx back off 0.5 s then 1 s, a job creation with no answer is
checked in the job list after 2 s (three rounds). Faults that fire at most twice are covered
by the retries; ``times=None`` (a storm) outlasts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from storage.records import FineTuneJob, JobStatus
from tests.cogs import test_finetune
from tests.cogs.test_finetune import seed, start_and_confirm
from tests.standins.discord import ActionNotPermitted
from tests.standins.openai import fixtures as standin_fixtures
from tests.standins.openai.faults import Fault

pytest_plugins = ("tests.standins.discord.fixtures",)
openai_server = standin_fixtures.openai_server
world = test_finetune.world  # the provider's read timeout: an indirect param

LABEL = "the model server at 127.0.0.1"
FILES = "POST /v1/files"
MODERATIONS = "POST /v1/moderations"
CREATE = "POST /v1/fine_tuning/jobs"
LIST = "GET /v1/fine_tuning/jobs"

SHORT_TIMEOUT = 0.5
"""The provider's read timeout in the timeout cases (seconds)."""
HELD = 0.8
"""How long a timeout fault holds a request: past SHORT_TIMEOUT, inside the 2 s reconcile."""

ADMIN_ONLY = "You need the Manage Server permission to use this command."
UNCONFIRMED = "was sent, but the backend did not confirm it yet: I will check and post."
SENTENCE = LABEL[0].upper() + LABEL[1:]
SAYS = {  # what the admin is told when a fault outlasts the retries
    "rate_limit": f"{SENTENCE} is busy right now; try again in a moment.",
    "server_error": f"{SENTENCE} had a problem (error 500); try again in a minute.",
    "timeout": f"{SENTENCE} did not answer in time; try again in a minute.",
    "drop": f"The connection to {LABEL} broke off; try again in a minute.",
}


def arm(server, route: str, kind: str, times: int | None) -> Fault:
    if kind == "rate_limit":
        return server.faults.rate_limit(route, times)
    if kind == "server_error":
        return server.faults.server_error(route, times)
    if kind == "timeout":
        return server.faults.timeout(route, times, delay=HELD)
    return server.faults.drop(route, times)


async def eventually(check: Callable[[], Awaitable[object]], timeout: float = 10.0) -> object:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.05)
    return found


async def the_job(bot, guild) -> FineTuneJob:
    [job] = await bot.storage.jobs.recent(guild.id)
    return job


def assert_clear(message, server) -> None:
    """Ephemeral, written for people: no apology for a bug, no traceback, no key."""
    text = message.content or ""
    assert message.ephemeral, text
    assert "Sorry, something went wrong" not in text and "reference" not in text, text
    assert "Traceback" not in text and server.config.api_key not in text, text


async def assert_followed(bot, guild, server, dataset_id: int) -> FineTuneJob:
    """Exactly one backend job for the dataset; ours holds its id and the follower has taken
    it past ``pending`` (it read the backend's status and recorded it)."""
    [remote] = remote_jobs(server, dataset_id)

    async def followed() -> FineTuneJob | None:
        [job] = [j for j in await bot.storage.jobs.recent(guild.id) if j.dataset_id == dataset_id]
        ok = job.provider_job_id == remote.id and job.status is not JobStatus.PENDING
        return job if ok else None

    job = await eventually(followed)
    assert remote.metadata and remote.metadata["tunecord_job"] == str(job.id)
    assert len(remote_jobs(server, dataset_id)) == 1
    return job


def remote_jobs(server, dataset_id: int) -> list:
    return [
        j for j in server.jobs.jobs.values() if (j.metadata or {}).get("dataset") == str(dataset_id)
    ]


def fine_tune_files(server) -> list[str]:
    return [f.id for f in server.files.files.values() if f.purpose == "fine-tune"]


# -- faults the retries cover: one job, started ------------------------------------------

COVERED = {  # step: (route, (fault kind, how many requests it answers), ...)
    "upload": (FILES, (("rate_limit", 2), ("server_error", 2), ("timeout", 1), ("drop", 2))),
    "moderation": (
        MODERATIONS,
        (("rate_limit", 2), ("server_error", 2), ("timeout", 1), ("drop", 1)),
    ),
    "create": (CREATE, (("rate_limit", 2), ("server_error", 1), ("timeout", 1), ("drop", 1))),
    "list": (LIST, (("rate_limit", 2), ("server_error", 2), ("timeout", 1), ("drop", 2))),
}


@pytest.mark.parametrize("world", [SHORT_TIMEOUT], indirect=True)
@pytest.mark.parametrize("step", list(COVERED))
async def test_faults_the_retries_cover_each_start_exactly_one_job(world, openai_server, step):
    guild, bot, people = world
    route, faults = COVERED[step]
    for number, (kind, times) in enumerate(faults, start=1):
        case = f"{step}: {kind} x{times}"
        dataset = await seed(bot, guild, 12, name=f"qa-{number}")
        fault = arm(openai_server, route, kind, times)
        _, _, answer = await start_and_confirm(people["admin"], dataset=dataset.name)
        assert fault.hits == times, case  # it fired, and the start went on
        assert_clear(answer, openai_server)
        [remote] = remote_jobs(openai_server, dataset.id)
        assert answer.content.startswith(f"Fine-tune #{number} of `{dataset.name}`"), case
        assert f"started (backend job `{remote.id}`)" in answer.content, case
        job = await assert_followed(bot, guild, openai_server, dataset.id)
        assert job.provider_file_id == remote.training_file, case
        assert job.validation_file_id == remote.validation_file, case
    assert len(openai_server.jobs.jobs) == len(faults)


# -- storms that outlast the retries: a clear answer, no job, our record failed ----------

STORMS = {  # step: (route, fault kinds, each armed for every request until cleared)
    "upload": (FILES, ("rate_limit", "server_error", "drop", "timeout")),
    "moderation": (MODERATIONS, ("rate_limit", "server_error", "drop")),
    "list": (LIST, ("rate_limit", "server_error", "drop", "timeout")),
}


@pytest.mark.parametrize("world", [SHORT_TIMEOUT], indirect=True)
@pytest.mark.parametrize("step", list(STORMS))
async def test_a_storm_before_the_job_exists_is_explained_and_fails_the_record(
    world, openai_server, step
):
    guild, bot, people = world
    route, kinds = STORMS[step]
    await seed(bot, guild, 12)
    for kind in kinds:  # one after the other: a failed start does not block the next
        case = f"{step}: {kind} storm"
        fault = arm(openai_server, route, kind, None)
        _, _, answer = await start_and_confirm(people["admin"], dataset="qa")
        openai_server.faults.clear()
        assert fault.hits == 3, case  # the first try and the two retries
        assert_clear(answer, openai_server)
        assert answer.content == SAYS[kind], case
        job = (await bot.storage.jobs.recent(guild.id))[0]
        assert job.status is JobStatus.FAILED and job.error == SAYS[kind], case
        assert job.provider_job_id is None, case
        if route != FILES or kind != "timeout":  # a held upload is stored after it timed out
            assert fine_tune_files(openai_server) == [], case  # uploads are deleted again
    assert openai_server.jobs.jobs == {}
    if route in (FILES, MODERATIONS):
        assert not openai_server.requests_to("POST", "/v1/fine_tuning/jobs")
    assert len(await bot.storage.jobs.recent(guild.id)) == len(kinds)
    assert await bot.storage.spend.total(guild.id) == 0  # nothing reserved


async def test_a_busy_job_creation_fails_the_start_and_says_how_long_to_wait(world, openai_server):
    guild, bot, people = world
    await seed(bot, guild, 12)
    storm = openai_server.faults.rate_limit(CREATE, None)
    _, _, answer = await start_and_confirm(people["admin"], dataset="qa")
    openai_server.faults.clear()
    assert storm.hits == 3  # 429 proves nothing was created: retried, then given up
    assert_clear(answer, openai_server)
    assert answer.content == SAYS["rate_limit"]
    long_wait = openai_server.faults.rate_limit(CREATE, 1, retry_after_ms=45_000)
    _, _, answer = await start_and_confirm(people["admin"], dataset="qa")
    assert long_wait.hits == 1  # not waited for: longer than the 20 s a call may wait
    assert_clear(answer, openai_server)
    assert answer.content == f"{SENTENCE} is busy right now; try again in 45 seconds."
    assert openai_server.jobs.jobs == {}
    jobs = await bot.storage.jobs.recent(guild.id)
    assert [j.status for j in jobs] == [JobStatus.FAILED, JobStatus.FAILED]
    assert fine_tune_files(openai_server) == []
    assert await bot.storage.spend.total(guild.id) == 0


async def test_a_job_creation_that_never_answers_is_reconciled_to_failed(
    world, openai_server, discord_server
):
    guild, bot, people = world
    training = guild.channel("training")
    await seed(bot, guild, 12)
    bot.get_cog("FinetuneCog").finetunes.reconcile_grace = timedelta(0)  # see the next test
    fault = openai_server.faults.server_error(CREATE, None)  # a 5xx may come after the job
    _, _, answer = await start_and_confirm(people["admin"], dataset="qa")
    assert fault.hits == 3  # one creation per reconcile round (list first), never blindly
    assert_clear(answer, openai_server)
    assert answer.content.startswith("Fine-tune #1 of `qa`") and UNCONFIRMED in answer.content
    failed = await discord_server.wait_for_message(
        training, check=lambda m: m.embeds and "failed" in m.content, timeout=15
    )
    assert failed.content == "**Fine-tune #1** failed."
    assert "interrupted before the backend created the job" in failed.embeds[0]["description"]
    job = await the_job(bot, guild)
    assert job.status is JobStatus.FAILED and job.provider_job_id is None
    assert openai_server.jobs.jobs == {}
    assert fine_tune_files(openai_server) == []  # its uploads are deleted with it
    assert not [m for m in discord_server.messages_in(training) if "started by" in m.content]


async def test_an_unconfirmed_start_stays_pending_through_the_grace_period(world, openai_server):
    """A creation answered by nothing may still be applied: the follower keeps looking
    for RECONCILE_GRACE before it calls the start failed."""
    guild, bot, people = world
    await seed(bot, guild, 12)
    fault = openai_server.faults.server_error(CREATE, None)
    _, _, answer = await start_and_confirm(people["admin"], dataset="qa")
    assert UNCONFIRMED in answer.content and fault.hits == 3
    lists = len(openai_server.requests_to("GET", "/v1/fine_tuning/jobs"))

    async def looked_again() -> bool:  # the follower polls every 0.05 s here
        return len(openai_server.requests_to("GET", "/v1/fine_tuning/jobs")) >= lists + 3

    await eventually(looked_again)
    job = await the_job(bot, guild)
    assert job.status is JobStatus.PENDING and job.provider_job_id is None
    cancel = await people["admin"].slash("finetune cancel", job=str(job.id))
    refused = await cancel.next_followup(timeout=10)
    assert refused.ephemeral and "has not confirmed it yet" in refused.content
    assert (await the_job(bot, guild)).status is JobStatus.PENDING  # still looked for


# -- creations applied late: never a second job, never an orphan -------------------------


@pytest.mark.parametrize("world", [SHORT_TIMEOUT], indirect=True)
async def test_a_creation_the_backend_applies_late_is_not_repeated(world, openai_server):
    guild, bot, people = world
    await seed(bot, guild, 12)
    openai_server.faults.timeout(CREATE, 1, delay=5.0)  # applied after 0.5 s + 2 s reconcile
    _, _, answer = await start_and_confirm(people["admin"], dataset="qa")
    assert_clear(answer, openai_server)
    first = openai_server.requests_to("POST", "/v1/fine_tuning/jobs")[0]

    async def held_answered() -> bool:
        return first.status is not None

    await eventually(held_answered)  # the held request has now been applied
    assert len(openai_server.jobs.jobs) == 1, "two jobs at the backend for one Confirm"


@pytest.mark.parametrize("world", [SHORT_TIMEOUT], indirect=True)
async def test_a_job_list_storm_while_reconciling_leaves_no_orphan(world, openai_server):
    guild, bot, people = world
    dataset = await seed(bot, guild, 12)
    openai_server.faults.timeout(CREATE, 1, delay=HELD)  # applied, but answered too late
    plan = await (await people["admin"].slash("finetune start", dataset="qa")).next_followup(30)
    click = await people["admin"].click(plan, "Confirm")

    async def create_sent() -> bool:
        return bool(openai_server.requests_to("POST", "/v1/fine_tuning/jobs"))

    await eventually(create_sent)
    openai_server.faults.rate_limit(LIST, None)  # the reconcile cannot list the jobs
    answer = await click.next_followup(timeout=30)
    assert_clear(answer, openai_server)
    [remote] = openai_server.jobs.jobs.values()  # the backend made it and trains it
    job = await the_job(bot, guild)
    assert job.status is not JobStatus.FAILED, f"orphaned {remote.id}: {answer.content}"
    assert UNCONFIRMED in answer.content
    openai_server.faults.clear()
    await assert_followed(bot, guild, openai_server, dataset.id)  # reconciled once the list answers


# -- members -------------------------------------------------------------------------------


async def test_members_forcing_finetune_subcommands_are_refused_and_change_nothing(
    world, openai_server
):
    guild, bot, people = world
    alice = people["alice"]
    dataset = await seed(bot, guild, 12)
    await start_and_confirm(people["admin"], dataset="qa")
    job = await assert_followed(bot, guild, openai_server, dataset.id)

    async def snapshot() -> tuple[object, ...]:
        return await bot.storage.jobs.recent(guild.id), await bot.storage.spend.entries(guild.id)

    async def settled() -> tuple[object, ...] | None:  # the follower has nothing left to record
        before = await snapshot()
        await asyncio.sleep(0.3)
        return before if before == await snapshot() else None

    before = await eventually(settled)
    models_asked = len(openai_server.requests_to("GET", "/v1/models"))
    role = guild.create_role("trainers")  # the trainer role exists; alice does not hold it
    await bot.services.guild_config.set_trainer_role(guild.id, role.id)
    with_role = (
        f"You need the Manage Server permission or the <@&{role.id}> role to use this command."
    )
    for command, options in (
        ("finetune estimate", {"dataset": "qa"}),
        ("finetune status", {"job": str(job.id)}),
        ("finetune list", {}),
        ("finetune cancel", {"job": str(job.id)}),
        ("finetune cancel", {"job": job.provider_job_id}),
    ):
        handle = await alice.slash(command, force=True, **options)
        assert handle.ephemeral and not handle.deferred, command
        assert handle.content == with_role, command
    await bot.services.guild_config.set_trainer_role(guild.id, None)
    handle = await alice.slash("finetune cancel", force=True, job=str(job.id))
    assert handle.content == ADMIN_ONLY
    await asyncio.sleep(0.3)  # anything a refused command set off would have landed
    assert await snapshot() == before
    assert len(openai_server.requests_to("GET", "/v1/models")) == models_asked
    assert not openai_server.requests_to(
        "POST", f"/v1/fine_tuning/jobs/{job.provider_job_id}/cancel"
    )
    assert openai_server.jobs.get(job.provider_job_id).status == "validating_files"


async def test_a_member_clicking_confirm_on_an_admins_plan_is_refused(world, openai_server):
    guild, bot, people = world
    dataset = await seed(bot, guild, 12)
    handle = await people["admin"].slash("finetune start", dataset="qa")
    plan = await handle.next_followup(timeout=30)
    with pytest.raises(ActionNotPermitted):  # Discord shows her nothing to click
        await people["alice"].click(plan, "Confirm")
    refused = await people["alice"].click(plan, "Confirm", force=True)  # a forged click
    assert refused.ephemeral and refused.content == ADMIN_ONLY
    assert await bot.storage.jobs.recent(guild.id) == []
    assert not openai_server.requests_to("POST", "/v1/files")
    assert openai_server.jobs.jobs == {}
    assert not any(c.get("disabled") for c in plan.interactive_components())  # still usable
    click = await people["admin"].click(plan, "Confirm")
    answer = await click.next_followup(timeout=30)
    assert "started" in answer.content
    await assert_followed(bot, guild, openai_server, dataset.id)

"""Backend failures become provider errors with messages for members; faults are retried
as far as it is safe, and a job is never created twice."""

from __future__ import annotations

import logging

import pytest

from bot.errors import UserError
from bot.providers import (
    AuthenticationFailed,
    BadRequest,
    JobSpec,
    ModelNotFound,
    RateLimited,
    TrainingNotAvailable,
    Unavailable,
)
from tests.providers.conftest import training_file

MINI = "gpt-4o-mini-2024-07-18"
CHAT = "POST /v1/chat/completions"
JOBS = "POST /v1/fine_tuning/jobs"
HELLO = [{"role": "user", "content": "hello"}]


def chat_requests(server) -> int:
    return len(server.requests_to("POST", "/v1/chat/completions"))


def job_requests(server) -> int:
    return len(server.requests_to("POST", "/v1/fine_tuning/jobs"))


async def test_training_not_available_names_the_alternatives(openai_server, provider, tmp_path):
    openai_server.set_training_available(False)
    train = await provider.upload_file(training_file(tmp_path))  # uploads still work
    with pytest.raises(TrainingNotAvailable) as refused:
        await provider.create_job(JobSpec(model=MINI, training_file=train.id))
    message = str(refused.value)
    assert isinstance(refused.value, UserError)
    assert message.startswith("OpenAI will not start fine-tuning jobs (OpenAI is winding down")
    assert "TUNECORD_BACKEND=trainer" in message and "OPENAI_BASE_URL" in message
    assert refused.value.code == "training_not_available" and not refused.value.outcome_unknown
    assert job_requests(openai_server) == 1  # a refusal is not retried


async def test_a_server_without_a_fine_tuning_api_refuses_training(openai_server, provider, tmp_path):
    openai_server.faults.server_error(JOBS, times=1, status=404)
    with pytest.raises(TrainingNotAvailable, match="it has no fine-tuning API"):
        await provider.create_job(JobSpec(model=MINI, training_file="file-x"))


async def test_a_429_storm_is_waited_out(openai_server, provider):
    openai_server.faults.rate_limit(CHAT, times=2, retry_after_ms=30)
    reply = await provider.chat("gpt-4o-mini", HELLO)
    assert reply.text.endswith("hello")
    assert chat_requests(openai_server) == 3


async def test_a_longer_429_storm_ends_in_a_clear_busy_message(openai_server, provider, caplog):
    openai_server.faults.rate_limit(CHAT, times=None, retry_after_ms=300)
    with caplog.at_level(logging.WARNING, "bot.providers"):
        with pytest.raises(RateLimited) as busy:
            await provider.chat("gpt-4o-mini", HELLO)
    assert str(busy.value) == "OpenAI is busy right now; try again in a moment."
    assert busy.value.retry_after == pytest.approx(0.3) and busy.value.retryable
    assert chat_requests(openai_server) == 3  # the first try and two retries
    assert sum("retrying in 0.3s" in r.getMessage() for r in caplog.records) == 2


async def test_a_long_retry_after_is_reported_at_once(openai_server, make_provider):
    openai_server.faults.rate_limit(CHAT, times=None, retry_after_ms=90_000)
    provider = make_provider(max_retry_wait=20.0)
    with pytest.raises(RateLimited) as busy:
        await provider.chat("gpt-4o-mini", HELLO)
    assert busy.value.retry_after == 90 and "try again in 2 minutes" in str(busy.value)
    assert chat_requests(openai_server) == 1


async def test_500s_are_retried_then_reported(openai_server, provider):
    openai_server.faults.server_error(CHAT, times=2)
    assert (await provider.chat("gpt-4o-mini", HELLO)).text.endswith("hello")
    openai_server.faults.server_error(CHAT, times=None, status=503)
    with pytest.raises(Unavailable) as down:
        await provider.chat("gpt-4o-mini", HELLO)
    assert str(down.value) == "OpenAI had a problem (error 503); try again in a minute."
    assert down.value.status == 503
    assert chat_requests(openai_server) == 3 + 3


async def test_timeouts_are_retried_then_reported(openai_server, make_provider):
    provider = make_provider(timeout=0.3)
    openai_server.faults.timeout(CHAT, times=1, delay=1.0)
    assert (await provider.chat("gpt-4o-mini", HELLO)).text.endswith("hello")
    openai_server.faults.timeout("GET /v1/models", times=None, delay=1.0)
    with pytest.raises(Unavailable, match="^OpenAI did not answer in time; try again in a minute.$"):
        await provider.list_models()
    assert len(openai_server.requests_to("GET", "/v1/models")) == 3


async def test_dropped_connections_are_retried_then_reported(openai_server, provider):
    openai_server.faults.drop(CHAT, times=2)
    async with provider.stream_chat("gpt-4o-mini", HELLO) as stream:
        assert "".join([d async for d in stream]).endswith("hello")
    openai_server.faults.drop(CHAT, times=None)  # reached, then closed without an answer
    with pytest.raises(Unavailable, match="^The connection to OpenAI broke off"):
        await provider.chat("gpt-4o-mini", HELLO)


async def test_an_unreachable_backend_is_unavailable(make_provider):
    provider = make_provider(base_url="http://127.0.0.1:9/v1", connect_timeout=0.5, max_retries=1)
    with pytest.raises(Unavailable, match="^Cannot reach OpenAI right now"):
        await provider.list_models()


async def test_model_and_context_errors(openai_server, provider):
    with pytest.raises(ModelNotFound) as missing:
        await provider.chat("gpt-9-imaginary", HELLO)
    assert str(missing.value) == (
        "OpenAI has no model `gpt-9-imaginary` (it may have been deleted or retired)."
    )
    assert missing.value.model == "gpt-9-imaginary"
    with pytest.raises(ModelNotFound, match="gpt-3.5-turbo"):  # shut down
        async with provider.stream_chat("gpt-3.5-turbo", HELLO) as stream:
            [d async for d in stream]
    assert chat_requests(openai_server) == 2  # not retried


async def test_other_refusals_quote_the_backend(openai_server, make_provider, tmp_path):
    openai_server.validate_spec = False  # the request carries a field OpenAI does not know
    provider = make_provider(job_extra_body={"trainingType": "GlobalStandard"})
    with pytest.raises(BadRequest) as refused:
        await provider.create_job(JobSpec(model=MINI, training_file="file-x"))
    assert str(refused.value) == (
        "OpenAI refused the request: Unrecognized request argument supplied: trainingType"
    )
    assert refused.value.backend_message == "Unrecognized request argument supplied: trainingType"
    assert job_requests(openai_server) == 1


async def test_a_refused_key_is_never_shown_or_logged(openai_server, make_provider, tmp_path, caplog):
    wrong = "sk-wrong-key-0123456789abcdefXYZ"
    provider = make_provider(api_key=wrong)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationFailed) as refused:
        await provider.list_models()
    assert str(refused.value) == (
        "OpenAI refused tunecord's API key; the bot's operator needs to check OPENAI_API_KEY."
    )
    right = openai_server.config.api_key
    good = make_provider()
    openai_server.faults.rate_limit(CHAT, times=None)
    openai_server.faults.server_error("GET /v1/models", times=None)
    errors: list[Exception] = [refused.value]
    for call in (lambda: good.chat("gpt-4o-mini", HELLO), good.list_models,
                 lambda: good.get_job("ftjob-nope"), lambda: good.chat("nope", HELLO)):  # fmt: skip
        with pytest.raises(UserError) as failed:
            await call()
        errors.append(failed.value)
    for key in (wrong, right, wrong[-8:], right[-8:], "0123456789abcdef"):
        assert key not in caplog.text
        assert not any(key in str(e) or key in repr(e.args) for e in errors)
    assert all(e.__cause__ is None and e.__suppress_context__ for e in errors)


async def test_moderation_missing_is_detected_once(openai_server, provider):
    openai_server.faults.server_error("POST /v1/moderations", times=None, status=404)
    assert await provider.moderate(["hello"]) is None
    assert await provider.moderate(["hello again"]) is None
    assert len(openai_server.requests_to("POST", "/v1/moderations")) == 1


# ----------------------------------------------------------------------------- never a duplicate job


async def test_a_rate_limited_job_start_is_retried(openai_server, provider, tmp_path):
    train = await provider.upload_file(training_file(tmp_path))
    openai_server.faults.rate_limit(JOBS, times=1)
    job = await provider.create_job(JobSpec(model=MINI, training_file=train.id))
    assert job_requests(openai_server) == 2
    assert [j.id for j in openai_server.jobs.jobs.values()] == [job.id]


async def test_a_lost_answer_to_a_job_start_is_not_retried_blindly(openai_server, provider, tmp_path):
    train = await provider.upload_file(training_file(tmp_path))
    openai_server.faults.drop(JOBS, times=1)
    with pytest.raises(Unavailable) as lost:
        await provider.create_job(JobSpec(model=MINI, training_file=train.id))
    assert lost.value.outcome_unknown and job_requests(openai_server) == 1
    openai_server.faults.server_error(JOBS, times=1)
    with pytest.raises(Unavailable) as failed:
        await provider.create_job(JobSpec(model=MINI, training_file=train.id))
    assert failed.value.outcome_unknown and job_requests(openai_server) == 2


async def test_start_once_finds_the_job_whose_answer_timed_out(openai_server, make_provider, tmp_path):
    provider = make_provider(timeout=0.3, reconcile_delay=1.2)
    train = await provider.upload_file(training_file(tmp_path))
    spec = JobSpec(model=MINI, training_file=train.id, metadata={"tunecord_job": "7", "guild": "1"})
    openai_server.faults.timeout(JOBS, times=1, delay=0.8)  # the job is made after the client gave up
    job = await provider.start_job_once(spec, {"tunecord_job": "7"})
    assert job_requests(openai_server) == 1
    assert [j.id for j in openai_server.jobs.jobs.values()] == [job.id]
    again = await provider.start_job_once(spec, {"tunecord_job": "7"})  # a double click, a retry
    assert again.id == job.id and job_requests(openai_server) == 1


async def test_start_once_retries_a_start_that_never_arrived(openai_server, provider, tmp_path):
    train = await provider.upload_file(training_file(tmp_path))
    spec = JobSpec(model=MINI, training_file=train.id, metadata={"tunecord_job": "8"})
    openai_server.faults.drop(JOBS, times=1)
    job = await provider.start_job_once(spec, {"tunecord_job": "8"})
    assert job_requests(openai_server) == 2
    assert [j.id for j in openai_server.jobs.jobs.values()] == [job.id]


async def test_start_once_gives_up_clearly_without_a_duplicate(openai_server, provider, tmp_path):
    train = await provider.upload_file(training_file(tmp_path))
    spec = JobSpec(model=MINI, training_file=train.id, metadata={"tunecord_job": "9"})
    openai_server.faults.server_error(JOBS, times=None)
    with pytest.raises(Unavailable) as failed:
        await provider.start_job_once(spec, {"tunecord_job": "9"})
    assert failed.value.outcome_unknown
    assert job_requests(openai_server) == 3 and not openai_server.jobs.jobs
    with pytest.raises(ValueError):
        await provider.start_job_once(spec, {"tunecord_job": "10"})  # not the spec's metadata

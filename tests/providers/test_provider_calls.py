"""Every provider method against the OpenAI stand-in, through the real SDK over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from bot.providers import JobSpec, ModelNotFound, NotFound
from tests.providers.conftest import training_file
from tests.standins.openai import base_answer

MINI = "gpt-4o-mini-2024-07-18"


async def test_upload_streams_the_file_from_its_path(openai_server, provider, tmp_path):
    path = training_file(tmp_path, 12)
    uploaded = await provider.upload_file(path)
    assert uploaded.filename == "train.jsonl" and uploaded.purpose == "fine-tune"
    assert uploaded.bytes == path.stat().st_size
    sent = openai_server.requests_to("POST", "/v1/files")[-1].form
    assert sent["purpose"] == "fine-tune"
    assert sent["file"]["content"] == path.read_bytes()
    assert openai_server.files.require(uploaded.id).content == path.read_bytes()
    await provider.delete_file(uploaded.id)
    await provider.delete_file(uploaded.id)  # already gone: not an error
    assert openai_server.requests_to("DELETE", f"/v1/files/{uploaded.id}")


async def test_a_job_from_start_to_checkpoints(openai_server, provider, tmp_path):
    train = await provider.upload_file(training_file(tmp_path, 10))
    valid = await provider.upload_file(training_file(tmp_path, 3, "valid.jsonl"))
    spec = JobSpec(model=MINI, training_file=train.id, validation_file=valid.id, epochs=2,
                   batch_size=2, suffix="hq", seed=7, metadata={"tunecord_job": "41", "guild": "9"})  # fmt: skip
    job = await provider.create_job(spec)
    body = openai_server.requests_to("POST", "/v1/fine_tuning/jobs")[-1].json
    assert body["method"] == {"type": "supervised",
                              "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 2}}}  # fmt: skip
    assert (body["suffix"], body["seed"], body["validation_file"]) == ("hq", 7, valid.id)
    assert job.status == "validating_files" and not job.finished
    assert job.metadata == {"tunecord_job": "41", "guild": "9"}

    openai_server.jobs.run_to_completion(job.id)
    done = await provider.get_job(job.id)
    assert done.status == "succeeded" and done.finished
    assert done.fine_tuned_model and done.fine_tuned_model.startswith(f"ft:{MINI}:tunecord:hq:")
    assert done.trained_tokens and done.hyperparameters["n_epochs"] == 2
    assert done.finished_at and done.error is None

    events = await provider.events_since(job.id, None)
    assert events[0].message.startswith("Created fine-tuning job")
    assert events[-1].message == "The job has successfully completed"
    assert [e.created_at for e in events] == sorted(e.created_at for e in events)
    metrics = [e for e in events if e.type == "metrics"]
    assert [e.data["step"] for e in metrics] == list(range(1, 11))
    later = await provider.events_since(job.id, events[-3].id)
    assert [e.id for e in later] == [e.id for e in events[-2:]]
    assert await provider.events_since(job.id, events[-1].id) == []

    checkpoints = await provider.checkpoints(job.id)
    assert [c.step for c in checkpoints] == sorted(c.step for c in checkpoints)
    assert checkpoints[-1].model == done.fine_tuned_model
    assert "train_loss" in checkpoints[-1].metrics

    assert [j.id for j in await provider.find_jobs({"tunecord_job": "41"})] == [job.id]
    assert await provider.find_jobs({"tunecord_job": "42"}) == []


async def test_events_are_read_across_pages(openai_server, provider, tmp_path):
    train = await provider.upload_file(training_file(tmp_path, 60))
    job = await provider.create_job(JobSpec(model=MINI, training_file=train.id, epochs=2, batch_size=1))
    openai_server.jobs.run_to_completion(job.id)
    events = await provider.events_since(job.id, None)
    assert len(events) > 120  # 120 metrics events and the messages around them: two pages
    assert len(openai_server.requests_to("GET", f"/v1/fine_tuning/jobs/{job.id}/events")) == 2
    assert len({e.id for e in events}) == len(events)
    steps = [e.data["step"] for e in events if e.type == "metrics"]
    assert steps == list(range(1, 121))


async def test_cancel(openai_server, provider, tmp_path):
    train = await provider.upload_file(training_file(tmp_path))
    job = await provider.create_job(JobSpec(model=MINI, training_file=train.id))
    cancelled = await provider.cancel_job(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished
    with pytest.raises(NotFound, match="OpenAI has no `ftjob-nope`"):
        await provider.get_job("ftjob-nope")


async def test_models_list_retrieve_delete(openai_server, provider, tmp_path):
    models = {m.id: m for m in await provider.list_models()}
    assert models["gpt-4o-mini"].owned_by == "system"
    assert models[MINI].shutdown_date == "2027-01-14"
    assert "gpt-3.5-turbo" not in models  # shut down on the stand-in's date

    train = await provider.upload_file(training_file(tmp_path))
    job = await provider.create_job(JobSpec(model=MINI, training_file=train.id, suffix="gone"))
    openai_server.jobs.run_to_completion(job.id)
    tuned = (await provider.get_job(job.id)).fine_tuned_model
    assert tuned is not None
    info = await provider.get_model(tuned)
    assert info.id == tuned and info.owned_by != "system"
    await provider.delete_model(tuned)
    with pytest.raises(ModelNotFound) as gone:
        await provider.get_model(tuned)
    assert gone.value.model == tuned and tuned in str(gone.value)


async def test_chat_whole_and_streamed(openai_server, provider):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]
    reply = await provider.chat("gpt-4o-mini", messages, max_tokens=200, temperature=0.2)
    expected = base_answer("gpt-4o-mini-2024-07-18", "Be brief.", "hello there")
    assert reply.text == expected and reply.finish_reason == "stop"
    assert reply.usage and reply.usage.completion_tokens > 0
    sent = openai_server.requests_to("POST", "/v1/chat/completions")[-1].json
    assert (sent["max_completion_tokens"], sent["temperature"]) == (200, 0.2)

    async with provider.stream_chat("gpt-4o-mini", messages) as stream:
        deltas = [delta async for delta in stream]
    assert len(deltas) > 3 and "".join(deltas) == expected
    assert stream.finish_reason == "stop"
    assert stream.usage and stream.usage.total_tokens == reply.usage.total_tokens
    assert openai_server.chat_log[-1].system_prompt == "Be brief."


async def test_a_stream_left_early_is_closed(openai_server, provider):
    openai_server.set_stream_pace(0.02)
    messages = [{"role": "user", "content": "a fairly long question with many words in it"}]
    async with provider.stream_chat("gpt-4o-mini", messages) as stream:
        async for _ in stream:
            break
    reply = await provider.chat("gpt-4o-mini", messages)  # the connection pool is still fine
    assert reply.text.endswith("many words in it")
    await asyncio.sleep(0.1)  # the stand-in notices the departure; its fixture checks for crashes


async def test_extra_body_reaches_jobs_and_chat(openai_server, make_provider, tmp_path):
    provider = make_provider(job_extra_body={"integrations": []}, chat_extra_body={"user": "tunecord"})
    train = await provider.upload_file(training_file(tmp_path))
    await provider.create_job(JobSpec(model=MINI, training_file=train.id))
    assert openai_server.requests_to("POST", "/v1/fine_tuning/jobs")[-1].json["integrations"] == []
    await provider.chat("gpt-4o-mini", [{"role": "user", "content": "hi"}])
    assert openai_server.requests_to("POST", "/v1/chat/completions")[-1].json["user"] == "tunecord"


async def test_moderation_in_batches(openai_server, provider):
    texts = [f"message {i}" for i in range(40)] + ["I will stab you, idiot"]
    verdicts = await provider.moderate(texts)
    assert verdicts is not None and len(verdicts) == 41
    assert not any(v.flagged for v in verdicts[:40])
    assert verdicts[40].flagged and verdicts[40].categories == ("harassment", "violence")
    assert len(openai_server.requests_to("POST", "/v1/moderations")) == 2

"""The same provider against the bundled trainer (a tiny random model, served in a thread)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.providers import (
    AuthenticationFailed,
    ContextTooLong,
    JobSpec,
    ModelNotFound,
    NotFound,
    OpenAICompatProvider,
    ProviderConfig,
)
from tests.trainer.test_server import API_KEY, BASE, jsonl, make_config, running_server, tiny_engine

LABEL = "the tunecord trainer"
SENTENCE = "The tunecord trainer"
"""The label where it starts a sentence (messages start with a capital)."""


def trainer_provider(url: str, api_key: str = API_KEY) -> OpenAICompatProvider:
    return OpenAICompatProvider(ProviderConfig(base_url=url, api_key=api_key, label=LABEL,
                                               key_setting="TRAINER_API_KEY", backoff=0.01))  # fmt: skip


async def test_fine_tune_and_chat_through_the_provider(tmp_path):
    with running_server(make_config(tmp_path), tiny_engine()) as url:
        provider = trainer_provider(url)
        try:
            await _fine_tune_and_chat(provider, tmp_path)
        finally:
            await provider.close()


async def _fine_tune_and_chat(provider: OpenAICompatProvider, tmp_path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(12))
    train = await provider.upload_file(path)
    spec = JobSpec(model=BASE, training_file=train.id, epochs=4, batch_size=4, learning_rate_multiplier=5,
                   suffix="hq", metadata={"tunecord_job": "1"})  # fmt: skip
    job = await provider.start_job_once(spec, {"tunecord_job": "1"})
    assert (await provider.start_job_once(spec, {"tunecord_job": "1"})).id == job.id
    deadline = time.monotonic() + 120
    while not (done := await provider.get_job(job.id)).finished:
        assert time.monotonic() < deadline, "the tiny fine-tune did not finish"
        await asyncio.sleep(0.2)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:{BASE}:testorg:hq:{job.id[6:14]}"
    assert done.hyperparameters == {"n_epochs": 4, "batch_size": 4, "learning_rate_multiplier": 5.0}
    assert done.trained_tokens

    events = await provider.events_since(job.id, None)
    assert events[0].message.startswith("Created fine-tuning job")
    assert [e.data["step"] for e in events if e.type == "metrics"] == list(range(1, 13))
    assert await provider.events_since(job.id, events[-1].id) == []
    assert [c.step for c in await provider.checkpoints(job.id)] == [3, 6, 9, 12]
    assert [m.id for m in await provider.list_models()] == [BASE, done.fine_tuned_model]

    prompt = [{"role": "system", "content": "You are a test bot."}, {"role": "user", "content": "ping 3"}]
    reply = await provider.chat(done.fine_tuned_model, prompt, max_tokens=8, temperature=0)
    assert "pong" in reply.text and reply.usage  # it learned and reply.usage.completion_tokens <= 8
    async with provider.stream_chat(done.fine_tuned_model, prompt, max_tokens=8, temperature=0) as stream:
        streamed = "".join([d async for d in stream])
    assert streamed == reply.text and stream.usage == reply.usage

    assert await provider.moderate(["anything"]) is None  # the trainer has no moderation endpoint
    assert await provider.moderate(["asked once"]) is None
    with pytest.raises(ContextTooLong, match="too long for the model"):
        await provider.chat(BASE, [{"role": "user", "content": "ping pong " * 600}], max_tokens=8)
    with pytest.raises(ModelNotFound, match=f"{SENTENCE} has no model `ft:nope`"):
        await provider.chat("ft:nope", prompt)
    with pytest.raises(NotFound, match="ftjob-missing"):
        await provider.get_job("ftjob-missing")

    await provider.delete_model(done.fine_tuned_model)
    with pytest.raises(ModelNotFound):
        await provider.get_model(done.fine_tuned_model)


async def test_a_wrong_trainer_key_names_the_setting(tmp_path):
    with running_server(make_config(tmp_path), tiny_engine()) as url:
        provider = trainer_provider(url, api_key="sk-not-the-trainer-key")
        try:
            with pytest.raises(AuthenticationFailed) as refused:
                await provider.list_models()
        finally:
            await provider.close()
    assert str(refused.value) == (
        f"{SENTENCE} refused tunecord's API key; the bot's operator needs to check TRAINER_API_KEY."
    )

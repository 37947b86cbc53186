"""Job control over time with the real engine: cancel, crash and restart, shutdown, the guide's flow."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.trainer.test_server import (
    API_KEY,
    BASE,
    PacedEngine,
    ServerProcess,
    all_events,
    async_client,
    jsonl,
    make_config,
    running_server,
    tiny_engine,
    wait_for,
    wait_status,
)
from trainer.config import TrainerConfig
from trainer.store import Store


async def _metrics_steps(client: openai.AsyncOpenAI, job_id: str) -> list[int]:
    return [e.data["step"] for e in await all_events(client, job_id) if e.type == "metrics"]


async def _event_starting(client: openai.AsyncOpenAI, job_id: str, prefix: str) -> Any:
    return next((e for e in await all_events(client, job_id) if e.message.startswith(prefix)), None)


async def _has_checkpoint(client: openai.AsyncOpenAI, job_id: str) -> bool:
    return bool((await client.fine_tuning.jobs.checkpoints.list(job_id)).data)


def _steps_in_db(data_dir: Path, job_id: str) -> list[int]:
    store = Store(data_dir / "trainer.sqlite3")
    try:
        return [e.data["step"] for e in store.metrics_events(job_id) if e.data]
    finally:
        store.close()


async def test_cancel_stops_running_training_within_seconds_and_frees_the_worker(tmp_path: Path) -> None:
    with running_server(make_config(tmp_path), tiny_engine()) as url:
        client = async_client(url)
        upload = await client.files.create(file=("t.jsonl", jsonl(20)), purpose="fine-tune")
        slow = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id,
                                                    hyperparameters={"n_epochs": 50, "batch_size": 1})  # fmt: skip
        waiting = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id,
                                                       hyperparameters={"n_epochs": 1, "batch_size": 10})  # fmt: skip
        await wait_for(lambda: _metrics_steps(client, slow.id))
        assert (await client.fine_tuning.jobs.retrieve(waiting.id)).status == "queued"  # one training at a time
        live = await client.fine_tuning.jobs.retrieve(slow.id)
        assert live.status == "running"
        assert live.estimated_finish and live.estimated_finish > int(time.time())

        cancelled = await client.fine_tuning.jobs.cancel(slow.id)
        asked = time.monotonic()
        assert cancelled.status == "cancelled" and cancelled.finished_at and cancelled.estimated_finish is None
        stopped = await wait_for(lambda: _event_starting(client, slow.id, "Training stopped at step"), timeout=10)
        assert time.monotonic() - asked < 10
        steps = await _metrics_steps(client, slow.id)
        assert stopped.message == f"Training stopped at step {steps[-1]}" and steps[-1] < 1000
        assert steps == list(range(1, steps[-1] + 1))

        done = await wait_status(client, waiting.id, {"succeeded", "failed"}, timeout=60)
        assert done.status == "succeeded", done.error
        assert await _metrics_steps(client, slow.id) == steps  # nothing trained after the stop
        messages = [e.message for e in await all_events(client, slow.id)]
        assert messages[-2:] == [stopped.message, "Fine-tuning job cancelled"]  # the status event is the last
        assert messages.count("Fine-tuning job cancelled") == 1
        assert (await client.fine_tuning.jobs.retrieve(slow.id)).fine_tuned_model is None
        with pytest.raises(openai.BadRequestError):
            await client.fine_tuning.jobs.cancel(slow.id)


async def test_killed_server_resumes_running_job_from_checkpoint_and_keeps_queue(tmp_path: Path) -> None:
    data_dir = tmp_path / "trainer"
    first = ServerProcess(data_dir, step_pause=0.2)
    try:
        client = async_client(await first.url())
        upload = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
        job = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id, suffix="r", seed=3,
                                                   hyperparameters={"n_epochs": 6, "batch_size": 2})  # fmt: skip
        queued = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id,
                                                      hyperparameters={"n_epochs": 1, "batch_size": 5})  # fmt: skip
        await wait_for(lambda: _has_checkpoint(client, job.id), timeout=60, interval=0.05)
        first.kill()  # SIGKILL mid-training: no shutdown code runs
    finally:
        first.stop()
    steps_before = _steps_in_db(data_dir, job.id)
    assert 5 <= max(steps_before) < 30

    second = ServerProcess(data_dir)
    try:
        client = async_client(await second.url())
        done = await wait_status(client, job.id, {"succeeded", "failed", "cancelled"}, timeout=120)
        assert done.status == "succeeded", done.error
        events = await all_events(client, job.id)
        prefix = "Server restarted; resuming training from the checkpoint at step "
        resumed = [e for e in events if e.message.startswith(prefix)]
        assert len(resumed) == 1
        resume_step = int(resumed[0].message.removeprefix(prefix))
        assert resume_step % 5 == 0 and 5 <= resume_step <= max(steps_before)
        after = [e.data["step"] for e in events[events.index(resumed[0]):] if e.type == "metrics"]
        assert after == list(range(resume_step + 1, 31))
        checkpoints = [c.step_number async for c in client.fine_tuning.jobs.checkpoints.list(job.id, limit=2)]
        assert checkpoints == list(range(30, 0, -5))
        chat = await client.chat.completions.create(model=done.fine_tuned_model, max_tokens=4,
                                                    messages=[{"role": "user", "content": "ping"}])  # fmt: skip
        assert chat.model == done.fine_tuned_model and chat.choices[0].finish_reason in ("stop", "length")
        other = await wait_status(client, queued.id, {"succeeded", "failed"}, timeout=60)
        assert other.status == "succeeded", other.error
    finally:
        second.stop()


async def test_graceful_shutdown_leaves_job_running_and_the_next_start_resumes_it(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    job = await _interrupt_after_first_checkpoint(config)
    interrupted = Store(config.db_path)
    assert interrupted.get_job(job.id).status == "running"
    interrupted.close()
    with running_server(config, tiny_engine()) as url:
        client = async_client(url)
        done = await wait_status(client, job.id, {"succeeded", "failed"})
        assert done.status == "succeeded", done.error
        messages = [e.message for e in await all_events(client, job.id)]
        assert any(m.startswith("Training interrupted by a server shutdown") for m in messages)
        assert any(m.startswith("Server restarted; resuming training from the checkpoint") for m in messages)


async def _interrupt_after_first_checkpoint(config: TrainerConfig) -> Any:
    """Start a 40-step job (paced: >= 0.2 s a step) and shut the server down gracefully
    once its first checkpoint exists."""
    with running_server(config, PacedEngine(tiny_engine(), step_pause=0.2)) as url:
        async with async_client(url) as client:
            upload = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
            job = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id,
                                                       hyperparameters={"n_epochs": 8, "batch_size": 2})  # fmt: skip
            await wait_for(lambda: _has_checkpoint(client, job.id), interval=0.05)
    return job


async def test_restart_with_checkpoints_gone_fails_the_job_clearly(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    job = await _interrupt_after_first_checkpoint(config)
    store = Store(config.db_path)
    for checkpoint in store.latest_checkpoints(job.id):
        shutil.rmtree(checkpoint.path)
    store.close()
    with running_server(config, tiny_engine()) as url:
        client = async_client(url)
        failed = await wait_status(client, job.id, {"succeeded", "failed"})
        assert failed.status == "failed" and failed.error.code == "resume_failed"
        assert "none of the job's checkpoints could be found" in failed.error.message


def test_founding_guide_three_steps_with_sync_sdk(tmp_path: Path) -> None:
    """Upload, create, poll, chat: the reference flow with only ``base_url`` changed."""
    with running_server(make_config(tmp_path), tiny_engine()) as url:
        client = openai.OpenAI(base_url=url, api_key=API_KEY)
        training = tmp_path / "train.jsonl"
        training.write_bytes(jsonl(40))

        # 1. Upload the training file.
        f = client.files.create(file=open(training, "rb"), purpose="fine-tune")  # noqa: SIM115 - guide code
        # 2. Create the fine-tuning job.
        job = client.fine_tuning.jobs.create(
            model=BASE,
            training_file=f.id,
            suffix="discord-bot",
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": "auto"}}},
            metadata={"guild": "123"},
        )
        # 3. Poll until it is done, then chat with the fine-tuned model.
        while job.status not in ("succeeded", "failed", "cancelled"):
            time.sleep(0.5)
            job = client.fine_tuning.jobs.retrieve(job.id)
        for ev in client.fine_tuning.jobs.list_events(job.id, limit=20):
            assert ev.level in ("info", "warn", "error") and ev.message
        assert job.status == "succeeded", job.error
        reply = client.chat.completions.create(
            model=job.fine_tuned_model, messages=[{"role": "user", "content": "ping 1"}], max_tokens=8
        )
        assert reply.choices[0].message.content and reply.usage.completion_tokens <= 8
        assert job.fine_tuned_model.startswith(f"ft:{BASE}:testorg:discord-bot:")
        assert job.hyperparameters.n_epochs == 3  # OpenAI's "auto" for 40 examples
        assert job.trained_tokens and job.trained_tokens > 0

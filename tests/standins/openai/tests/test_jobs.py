"""Fine-tuning jobs on the OpenAI stand-in: lifecycle on the controlled clock, validation,
pagination, events, checkpoints and OpenAI's billing-token rules, via AsyncOpenAI."""

from __future__ import annotations

import asyncio
import base64
import json

import openai
import pytest
import tiktoken
from openai import AsyncOpenAI

from tests.standins.openai import OpenAIStandin
from tests.standins.openai import fixtures as standin_fixtures
from tests.standins.openai.datasets import chat_example, dpo_example, jsonl, qa_dataset

openai_client = standin_fixtures.openai_client
openai_server = standin_fixtures.openai_server


async def _upload(client: AsyncOpenAI, records: list[dict], name: str = "train.jsonl") -> str:
    return (await client.files.create(file=(name, jsonl(records)), purpose="fine-tune")).id


def _expected_tokens(records: list[dict], encoding: str, epochs: int, cap: int) -> int:
    """Cookbook counting, written out again here so the test checks the stand-in."""
    enc = tiktoken.get_encoding(encoding)
    total = 0
    for record in records:
        n = 3
        for message in record["messages"]:
            n += 3
            for key in ("role", "content", "name"):
                if key in message:
                    n += len(enc.encode(message[key])) + (1 if key == "name" else 0)
        total += min(cap, n)
    return epochs * total


async def test_full_lifecycle_on_the_controlled_clock(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    records = qa_dataset(12)
    train = await _upload(openai_client, records)
    valid = await _upload(openai_client, qa_dataset(3), "valid.jsonl")
    t0 = openai_server.clock.timestamp()

    job = await openai_client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18",
        training_file=train,
        validation_file=valid,
        suffix="discord-bot",
        seed=42,
        metadata={"guild": "123"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    )
    assert job.status == "validating_files"
    assert (job.created_at, job.seed, job.metadata, job.validation_file) == (
        t0,
        42,
        {"guild": "123"},
        valid,
    )
    assert job.fine_tuned_model is None and job.trained_tokens is None and job.finished_at is None

    await asyncio.sleep(0.05)  # wall time never moves a job
    assert (await openai_client.fine_tuning.jobs.retrieve(job.id)).status == "validating_files"

    openai_server.clock.advance(4.9)
    assert (await openai_client.fine_tuning.jobs.retrieve(job.id)).status == "validating_files"
    openai_server.clock.advance(0.1)
    queued = await openai_client.fine_tuning.jobs.retrieve(job.id)
    assert queued.status == "queued"
    assert queued.hyperparameters.n_epochs == 2 and queued.hyperparameters.batch_size == 1

    openai_server.clock.advance(10)
    running = await openai_client.fine_tuning.jobs.retrieve(job.id)
    assert running.status == "running"
    assert running.estimated_finish == t0 + 15 + 24  # 2 epochs x 12 steps x 1 s

    openai_server.clock.advance(5)
    events = (await openai_client.fine_tuning.jobs.list_events(job.id, limit=100)).data
    metrics = [e for e in events if e.type == "metrics"]
    assert [e.data["step"] for e in metrics] == [5, 4, 3, 2, 1]  # type: ignore[index]  # newest first
    first = metrics[-1]
    assert set(first.data) >= {
        "step",
        "train_loss",
        "valid_loss",
        "train_mean_token_accuracy",
        "total_steps",
    }  # type: ignore[arg-type]
    assert first.message.startswith("Step 1/24: training loss=")
    assert first.created_at == t0 + 16

    openai_server.clock.advance(19)
    done = await openai_client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded"
    assert done.finished_at == t0 + 39
    assert done.fine_tuned_model is not None
    prefix, base, org, suffix, model_id = done.fine_tuned_model.split(":")
    assert (prefix, base, org, suffix, len(model_id)) == (
        "ft",
        "gpt-4o-mini-2024-07-18",
        "tunecord",
        "discord-bot",
        8,
    )
    assert done.trained_tokens == _expected_tokens(records, "o200k_base", 2, 65_536)
    assert done.estimated_finish is None
    assert openai_server.jobs.statuses(job.id) == [
        "validating_files",
        "queued",
        "running",
        "succeeded",
    ]

    messages = [
        e.message
        for e in (await openai_client.fine_tuning.jobs.list_events(job.id, limit=100)).data
    ]
    assert messages[0] == "The job has successfully completed"
    assert f"New fine-tuned model created: {done.fine_tuned_model}" in messages
    assert messages[-1] == f"Created fine-tuning job: {job.id}"

    (result_id,) = done.result_files
    result = await openai_client.files.retrieve(result_id)
    assert result.purpose == "fine-tune-results"
    csv = base64.b64decode((await openai_client.files.content(result_id)).content).decode()
    assert (
        csv.splitlines()[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
    )
    assert len(csv.splitlines()) == 25

    model = await openai_client.models.retrieve(done.fine_tuned_model)
    assert (model.owned_by, model.shutdown_date) == ("org-standin", "2027-01-14")


async def test_step_and_run_to_completion_drive_one_job(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    train = await _upload(openai_client, qa_dataset(10))
    one = await openai_client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train)
    other = await openai_client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train)
    assert one.model == "gpt-4o-mini-2024-07-18"  # the alias resolves to its snapshot

    assert openai_server.jobs.step(one.id) == "queued"
    assert openai_server.jobs.step(one.id) == "running"
    assert openai_server.jobs.step(one.id) == "succeeded"
    assert (await openai_client.fine_tuning.jobs.retrieve(other.id)).status == "validating_files"
    finished = await openai_client.fine_tuning.jobs.retrieve(one.id)
    assert finished.hyperparameters.n_epochs == 10  # auto: 3 * 10 < 100 -> 100 // 10
    assert (
        finished.fine_tuned_model and finished.fine_tuned_model.split(":")[3] == ""
    )  # empty suffix segment
    with pytest.raises(ValueError):
        openai_server.jobs.step(one.id)
    assert openai_server.jobs.run_to_completion(other.id).status == "succeeded"


@pytest.mark.parametrize(
    ("model", "encoding", "cap"),
    [
        ("gpt-4o-2024-08-06", "o200k_base", 65_536),
        ("gpt-4.1-mini-2025-04-14", "o200k_base", 65_536),
        ("gpt-4o-mini", "o200k_base", 65_536),
        # retired on 2026-10-23: billed as OpenAI did before the shutdown
        pytest.param("gpt-3.5-turbo-0125", "cl100k_base", 16_385, id="retired-gpt-3.5-turbo-0125"),
    ],
)
async def test_trained_tokens_use_the_models_encoding(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI, model: str, encoding: str, cap: int
) -> None:
    if model.startswith("gpt-3.5"):
        openai_server.models.enforce_shutdown_dates = False
    records = [
        chat_example(
            f"Ünïcode {i} — naïve café? 🐈",
            f"réponse {i}",
            "système",
        )
        for i in range(40)
    ]
    records[0]["messages"][1]["name"] = "alice"
    job = await openai_client.fine_tuning.jobs.create(
        model=model, training_file=await _upload(openai_client, records)
    )
    finished = openai_server.jobs.run_to_completion(job.id)
    assert finished.resolved["n_epochs"] == 3  # 3 * 40 = 120 is inside [100, 25000]
    assert finished.trained_tokens == _expected_tokens(records, encoding, 3, cap)


async def test_examples_are_capped_at_the_training_context(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    records = qa_dataset(10)
    records[0] = chat_example("long " * 70_000, "ok")  # ~70k tokens > gpt-4o-mini's 65,536 cap
    job = await openai_client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18",
        training_file=await _upload(openai_client, records),
        hyperparameters={"n_epochs": 1},
    )
    finished = openai_server.jobs.run_to_completion(job.id)
    assert finished.trained_tokens == _expected_tokens(records, "o200k_base", 1, 65_536)
    assert finished.trained_tokens < _expected_tokens(records, "o200k_base", 1, 10**9)


async def test_fewer_than_ten_examples_fails_with_invalid_n_examples(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    job = await openai_client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=await _upload(openai_client, qa_dataset(7))
    )
    assert job.status == "validating_files"  # accepted first, failed while validating, like OpenAI
    openai_server.clock.advance(5)
    failed = await openai_client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert (failed.error.code, failed.error.message, failed.error.param) == (
        "invalid_n_examples",
        "Training file has 7 example(s), but must have at least 10 examples",
        "training_file",
    )
    assert failed.fine_tuned_model is None and failed.trained_tokens is None
    events = (await openai_client.fine_tuning.jobs.list_events(job.id)).data
    assert any(e.level == "error" and "7 example(s)" in e.message for e in events)


@pytest.mark.parametrize(
    ("bad_line", "fragment"),
    [
        ("{not json", "Line 3: invalid JSON"),
        (json.dumps({"messages": []}), "Line 3: key `messages` is missing or empty"),
        (
            json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}),
            "Line 3: messages[0] has an unrecognized role",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
            "Line 3: example has no assistant message",
        ),
        (
            json.dumps(chat_example("hi <|endoftext|>", "ok")),
            "Example 3 message contains an invalid token: <|endoftext|>",
        ),
    ],
)
async def test_malformed_training_file_fails_naming_the_line(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI, bad_line: str, fragment: str
) -> None:
    lines = jsonl(qa_dataset(12)).decode().splitlines()
    lines[2] = bad_line
    uploaded = await openai_client.files.create(
        file=("t.jsonl", "\n".join(lines).encode()), purpose="fine-tune"
    )
    job = await openai_client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=uploaded.id
    )
    openai_server.jobs.step(job.id)
    failed = await openai_client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "invalid_file_format"
    assert failed.error.param == "training_file"
    assert fragment in failed.error.message


async def test_bad_validation_file_fails_with_param_validation_file(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    train = await _upload(openai_client, qa_dataset(10))
    valid = (
        await openai_client.files.create(file=("v.jsonl", b"[1, 2]\n"), purpose="fine-tune")
    ).id
    job = await openai_client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=train, validation_file=valid
    )
    openai_server.jobs.step(job.id)
    failed = await openai_client.fine_tuning.jobs.retrieve(job.id)
    assert failed.error is not None and failed.error.param == "validation_file"
    assert "Line 1" in failed.error.message


async def test_create_rejections_are_400s(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    train = await _upload(openai_client, qa_dataset(10))
    notes = (await openai_client.files.create(file=("n.jsonl", b"{}"), purpose="assistants")).id
    jobs = openai_client.fine_tuning.jobs
    cases = [
        (dict(model="gpt-9-imaginary", training_file=train), "model", "model_not_available"),
        (dict(model="gpt-6-luna", training_file=train), "model", "model_not_available"),
        (
            dict(model="gpt-4o-mini", training_file="file-doesnotexist"),
            "training_file",
            "invalid_file_id",
        ),
        (dict(model="gpt-4o-mini", training_file=notes), "training_file", "invalid_file_purpose"),
        (
            dict(model="gpt-4o-mini", training_file=train, validation_file="file-nope"),
            "validation_file",
            "invalid_file_id",
        ),
        (
            dict(model="gpt-4o-mini", training_file=train, suffix="x" * 65),
            "suffix",
            "string_above_max_length",
        ),
        (
            dict(
                model="gpt-4o-mini", training_file=train, metadata={f"k{i}": "v" for i in range(17)}
            ),
            "metadata",
            "object_above_max_properties",
        ),
        (dict(model="gpt-4o-mini", training_file=train, seed=-1), "seed", "invalid_value"),
        (
            dict(model="gpt-4o-mini", training_file=train, hyperparameters={"n_epochs": 51}),
            "hyperparameters.n_epochs",
            "invalid_value",
        ),
        (
            dict(
                model="gpt-4o-mini",
                training_file=train,
                method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 3}}},
            ),
            "method.dpo.hyperparameters.beta",
            "invalid_value",
        ),
    ]
    for kwargs, param, code in cases:
        with pytest.raises(openai.BadRequestError) as info:
            await jobs.create(**kwargs)  # type: ignore[arg-type]
        assert (info.value.param, info.value.code) == (param, code), kwargs
    assert "not available for fine-tuning" in str(openai_server.exchanges[3].response_json)
    assert openai_server.jobs.jobs == {}

    ok = await jobs.create(
        model="gpt-4o-mini",
        training_file=train,
        suffix="x" * 64,
        metadata={f"k{i}": "v" * 512 for i in range(16)},
    )
    assert ok.status == "validating_files"


async def test_dpo_jobs_validate_preference_data_and_echo_the_method(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    records = [dpo_example(f"q{i}", f"good {i}", f"bad {i}") for i in range(10)]
    job = await openai_client.fine_tuning.jobs.create(
        model="gpt-4.1-mini-2025-04-14",
        training_file=await _upload(openai_client, records),
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}},
    )
    assert job.method is not None and job.method.type == "dpo"
    assert job.method.dpo is not None and job.method.dpo.hyperparameters is not None
    assert job.method.dpo.hyperparameters.beta == 0.2
    finished = openai_server.jobs.run_to_completion(job.id)
    assert finished.status == "succeeded"
    answer = await openai_client.chat.completions.create(
        model=finished.ft_name, messages=[{"role": "user", "content": "q4"}]
    )
    assert answer.choices[0].message.content == "good 4"

    bad = await openai_client.fine_tuning.jobs.create(
        model="gpt-4.1-mini-2025-04-14",
        training_file=await _upload(openai_client, qa_dataset(10)),
        method={"type": "dpo"},
    )
    openai_server.jobs.step(bad.id)
    assert (
        openai_server.jobs.get(bad.id).error["message"].endswith("Line 1: key `input` is missing.")
    )  # type: ignore[index]


async def test_cancel_pause_and_resume(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    train = await _upload(openai_client, qa_dataset(10))
    jobs = openai_client.fine_tuning.jobs
    job = await jobs.create(
        model="gpt-4o-mini", training_file=train, hyperparameters={"n_epochs": 1}
    )

    with pytest.raises(openai.BadRequestError):  # only running jobs can be paused
        await jobs.pause(job.id)
    openai_server.clock.advance(15 + 3)  # validated, queued, 3 of 10 steps done
    paused = await jobs.pause(job.id)
    assert paused.status == "paused"  # type: ignore[comparison-overlap]  # real API; not in the SDK Literal
    openai_server.clock.advance(1000)
    assert openai_server.jobs.get(job.id).steps_done == 3  # no progress while paused
    resumed = await jobs.resume(job.id)
    assert resumed.status == "running"
    assert resumed.estimated_finish == openai_server.clock.timestamp() + 7
    with pytest.raises(openai.BadRequestError):
        await jobs.resume(job.id)
    openai_server.clock.advance(7)
    assert (await jobs.retrieve(job.id)).status == "succeeded"
    with pytest.raises(openai.BadRequestError) as info:
        await jobs.cancel(job.id)
    assert info.value.code == "job_already_completed"

    other = await jobs.create(model="gpt-4o-mini", training_file=train)
    cancelled = await jobs.cancel(other.id)
    assert cancelled.status == "cancelled"
    openai_server.clock.advance(10_000)
    assert (await jobs.retrieve(other.id)).status == "cancelled"
    assert openai_server.jobs.statuses(other.id) == ["validating_files", "cancelled"]
    assert [e.message for e in (await jobs.list_events(other.id, limit=1)).data] == [
        "Fine-tuning job cancelled"
    ]

    with pytest.raises(openai.NotFoundError) as missing:
        await jobs.retrieve("ftjob-nope")
    assert missing.value.param == "fine_tuning_job_id"


async def test_job_list_pagination_and_metadata_filter(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    train = await _upload(openai_client, qa_dataset(10))
    ids = []
    for i in range(5):
        job = await openai_client.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=train, metadata={"guild": "a" if i % 2 == 0 else "b"}
        )
        ids.append(job.id)
    newest_first = ids[::-1]
    page = await openai_client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == newest_first[:2] and page.has_more
    page2 = await openai_client.fine_tuning.jobs.list(limit=2, after=page.data[-1].id)
    assert [j.id for j in page2.data] == newest_first[2:4]
    assert [j.id async for j in await openai_client.fine_tuning.jobs.list(limit=2)] == newest_first
    only_a = await openai_client.fine_tuning.jobs.list(metadata={"guild": "a"})
    assert [j.id for j in only_a.data] == [ids[4], ids[2], ids[0]]
    assert openai_server.exchanges[-1].query == {"metadata[guild]": "a"}


async def test_event_and_checkpoint_pagination(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    job = await openai_client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=await _upload(openai_client, qa_dataset(10)),
        hyperparameters={"n_epochs": 4},
    )
    openai_server.jobs.run_to_completion(job.id)
    everything = [e.id for e in openai_server.jobs.get(job.id).events][::-1]
    first = await openai_client.fine_tuning.jobs.list_events(job.id)  # default limit 20
    assert [e.id for e in first.data] == everything[:20] and first.has_more
    walked = [e.id async for e in await openai_client.fine_tuning.jobs.list_events(job.id, limit=7)]
    assert walked == everything

    checkpoints = await openai_client.fine_tuning.jobs.checkpoints.list(job.id, limit=2)
    assert [c.step_number for c in checkpoints.data] == [40, 30]  # last three epochs, newest first
    assert checkpoints.has_more
    rest = await openai_client.fine_tuning.jobs.checkpoints.list(
        job.id, after=checkpoints.data[-1].id
    )
    assert [c.step_number for c in rest.data] == [20]
    ckpt = rest.data[0]
    assert ckpt.fine_tuned_model_checkpoint.endswith(":ckpt-step-20")
    assert ckpt.metrics.train_loss is not None and ckpt.metrics.step == 20
    assert ckpt.fine_tuning_job_id == job.id
    answer = await openai_client.chat.completions.create(  # checkpoints can be sampled
        model=ckpt.fine_tuned_model_checkpoint,
        messages=[{"role": "user", "content": "what is topic 3?"}],
    )
    assert answer.choices[0].message.content == "topic 3 is fun"


async def test_continue_training_from_a_fine_tuned_model_and_forced_failure(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    train = await _upload(openai_client, qa_dataset(10))
    first = openai_server.jobs.run_to_completion(
        (await openai_client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train)).id
    )
    second = await openai_client.fine_tuning.jobs.create(
        model=first.ft_name, training_file=train, suffix="v2"
    )
    assert second.model == "gpt-4o-mini-2024-07-18"
    openai_server.jobs.fail(second.id, "server_error", "Internal error during training.")
    failed = await openai_client.fine_tuning.jobs.retrieve(second.id)
    assert (
        failed.status == "failed"
        and failed.error is not None
        and failed.error.code == "server_error"
    )
    assert failed.error.param is None

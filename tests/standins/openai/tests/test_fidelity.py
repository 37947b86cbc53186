"""Fidelity of the OpenAI stand-in: the spec validator itself, coverage of every
operation by the teardown check, the sync client in a background thread, and the
founding guide's three steps (upload, fine-tune, chat with the ft: model)."""

from __future__ import annotations

import copy

import pytest
from multidict import CIMultiDict
from openai import AsyncOpenAI, OpenAI

from tests.standins.openai import OpenAIStandin, base_answer
from tests.standins.openai import fixtures as standin_fixtures
from tests.standins.openai.datasets import chat_example, jsonl, qa_dataset
from tests.standins.openai.recording import Exchange
from tests.standins.spec_openai import (
    KNOWN_DEVIATIONS,
    assert_exchanges_conform,
    exchange_violations,
    find_operation,
    load_spec,
)

openai_client = standin_fixtures.openai_client
openai_server = standin_fixtures.openai_server
openai_server_thread = standin_fixtures.openai_server_thread
openai_sync_client = standin_fixtures.openai_sync_client

GUIDE_DATA = [
    chat_example(
        f"What's the capital of country {i}?",
        f"City {i}, as if everyone doesn't know that already.",
        "Marv is a factual chatbot that is also sarcastic.",
    )
    for i in range(10)
] + [
    chat_example(
        "Who wrote 'Romeo and Juliet'?",
        "Oh, just some guy named William Shakespeare.",
        "Marv is a factual chatbot that is also sarcastic.",
    )
]


def _exchange(
    method: str, path: str, status: int, response: object, request: object = None
) -> Exchange:
    return Exchange(
        method=method,
        path=path,
        query={},
        headers=CIMultiDict({"Content-Type": "application/json"}),
        body=b"",
        json=request,
        status=status,
        response_json=response,
    )


def test_operations_resolve_by_method_and_path_template() -> None:
    cases = {
        ("GET", "/v1/files/file-abc/content"): "downloadFile",
        ("DELETE", "/v1/files/file-abc"): "deleteFile",
        ("POST", "/v1/fine_tuning/jobs"): "createFineTuningJob",
        ("GET", "/v1/fine_tuning/jobs/ftjob-1/events"): "listFineTuningEvents",
        ("POST", "/v1/fine_tuning/jobs/ftjob-1/pause"): "pauseFineTuningJob",
        ("DELETE", "/v1/models/ft:gpt-4o-mini:org::abc"): "deleteModel",
    }
    for (method, path), operation_id in cases.items():
        op = find_operation(method, path)
        assert op is not None and op.operation_id == operation_id
    assert find_operation("GET", "/v1/engines") is None
    assert find_operation("PATCH", "/v1/files") is None


def test_spec_is_normalised_for_json_schema() -> None:
    schemas = load_spec()["components"]["schemas"]
    lr = schemas["FineTuneSupervisedHyperparameters"]["properties"]["learning_rate_multiplier"][
        "oneOf"
    ][1]
    assert (
        lr["type"] == "number" and lr["exclusiveMinimum"] == 0 and "minimum" not in lr
    )  # was 3.0-style `true`
    suffix = schemas["CreateFineTuningJobRequest"]["properties"]["suffix"]
    assert {"type": "null"} in suffix["anyOf"]  # was `nullable: true`


def test_validator_reports_schema_and_sdk_violations() -> None:
    job = {
        "object": "fine_tuning.job",
        "id": "ftjob-1",
        "model": "gpt-4o-mini",
        "created_at": 1,
        "finished_at": None,
        "fine_tuned_model": None,
        "organization_id": "org",
        "result_files": [],
        "status": "queued",
        "validation_file": None,
        "training_file": "file-1",
        "hyperparameters": {"n_epochs": "auto"},
        "trained_tokens": None,
        "error": None,
        "seed": 1,
    }
    assert exchange_violations(_exchange("GET", "/v1/fine_tuning/jobs/ftjob-1", 200, job)) == []

    broken = {k: v for k, v in job.items() if k != "seed"} | {"status": "bogus"}
    problems = exchange_violations(_exchange("GET", "/v1/fine_tuning/jobs/ftjob-1", 200, broken))
    assert any("'seed' is a required property" in p for p in problems)
    assert any(p.startswith("response status") for p in problems)
    assert any("does not parse as FineTuningJob" in p for p in problems)

    extra = copy.deepcopy(job) | {"surprise": 1}
    assert any(
        "surprise is not a field of the SDK type" in p
        for p in exchange_violations(_exchange("GET", "/v1/fine_tuning/jobs/ftjob-1", 200, extra))
    )

    paused = job | {"status": "paused"}
    assert (
        exchange_violations(_exchange("POST", "/v1/fine_tuning/jobs/ftjob-1/pause", 200, paused))
        == []
    )
    assert KNOWN_DEVIATIONS

    bad_error = _exchange("GET", "/v1/models/x", 404, {"error": {"message": "no"}})
    assert any("'type' is a required property" in p for p in exchange_violations(bad_error))

    accepted_bad_request = _exchange(
        "POST",
        "/v1/fine_tuning/jobs",
        200,
        job,
        request={"model": "gpt-4o-mini", "training_file": "f", "suffix": "x" * 65},
    )
    assert any(p.startswith("request suffix") for p in exchange_violations(accepted_bad_request))
    exclusive = _exchange(
        "POST",
        "/v1/fine_tuning/jobs",
        200,
        job,
        request={
            "model": "m",
            "training_file": "f",
            "method": {
                "type": "supervised",
                "supervised": {"hyperparameters": {"learning_rate_multiplier": 0}},
            },
        },
    )
    assert exchange_violations(exclusive)  # exclusiveMinimum 0 rejects 0
    with pytest.raises(AssertionError, match="OpenAI spec violations"):
        assert_exchanges_conform([bad_error])


async def test_every_operation_the_standin_serves_is_checked_against_the_spec(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    c = openai_client
    f = await c.files.create(file=("t.jsonl", jsonl(qa_dataset(10))), purpose="fine-tune")
    await c.files.retrieve(f.id)
    await c.files.list(limit=1)
    await c.files.content(f.id)
    job = await c.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=f.id,
        suffix="s",
        seed=3,
        metadata={"k": "v"},
        hyperparameters={"n_epochs": 1},
        integrations=[{"type": "wandb", "wandb": {"project": "p"}}],
    )
    openai_server.clock.advance(16)
    await c.fine_tuning.jobs.pause(job.id)
    await c.fine_tuning.jobs.resume(job.id)
    openai_server.jobs.run_to_completion(job.id)
    await c.fine_tuning.jobs.retrieve(job.id)
    await c.fine_tuning.jobs.list(limit=5, metadata={"k": "v"})
    await c.fine_tuning.jobs.list_events(job.id, limit=3)
    await c.fine_tuning.jobs.checkpoints.list(job.id)
    cancel_me = await c.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=f.id)
    await c.fine_tuning.jobs.cancel(cancel_me.id)
    ft = openai_server.jobs.get(job.id).ft_name
    await c.chat.completions.create(
        model=ft,
        messages=[{"role": "user", "content": "what is topic 1?"}],
        max_completion_tokens=5,
        stop="zz",
        n=1,
        temperature=0,
    )
    stream = await c.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x y"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    [chunk async for chunk in stream]
    await c.moderations.create(input=[{"type": "text", "text": "hello"}])
    await c.models.list()
    await c.models.retrieve("gpt-4o-mini")
    await c.models.delete(ft)
    await c.files.delete(f.id)

    checked = assert_exchanges_conform(
        openai_server.exchanges
    )  # the fixture repeats this at teardown
    assert checked == len(openai_server.exchanges)
    ops = {find_operation(e.method, e.path).operation_id for e in openai_server.exchanges}  # type: ignore[union-attr]
    assert ops == {
        "createFile",
        "retrieveFile",
        "listFiles",
        "downloadFile",
        "deleteFile",
        "createFineTuningJob",
        "pauseFineTuningJob",
        "resumeFineTuningJob",
        "retrieveFineTuningJob",
        "listPaginatedFineTuningJobs",
        "listFineTuningEvents",
        "listFineTuningJobCheckpoints",
        "cancelFineTuningJob",
        "createChatCompletion",
        "createModeration",
        "listModels",
        "retrieveModel",
        "deleteModel",
    }


async def test_founding_guide_three_steps_async(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    # 1. upload the training file
    training = await openai_client.files.create(
        file=("marv.jsonl", jsonl(GUIDE_DATA)), purpose="fine-tune"
    )
    # 2. create the job and wait for it (on the stand-in's clock)
    job = await openai_client.fine_tuning.jobs.create(
        training_file=training.id, model="gpt-4o-mini-2024-07-18"
    )
    while job.status not in ("succeeded", "failed", "cancelled"):
        openai_server.clock.advance(30)
        job = await openai_client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded" and job.fine_tuned_model is not None
    assert job.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:tunecord::")
    # 3. chat with the fine-tuned model
    completion = await openai_client.chat.completions.create(
        model=job.fine_tuned_model,
        messages=[
            {"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."},
            {"role": "user", "content": "Who wrote 'Romeo and Juliet'?"},
        ],
    )
    assert completion.choices[0].message.content == "Oh, just some guy named William Shakespeare."
    assert openai_server.chat_log[-1].model == job.fine_tuned_model


def test_founding_guide_three_steps_with_the_sync_client_in_a_thread(
    openai_server_thread: OpenAIStandin, openai_sync_client: OpenAI
) -> None:
    server, client = openai_server_thread, openai_sync_client
    training = client.files.create(file=("marv.jsonl", jsonl(GUIDE_DATA)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        training_file=training.id, model="gpt-4o-mini", suffix="marv"
    )
    server.clock.advance(5)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "queued"
    server.clock.advance(3600)
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded" and job.fine_tuned_model is not None
    assert job.fine_tuned_model.split(":")[3] == "marv"
    completion = client.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": "capital of country 4?"}]
    )
    assert (
        completion.choices[0].message.content == "City 4, as if everyone doesn't know that already."
    )
    base = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert base.choices[0].message.content == base_answer("gpt-4o-mini-2024-07-18", None, "hi")
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert events[0] == "The job has successfully completed"


def test_fixture_teardown_check_fails_on_crashes_and_spec_violations() -> None:
    server = OpenAIStandin()
    standin_fixtures.check_server(server)  # nothing recorded: passes
    server.exchanges.append(_exchange("GET", "/v1/models/x", 404, {"error": {"message": "no"}}))
    with pytest.raises(AssertionError, match="OpenAI spec violations"):
        standin_fixtures.check_server(server)
    server.validate_spec = False
    standin_fixtures.check_server(server)
    server.internal_errors.append("Traceback: boom")
    with pytest.raises(AssertionError, match="crashed"):
        standin_fixtures.check_server(server)

"""Files, models, chat, auth and error answers of the trainer, through the ``openai`` SDK."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import openai
import pytest

from tests.trainer import test_server as trainer_server
from tests.trainer.test_server import (
    API_KEY,
    BASE,
    SpecRecorder,
    async_client,
    jsonl,
    running_server,
    tiny_engine,
    wait_status,
)
from trainer.config import ConfigError, TrainerConfig, load_config
from trainer.store import Store

config = trainer_server.config  # the shared fixtures (assignment form keeps ruff quiet)
server = trainer_server.server


async def test_files_upload_list_retrieve_content_delete(server: str) -> None:
    recorder = SpecRecorder()
    client = async_client(server, recorder=recorder)
    data = jsonl(10)
    first = await client.files.create(file=("first.jsonl", data), purpose="fine-tune")
    second = await client.files.create(file=("notes.txt", b"hello"), purpose="assistants")
    assert (first.filename, first.bytes, first.purpose, first.status) == ("first.jsonl", len(data), "fine-tune", "processed")

    listed = [f.id async for f in client.files.list()]
    assert listed == [second.id, first.id]  # newest first
    assert [f.id async for f in client.files.list(order="asc")] == [first.id, second.id]
    assert [f.id async for f in client.files.list(purpose="fine-tune")] == [first.id]
    page = await client.files.list(limit=1)
    assert [f.id for f in page.data] == [second.id] and page.has_more
    assert [f.id for f in (await page.get_next_page()).data] == [first.id]

    assert (await client.files.retrieve(first.id)).bytes == len(data)
    assert (await client.files.content(first.id)).content == data

    deleted = await client.files.delete(first.id)
    assert deleted.deleted and deleted.id == first.id
    with pytest.raises(openai.NotFoundError) as err:
        await client.files.retrieve(first.id)
    assert err.value.body["message"] == f"No such File object: {first.id}"
    with pytest.raises(openai.NotFoundError):
        await client.files.content(first.id)
    assert [f.id async for f in client.files.list()] == [second.id]
    assert recorder.operations() >= {"POST /files", "GET /files", "GET /files/{file_id}", "DELETE /files/{file_id}"}


async def test_upload_rejects_bad_purpose_and_non_jsonl_training_file(server: str) -> None:
    client = async_client(server, recorder=SpecRecorder())
    with pytest.raises(openai.BadRequestError) as err:
        await client.files.create(file=("a.jsonl", b"{}"), purpose="bogus")  # type: ignore[arg-type]
    assert err.value.param == "purpose"
    with pytest.raises(openai.BadRequestError) as err:
        await client.files.create(file=("a.csv", b"x,y"), purpose="fine-tune")
    assert err.value.code == "invalid_file_format"


async def test_api_key_is_enforced(server: str) -> None:
    with pytest.raises(openai.AuthenticationError) as err:
        await async_client(server, api_key="sk-wrong-key-123456").models.list()
    assert err.value.code == "invalid_api_key"
    assert "sk-wrong" not in err.value.message  # the key is masked
    async with httpx2.AsyncClient() as raw:  # the SDK always sends a key; a bare client does not
        response = await raw.get(f"{server}/models")
    assert response.status_code == 401
    assert "didn't provide an API key" in response.json()["error"]["message"]
    assert [m.id async for m in async_client(server).models.list()] == [BASE]


async def test_no_api_key_configured_means_open_access(tmp_path: Path) -> None:
    with running_server(TrainerConfig(data_dir=tmp_path / "open"), tiny_engine()) as url:
        models = await async_client(url, api_key="anything").models.list()
    assert [m.id for m in models.data] == [BASE]


async def test_chat_plain_and_streamed_with_base_model(server: str) -> None:
    recorder = SpecRecorder()
    client = async_client(server, recorder=recorder)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there friend"}]
    greedy = {"model": BASE, "messages": messages, "temperature": 0, "max_tokens": 6}
    chat = await client.chat.completions.create(**greedy)
    text = chat.choices[0].message.content
    assert chat.id.startswith("chatcmpl-") and chat.model == BASE and chat.object == "chat.completion"
    assert chat.choices[0].finish_reason in ("stop", "length")
    assert chat.usage.prompt_tokens > 5 and 0 < chat.usage.completion_tokens <= 6
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
    again = await client.chat.completions.create(**greedy)
    assert again.choices[0].message.content == text  # greedy decoding is deterministic

    short = await client.chat.completions.create(model=BASE, messages=messages, max_completion_tokens=2,
                                                 temperature=0.7, top_p=0.9, seed=7)  # fmt: skip
    assert short.usage.completion_tokens <= 2
    seeded = await client.chat.completions.create(model=BASE, messages=messages, max_completion_tokens=2,
                                                  temperature=0.7, top_p=0.9, seed=7)  # fmt: skip
    assert seeded.choices[0].message.content == short.choices[0].message.content

    stream = await client.chat.completions.create(**greedy, stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == chat.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == chat.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])

    plain_stream = await client.chat.completions.create(**greedy, stream=True)
    assert all(c.usage is None for c in [c async for c in plain_stream])
    assert "POST /chat/completions" in recorder.operations()


async def test_chat_errors(server: str) -> None:
    client = async_client(server, recorder=SpecRecorder())
    with pytest.raises(openai.NotFoundError) as err:
        await client.chat.completions.create(model="ft:nope:x::y", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model=BASE, messages=[])
    assert err.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model=BASE, messages=[{"role": "user", "content": "x"}],
                                             temperature=3)  # fmt: skip
    assert err.value.param == "temperature"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
        ({"tool_choice": "none"}, "tool_choice"),
        ({"functions": [{"name": "f", "parameters": {"type": "object"}}]}, "functions"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"logprobs": True, "top_logprobs": 2}, "top_logprobs"),
    ],
)
async def test_chat_refuses_parameters_it_cannot_honour(server: str, extra: dict, param: str) -> None:
    """Tool calls, JSON modes and log-probabilities are a 400 naming the parameter, not plain text."""
    client = async_client(server, recorder=SpecRecorder())
    messages = [{"role": "user", "content": "hi"}]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(model=BASE, messages=messages, max_tokens=2, stream=stream, **extra)
        assert (err.value.param, err.value.code, err.value.type) == (param, "unsupported_parameter", "invalid_request_error")
        assert f"'{param}'" in err.value.message


async def test_chat_accepts_the_harmless_forms_of_those_parameters(server: str) -> None:
    """``response_format: text`` and ``logprobs: false`` ask for what is returned anyway."""
    client = async_client(server, recorder=SpecRecorder())
    chat = await client.chat.completions.create(model=BASE, messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=2, response_format={"type": "text"}, logprobs=False)  # fmt: skip
    assert chat.choices[0].logprobs is None and chat.usage.completion_tokens <= 2


JSON_PARSE_ERROR = {
    "message": (
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
        "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. "
        "If you have trouble figuring out how to fix this, please contact us through our help center at "
        "help.openai.com.)"
    ),
    "type": "invalid_request_error",
    "param": None,
    "code": None,
}


@pytest.mark.parametrize("path", ["/chat/completions", "/fine_tuning/jobs"])
@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b'{"model": "x",', "application/json"), (b"1 2", "application/json"), (b"", "application/json"),
     (b'{"model": NaN}', "application/json"), (b"\xff{}", "application/json"), (b"model=x", "text/plain")],
)  # fmt: skip
async def test_malformed_json_body_gets_openais_parse_error(server: str, path: str, body: bytes,
                                                            content_type: str) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": content_type}
    async with httpx2.AsyncClient() as raw:
        response = await raw.post(f"{server}{path}", content=body, headers=headers)
        assert (response.status_code, response.json()) == (400, {"error": JSON_PARSE_ERROR})
        unauthorised = await raw.post(f"{server}{path}", content=body, headers={"Content-Type": content_type})
        assert unauthorised.status_code == 401  # the key is checked before the body


async def test_base_model_created_is_stable_across_restarts(config: TrainerConfig) -> None:
    with running_server(config, tiny_engine()) as url:
        client = async_client(url)
        first = {m.id: m.created for m in (await client.models.list()).data}
        assert (await client.models.retrieve(BASE)).created == first[BASE]
    while int(time.time()) <= first[BASE]:  # a restart in a later second must not move it
        await asyncio.sleep(0.05)
    with running_server(config, tiny_engine()) as url:
        client = async_client(url)
        assert {m.id: m.created for m in (await client.models.list()).data} == first
        assert (await client.models.retrieve(BASE)).created == first[BASE]


async def test_models_retrieve_and_delete(server: str, config: TrainerConfig) -> None:
    recorder = SpecRecorder()
    client = async_client(server, recorder=recorder)
    upload = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id,
                                               hyperparameters={"n_epochs": 1, "batch_size": 5})  # fmt: skip
    done = await wait_status(client, job.id, {"succeeded", "failed"})
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model.endswith(f"::{job.id[6:14]}")  # empty suffix segment

    model = await client.models.retrieve(done.fine_tuned_model)
    assert (model.id, model.owned_by) == (done.fine_tuned_model, "testorg")
    base = await client.models.retrieve(BASE)
    assert base.owned_by == "system"
    with pytest.raises(openai.PermissionDeniedError):
        await client.models.delete(BASE)

    store = Store(config.db_path)
    adapter_dir = store.get_model(done.fine_tuned_model).adapter_dir
    store.close()
    assert adapter_dir.is_dir()
    deleted = await client.models.delete(done.fine_tuned_model)
    assert deleted.deleted and deleted.id == done.fine_tuned_model
    with pytest.raises(openai.NotFoundError) as err:
        await client.models.retrieve(done.fine_tuned_model)
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        await client.models.delete(done.fine_tuned_model)
    assert [m.id async for m in client.models.list()] == [BASE]
    assert not adapter_dir.exists()
    assert "DELETE /models/{model}" in recorder.operations()


async def _failed_job(client: openai.AsyncOpenAI, content: bytes) -> openai.types.fine_tuning.FineTuningJob:
    upload = await client.files.create(file=("t.jsonl", content), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id)
    return await wait_status(client, job.id, {"succeeded", "failed"})


async def test_too_few_examples_fails_with_invalid_n_examples(server: str) -> None:
    client = async_client(server, recorder=SpecRecorder())
    job = await _failed_job(client, jsonl(7))
    assert job.status == "failed"
    assert (job.error.code, job.error.param) == ("invalid_n_examples", "training_file")
    assert job.error.message == "Training file has 7 example(s), but must have at least 10 examples"
    events = [e async for e in client.fine_tuning.jobs.list_events(job.id)]
    assert events[0].level == "error" and "at least 10 examples" in events[0].message


async def test_malformed_line_fails_naming_the_line(server: str) -> None:
    client = async_client(server, recorder=SpecRecorder())
    lines = jsonl(12).decode().splitlines()
    lines[2] = '{"messages": [{"role": "user", "content": "hi"}'  # truncated JSON
    lines[5] = json.dumps({"messages": [{"role": "user", "content": "no answer"}]})
    job = await _failed_job(client, ("\n".join(lines) + "\n").encode())
    assert (job.error.code, job.error.param) == ("invalid_training_file", "training_file")
    assert "Line 3: not valid JSON" in job.error.message
    assert "line 6: the example has no assistant message" in job.error.message


async def test_job_create_errors(server: str) -> None:
    client = async_client(server, recorder=SpecRecorder())
    good = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
    other = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="assistants")
    cases = [
        ({"training_file": "file-missing"}, "training_file", "file_not_found"),
        ({"training_file": other.id}, "training_file", "invalid_file_purpose"),
        ({"training_file": good.id, "suffix": "x" * 65}, "suffix", "string_above_max_length"),
        ({"training_file": good.id, "model": "gpt-4o-mini"}, "model", "model_not_available"),
        ({"training_file": good.id, "hyperparameters": {"n_epochs": 51}}, "hyperparameters.n_epochs", None),
        ({"training_file": good.id, "method": {"type": "dpo"}}, "method.type", None),
        ({"training_file": good.id, "validation_file": "file-nope"}, "validation_file", "file_not_found"),
    ]
    for overrides, param, code in cases:
        kwargs = {"model": BASE, **overrides}
        with pytest.raises(openai.BadRequestError) as err:
            await client.fine_tuning.jobs.create(**kwargs)
        assert (err.value.param, err.value.code) == (param, code), overrides
    with pytest.raises(openai.NotFoundError):
        await client.fine_tuning.jobs.retrieve("ftjob-nope")
    assert [j async for j in client.fine_tuning.jobs.list()] == []


@pytest.mark.parametrize("path", ["/nope", "/fine_tuning/jobs/ftjob-x/pause"])
async def test_unknown_urls_answer_in_openai_shape(server: str, path: str) -> None:
    client = async_client(server)
    with pytest.raises(openai.NotFoundError) as err:
        await client.post(path, cast_to=object, body={})
    assert err.value.body["message"].startswith("Invalid URL (POST /v1")
    assert API_KEY not in err.value.message


def test_config_flags_override_env_over_defaults() -> None:
    assert load_config([], env={}) == TrainerConfig()
    assert TrainerConfig().host == "127.0.0.1" and TrainerConfig().port == 8000
    env = {"TRAINER_HOST": "0.0.0.0", "TRAINER_PORT": "9001", "TRAINER_DATA_DIR": "/srv/t", "TRAINER_API_KEY": "k"}
    from_env = load_config([], env=env)
    assert (from_env.host, from_env.port, from_env.data_dir, from_env.api_key) == ("0.0.0.0", 9001, Path("/srv/t"), "k")
    flags = load_config(["--port", "7000", "--data-dir", "/d", "--api-key", "f", "--org", "guild"], env=env)
    assert (flags.host, flags.port, flags.data_dir, flags.api_key, flags.org) == ("0.0.0.0", 7000, Path("/d"), "f", "guild")


def test_chat_backend_and_format_settings_are_checked() -> None:
    assert (TrainerConfig().chat_backend, TrainerConfig().chat_format) == ("auto", "q8_0")
    env = {"TRAINER_CHAT_BACKEND": "Torch", "TRAINER_CHAT_FORMAT": "f16"}
    assert (load_config([], env=env).chat_backend, load_config([], env=env).chat_format) == ("torch", "f16")
    assert load_config(["--chat-format", "q4_0"], env=env).chat_format == "q4_0"
    with pytest.raises(ConfigError, match="TRAINER_CHAT_FORMAT .* must be one of q8_0, q4_0, f16, bf16, f32, got 'q4_k'"):
        load_config(["--chat-format", "q4_k"], env={})
    with pytest.raises(ConfigError, match="TRAINER_CHAT_BACKEND .* must be one of auto, llama, torch"):
        load_config([], env={"TRAINER_CHAT_BACKEND": "gpu"})


async def test_bad_validation_file_fails_with_its_param_and_warnings_become_events(server: str) -> None:
    client = async_client(server, recorder=SpecRecorder())
    train_lines = jsonl(10).decode().splitlines()
    train_lines[4] = train_lines[4].replace("pong 4", "pong 4 <|endoftext|>")
    train = await client.files.create(file=("t.jsonl", ("\n".join(train_lines) + "\n").encode()), purpose="fine-tune")
    unusable = await client.files.create(file=("v.jsonl", b'{"messages": []}\n'), purpose="fine-tune")
    assert unusable.status == "error"  # no line is an example: refused when a job names it
    with pytest.raises(openai.BadRequestError) as err:
        await client.fine_tuning.jobs.create(model=BASE, training_file=train.id, validation_file=unusable.id)
    assert (err.value.param, err.value.code) == ("validation_file", "invalid_file_status")
    bad_valid = await client.files.create(file=("v.jsonl", jsonl(1) + b'{"messages": []}\n'), purpose="fine-tune")
    assert bad_valid.status == "processed"  # its first line is an example; the job's full check fails
    job = await client.fine_tuning.jobs.create(model=BASE, training_file=train.id,
                                               validation_file=bad_valid.id)  # fmt: skip
    failed = await wait_status(client, job.id, {"succeeded", "failed"})
    assert (failed.error.code, failed.error.param) == ("invalid_validation_file", "validation_file")
    assert "Line 2: 'messages' must be a non-empty list" in failed.error.message

    ok = await client.fine_tuning.jobs.create(model=BASE, training_file=train.id,
                                              hyperparameters={"n_epochs": 1, "batch_size": 5})  # fmt: skip
    assert (await wait_status(client, ok.id, {"succeeded", "failed"})).status == "succeeded"
    warnings = [e async for e in client.fine_tuning.jobs.list_events(ok.id) if e.level == "warn"]
    assert [e.message for e in warnings] == [
        "Warning: line 5: contains special-token text '<|endoftext|>', which providers may reject"
    ]


async def test_python_dash_m_trainer_serves_with_env_and_flags(tmp_path: Path) -> None:
    """The real entry point: env vars and flags reach the server; the data dir is created."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TRAINER_API_KEY": "sk-from-env", "TRAINER_DATA_DIR": str(tmp_path / "from-env")}
    process = subprocess.Popen([sys.executable, "-m", "trainer", "--port", str(port), "--org", "guild"],
                               env=env, cwd=tmp_path)  # fmt: skip
    try:
        client = async_client(f"http://127.0.0.1:{port}/v1", api_key="sk-from-env")
        deadline = time.monotonic() + 60
        while True:
            try:
                models = await client.models.list()
                break
            except openai.APIConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "python -m trainer did not start"
                await asyncio.sleep(0.2)
        assert all(m.owned_by == "system" for m in models.data)
        with pytest.raises(openai.AuthenticationError):
            await async_client(f"http://127.0.0.1:{port}/v1", api_key="sk-other").models.list()
        assert (tmp_path / "from-env" / "trainer.sqlite3").is_file()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after shutting down

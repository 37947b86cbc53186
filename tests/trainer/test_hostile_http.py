"""The trainer's HTTP surface against hostile and careless callers, over real HTTP.

A real uvicorn server (the harness of ``tests.trainer.test_server``) with the tiny real
engine. Raw sockets where the point is *when* the server answers: a refusal must come
before the body has been sent, so it cannot have been read.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from tests.trainer import test_server as trainer_server
from tests.trainer.test_server import (
    API_KEY,
    BASE,
    async_client,
    jsonl,
    running_server,
    tiny_engine,
)
from trainer import ids
from trainer.config import MAX_JSON_BODY_BYTES, ConfigError, TrainerConfig, check_exposure
from trainer.server import create_app
from trainer.store import JobRecord, Store, new_event

config = trainer_server.config  # the shared fixtures (assignment form keeps ruff quiet)
server = trainer_server.server

AUTH = {"Authorization": f"Bearer {API_KEY}"}

# ----------------------------------------------------------------------------- raw HTTP


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response with a ``content-length``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def answer_before_body(url: str, method: str, path: str, headers: dict[str, str], sent: bytes = b"",
                       *, chunked: bool = False) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """Send the head of a request and only ``sent`` of its body, then read the answer.

    The server must answer without the rest of the body (30 s socket timeout otherwise).
    """
    port = _port(url)
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if "Host" not in headers:
        head = head.replace("\r\n", f"\r\nHost: 127.0.0.1:{port}\r\n", 1)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n")
        if sent:
            try:
                if chunked:
                    for start in range(0, len(sent), 65536):
                        piece = sent[start : start + 65536]
                        sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                else:
                    sock.sendall(sent)
            except OSError:
                pass  # the server may have answered already; the answer is what matters
        status, _, body = _read_response(sock)
    return status, json.loads(body)


# ----------------------------------------------------------------------------- 1. unencodable text

SURROGATE_CASES = [
    # (path, body template with TRAIN for a real file id, expected param)
    ("/fine_tuning/jobs", '{"model": "MODEL", "training_file": "TRAIN", "metadata": {"k": "\\ud800"}}', "metadata.k"),
    ("/fine_tuning/jobs", '{"model": "MODEL", "training_file": "TRAIN", "metadata": {"\\udc00": "v"}}',
     "metadata.\\udc00"),
    ("/fine_tuning/jobs", '{"model": "MODEL", "training_file": "TRAIN", "suffix": "bot\\ud800"}', "suffix"),
    ("/fine_tuning/jobs", '{"model": "\\ud800", "training_file": "TRAIN"}', "model"),
    ("/fine_tuning/jobs", '{"model": "MODEL", "training_file": "TRAIN\\udfff"}', "training_file"),
    ("/fine_tuning/jobs", '{"model": "MODEL", "training_file": "TRAIN", "hyperparameters": {"\\ud800": 1}}',
     "hyperparameters.\\ud800"),
    ("/chat/completions", '{"model": "MODEL", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
     "messages[0].content"),
    ("/chat/completions", '{"model": "MODEL", "messages": [{"role": "user", "content": [{"type": "text", '
     '"text": "\\udbff"}]}]}', "messages[0].content[0].text"),
    ("/chat/completions", '{"model": "MODEL\\ud800", "messages": [{"role": "user", "content": "hi"}]}', "model"),
    ("/chat/completions", '{"model": "MODEL", "stop": ["\\ud800"], "messages": [{"role": "user", "content": "x"}]}',
     "stop[0]"),
]  # fmt: skip


async def test_unencodable_strings_are_refused_before_anything_is_written(server: str, config: TrainerConfig) -> None:
    client = async_client(server)
    train = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
    async with httpx2.AsyncClient(timeout=60) as raw:
        for path, template, param in SURROGATE_CASES:
            body = template.replace("MODEL", BASE).replace("TRAIN", train.id)
            response = await raw.post(f"{server}{path}", content=body.encode(),
                                      headers={**AUTH, "Content-Type": "application/json"})  # fmt: skip
            error = response.json()["error"]
            assert (response.status_code, error["code"], error["param"]) == (400, "invalid_unicode", param), body
            assert "lone surrogate" in error["message"] and error["type"] == "invalid_request_error"
    assert [j async for j in client.fine_tuning.jobs.list()] == []  # nothing stored...
    assert not config.jobs_dir.exists() or not any(config.jobs_dir.iterdir())  # ...and no folder left
    # listing, retrieving and cancelling keep working
    job = await client.fine_tuning.jobs.create(model=BASE, training_file=train.id, metadata={"k": "ok"})
    assert [j.id async for j in client.fine_tuning.jobs.list(metadata={"k": "ok"})] == [job.id]
    assert (await client.fine_tuning.jobs.retrieve(job.id)).metadata == {"k": "ok"}
    assert (await client.fine_tuning.jobs.cancel(job.id)).status == "cancelled"


def _poisoned_job(store: Store, tmp: Path) -> str:
    """A job row as an older server stored it: lone surrogates in its JSON columns (metadata,
    error, event data; SQLite's text columns cannot hold one)."""
    job_id = ids.job_id()
    store.add_job(JobRecord(
        id=job_id, created_at=ids.now(), model=BASE, training_file="file-x", validation_file=None,
        suffix="s", seed=1, metadata={"k": "\ud800"}, hyperparameters={}, status="failed",
        error={"code": "x", "message": "bad \ud800", "param": None}, model_name=f"ft:{BASE}:o:s:{job_id[6:14]}",
        fine_tuned_model=None, finished_at=ids.now(), trained_tokens=None, result_files=[], estimated_finish=None,
        output_dir=tmp / job_id,
    ), [new_event(job_id, "quoted", data={"line": "\ud800"})])  # fmt: skip
    return job_id


async def test_a_stored_lone_surrogate_cannot_break_listing(config: TrainerConfig) -> None:
    """Rows written before the check (or text quoted from a file) still render: as JSON escapes."""
    config.data_dir.mkdir(parents=True)
    store = Store(config.db_path)
    job_id = _poisoned_job(store, config.data_dir)
    store.close()
    with running_server(config, tiny_engine()) as url:
        client = async_client(url)
        assert [j.id async for j in client.fine_tuning.jobs.list()] == [job_id]
        job = await client.fine_tuning.jobs.retrieve(job_id)
        assert job.metadata == {"k": "\ud800"} and job.error.message == "bad \ud800"
        assert [e.data async for e in client.fine_tuning.jobs.list_events(job_id)] == [{"line": "\ud800"}]
        with pytest.raises(openai.BadRequestError) as err:
            await client.fine_tuning.jobs.cancel(job_id)
        assert "already finished" in err.value.message
        async with httpx2.AsyncClient() as raw:
            text = (await raw.get(f"{url}/fine_tuning/jobs/{job_id}", headers=AUTH)).content
        assert b'"k":"\\ud800"' in text  # the escape, valid JSON and valid UTF-8
        text.decode("utf-8")


# ----------------------------------------------------------------------------- 2. before the body

MB = 1024 * 1024


def test_refusals_come_before_the_body_is_read(server: str, config: TrainerConfig) -> None:
    """401, 413, 421 and 403 answer after 64 KiB of a body declared 300-700 MB: nothing waited for it."""
    multipart = {"Content-Type": "multipart/form-data; boundary=xyz"}
    json_type = {"Content-Type": "application/json"}
    start = b'{"model": "x", "messages": [{"role": "user", "content": "' + b"a" * 65536
    cases = [
        ("POST", "/v1/files", {**multipart, "Content-Length": str(300 * MB)}, 401),
        ("POST", "/v1/chat/completions", {**json_type, "Content-Length": str(300 * MB)}, 401),
        ("POST", "/v1/fine_tuning/jobs", {**json_type, "Transfer-Encoding": "chunked"}, 401),
        ("POST", "/v1/chat/completions", {**json_type, "Content-Length": str(300 * MB),
                                          "Authorization": "Bearer sk-wrong-key-12345"}, 401),  # fmt: skip
        ("POST", "/v1/files", {**multipart, **AUTH, "Content-Length": str(700 * MB)}, 413),
        ("POST", "/v1/chat/completions", {**json_type, **AUTH, "Content-Length": str(300 * MB)}, 413),
        ("POST", "/v1/files", {**multipart, **AUTH, "Content-Length": str(300 * MB), "Host": "evil.example"}, 421),
        ("POST", "/v1/files", {**multipart, **AUTH, "Content-Length": str(300 * MB),
                               "Origin": "http://evil.example"}, 403),  # fmt: skip
        ("POST", "/v1/files", {**multipart, **AUTH, "Content-Length": str(300 * MB), "Sec-Fetch-Site": "cross-site"},
         403),
    ]  # fmt: skip
    for method, path, headers, status in cases:
        got, body = answer_before_body(server, method, path, headers, start,
                                       chunked=headers.get("Transfer-Encoding") == "chunked")  # fmt: skip
        assert got == status, (path, headers, body)
        assert set(body["error"]) == {"message", "type", "param", "code"}
    assert not config.files_dir.exists() or not any(config.files_dir.iterdir())


def test_a_chunked_json_body_is_cut_at_the_limit(server: str) -> None:
    """No ``Content-Length``: the body is counted as it is read and refused past the limit."""
    body = b'{"model": "x", "messages": [{"role": "user", "content": "' + b"a" * (MAX_JSON_BODY_BYTES + 65536)
    headers = {**AUTH, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    status, answer = answer_before_body(server, "POST", "/v1/chat/completions", headers, body, chunked=True)
    assert (status, answer["error"]["code"]) == (413, "request_too_large")
    assert str(MAX_JSON_BODY_BYTES) in answer["error"]["message"]


async def test_an_oversized_json_body_is_a_413_through_the_sdk(server: str) -> None:
    client = async_client(server)
    with pytest.raises(openai.APIStatusError) as err:
        await client.chat.completions.create(model=BASE, messages=[{"role": "user", "content": "x" * (5 * MB)}])
    assert (err.value.status_code, err.value.code) == (413, "request_too_large")
    assert (await client.models.list()).data  # the connection and the server are fine


# ----------------------------------------------------------------------------- 4. exposure


async def test_health_is_open_and_says_nothing_else_needs_the_key(server: str) -> None:
    base = server.removesuffix("/v1")
    async with httpx2.AsyncClient() as raw:
        health = await raw.get(f"{base}/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        for path in ("/openapi.json", "/docs", "/v1/models", "/v1/nope"):
            response = await raw.get(f"{base}{path}")
            assert response.status_code == 401, path  # not even whether the URL exists
            assert "didn't provide an API key" in response.json()["error"]["message"]
        schema = await raw.get(f"{base}/openapi.json", headers=AUTH)
        assert schema.status_code == 200 and "/v1/chat/completions" in schema.json()["paths"]


async def test_host_header_must_name_this_server(tmp_path: Path) -> None:
    """DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 still sends Host: evil.example."""
    config = TrainerConfig(data_dir=tmp_path / "t", allowed_hosts=("trainer.lan",))  # no key: loopback only
    with running_server(config, tiny_engine()) as url:
        port = _port(url)
        async with httpx2.AsyncClient() as raw:
            for host in (f"localhost:{port}", "LOCALHOST.", f"127.0.0.1:{port}", f"[::1]:{port}", "10.1.2.3",
                         "trainer.lan", f"Trainer.LAN:{port}"):  # fmt: skip
                response = await raw.get(f"{url}/models", headers={"Host": host})
                assert response.status_code == 200, host
            for host in ("evil.example", f"evil.example:{port}", "localhost.evil.example", "127.0.0.1.nip.io"):
                for path in ("/v1/models", "/health"):
                    response = await raw.get(f"{url.removesuffix('/v1')}{path}", headers={"Host": host})
                    assert response.status_code == 421, (host, path)
                    assert response.json()["error"]["code"] == "host_not_allowed"


async def test_cross_site_browser_requests_are_refused(tmp_path: Path) -> None:
    """A keyless loopback server: a web page cannot upload, create or read through the browser."""
    config = TrainerConfig(data_dir=tmp_path / "t")
    with running_server(config, tiny_engine()) as url:
        own = f"http://127.0.0.1:{_port(url)}"
        files = {"file": ("t.jsonl", jsonl(10))}
        async with httpx2.AsyncClient() as raw:
            for browser in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                            {"Sec-Fetch-Site": "same-site"}, {"Origin": "http://127.0.0.1:1"}):  # fmt: skip
                upload = await raw.post(f"{url}/files", files=files, data={"purpose": "fine-tune"}, headers=browser)
                assert (upload.status_code, upload.json()["error"]["code"]) == (403, "cross_site_request"), browser
                create = await raw.post(f"{url}/fine_tuning/jobs", json={"model": BASE}, headers=browser)
                assert create.status_code == 403
                assert (await raw.get(f"{url}/files", headers=browser)).status_code == 403
            assert (await raw.get(f"{url}/files")).json()["data"] == []  # nothing was stored
            for same in ({"Origin": own}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}):
                upload = await raw.post(f"{url}/files", files=files, data={"purpose": "fine-tune"}, headers=same)
                assert upload.status_code == 200, same


def test_exposure_rules() -> None:
    for host in ("0.0.0.0", "::", "192.168.1.5", "myhost.lan"):
        for key in (None, ""):
            with pytest.raises(ConfigError, match=f"Refusing to serve on {host}"):
                check_exposure(TrainerConfig(host=host, api_key=key))
        assert check_exposure(TrainerConfig(host=host, api_key="sk-secret")) == []
    with pytest.raises(ConfigError, match="Refusing"):
        create_app(TrainerConfig(host="0.0.0.0"), tiny_engine())
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert check_exposure(TrainerConfig(host=host)) == []
        warnings = check_exposure(TrainerConfig(host=host, api_key=""))
        assert len(warnings) == 1 and "WITHOUT a key" in warnings[0]
    with pytest.raises(ConfigError, match="TRAINER_ALLOWED_HOSTS"):
        check_exposure(TrainerConfig(allowed_hosts=("*",)))


def _trainer(args: list[str], env: dict[str, str], tmp_path: Path, data: str = "data") -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINER_")}
    full_env.update(TRAINER_DATA_DIR=str(tmp_path / data), **env)
    return subprocess.Popen([sys.executable, "-m", "trainer", *args], env=full_env, cwd=Path(__file__).parents[2],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--host", "0.0.0.0"], {}, "Refusing to serve on 0.0.0.0 with no API key"),
        (["--host", "0.0.0.0"], {"TRAINER_API_KEY": ""}, "with an empty TRAINER_API_KEY"),
        ([], {"TRAINER_HOST": "192.168.7.7", "TRAINER_API_KEY": "  "}, "Refusing to serve on 192.168.7.7"),
        (["--api-key", "two words"], {}, "--api-key must be printable ASCII without spaces"),
        ([], {"TRAINER_PORT": "eighty"}, "TRAINER_PORT (--port) must be an integer"),
        (["--chat-slots", "0"], {}, "TRAINER_CHAT_SLOTS (--chat-slots) must be between 1"),
    ],
)
def test_python_dash_m_trainer_refuses_unsafe_settings(tmp_path: Path, args: list[str], env: dict[str, str],
                                                       message: str) -> None:  # fmt: skip
    process = _trainer(args, env, tmp_path)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert message in stderr and "Traceback" not in stderr
    assert not (tmp_path / "data").exists()  # refused before anything was created


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        process.terminate()
        process.communicate(timeout=60)


def _stderr_until(process: subprocess.Popen[str], marker: str) -> str:
    assert process.stderr is not None
    seen = ""
    while marker not in seen:
        line = process.stderr.readline()
        assert line, f"trainer exited before {marker!r}:\n{seen}"
        seen += line
    return seen


def test_api_key_flag_warns_a_busy_folder_refuses_and_an_empty_key_serves_loopback_only(tmp_path: Path,
                                                                          stopped: list[Any]) -> None:  # fmt: skip
    port = _free_port()
    flagged = _trainer(["--port", str(port), "--api-key", "sk-on-the-command-line"], {}, tmp_path)
    stopped.append(flagged)
    log = _stderr_until(flagged, "Uvicorn running")
    assert "--api-key puts the key in the process list" in log and "TRAINER_API_KEY" in log
    assert "sk-on-the-command-line" not in log
    assert httpx2.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401
    second = _trainer(["--port", str(_free_port())], {"TRAINER_API_KEY": "sk-other"}, tmp_path)
    _, stderr = second.communicate(timeout=120)  # the same data folder: refused with a message
    assert second.returncode == 2 and "is in use by another trainer" in stderr and "Traceback" not in stderr

    port = _free_port()
    empty = _trainer(["--port", str(port)], {"TRAINER_API_KEY": ""}, tmp_path, data="other")
    stopped.append(empty)
    log = _stderr_until(empty, "Uvicorn running")
    assert "set but empty: serving WITHOUT a key, on loopback only" in log
    assert httpx2.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200


# ----------------------------------------------------------------------------- 5. accepted, then 500


async def test_sampling_extremes_are_greedy_and_seeds_are_64_bit(server: str) -> None:
    client = async_client(server)
    prompt = [{"role": "user", "content": "hello there friend"}]

    async def reply(**params: Any) -> str:
        chat = await client.chat.completions.create(model=BASE, messages=prompt, max_tokens=8, **params)
        return chat.choices[0].message.content or ""

    greedy = await reply(temperature=0)
    assert await reply(top_p=0) == greedy  # OpenAI accepts top_p 0: only the top token
    assert await reply(temperature=1e-300) == greedy
    assert await reply(temperature=1e-300, top_p=1e-300) == greedy
    for seed in (-(2**63), -1, 2**63 - 1):
        assert await reply(seed=seed, temperature=0.8)
    for seed in (2**63, 2**70, -(2**63) - 1):
        with pytest.raises(openai.BadRequestError) as err:
            await reply(seed=seed)
        assert (err.value.param, err.value.code) == ("seed", "integer_out_of_range")


async def test_job_parameters_that_used_to_fail_later(server: str) -> None:
    client = async_client(server)
    train = await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
    bad_suffixes = ["a\x00b", "a\nb", "a?b", "a#b", "a%b", "a/b", "..", "a..b", "a b", " ", "a.b", "é", ""]
    for suffix in bad_suffixes:
        with pytest.raises(openai.BadRequestError) as err:
            await client.fine_tuning.jobs.create(model=BASE, training_file=train.id, suffix=suffix)
        assert (err.value.param, err.value.code) == ("suffix", "invalid_suffix"), suffix
    for multiplier in (1e300, 100.5, 0, -1):
        with pytest.raises(openai.BadRequestError) as err:
            await client.fine_tuning.jobs.create(model=BASE, training_file=train.id,
                                                 hyperparameters={"learning_rate_multiplier": multiplier})  # fmt: skip
        assert err.value.param == "hyperparameters.learning_rate_multiplier", multiplier
    with pytest.raises(openai.BadRequestError) as err:
        await client.fine_tuning.jobs.create(model=BASE, training_file=train.id, hyperparameters={"n_epochs": 10**400})
    assert err.value.param == "hyperparameters.n_epochs"
    async with httpx2.AsyncClient() as raw:
        huge = b'{"model": "MODEL", "training_file": "TRAIN", "hyperparameters": {"learning_rate_multiplier": 1e400}}'
        content = huge.replace(b"MODEL", BASE.encode()).replace(b"TRAIN", train.id.encode())
        response = await raw.post(f"{server}/fine_tuning/jobs", headers=AUTH, content=content)
        assert (response.status_code, response.json()["error"]["param"]) == (
            400, "hyperparameters.learning_rate_multiplier")  # fmt: skip
        many = "&".join(f"metadata[k{i}]=v" for i in range(17))
        response = await raw.get(f"{server}/fine_tuning/jobs?{many}", headers=AUTH)
        assert (response.status_code, response.json()["error"]["param"]) == (400, "metadata")
        assert "at most 16 metadata filters" in response.json()["error"]["message"]
        many = "&".join(f"metadata[k{i}]=v" for i in range(1200))
        response = await raw.get(f"{server}/fine_tuning/jobs?{many}", headers=AUTH)
        assert response.status_code == 400  # refused by the server or by uvicorn's request-line limit: no 500
    assert [j async for j in client.fine_tuning.jobs.list(metadata={f"k{i}": "v" for i in range(16)})] == []
    assert [j async for j in client.fine_tuning.jobs.list()] == []
    ok = await client.fine_tuning.jobs.create(model=BASE, training_file=train.id, suffix="Guild_bot-2",
                                              hyperparameters={"learning_rate_multiplier": 100})  # fmt: skip
    assert ok.fine_tuned_model is None and ok.hyperparameters.learning_rate_multiplier == 100
    await client.fine_tuning.jobs.cancel(ok.id)


def _multipart(filename: bytes) -> tuple[bytes, str]:
    body = (b"--xyz\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n"
            b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename + b"\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + jsonl(10) + b"\r\n--xyz--\r\n")  # fmt: skip
    return body, "multipart/form-data; boundary=xyz"


async def test_file_names_must_be_printable(server: str) -> None:
    client = async_client(server)
    async with httpx2.AsyncClient() as raw:
        for name in ("a\x00b.jsonl", "evil\u202egnp.jsonl", "x\u2066.jsonl", "esc\x1b[31m.jsonl", "a\u2028b.jsonl",
                     "tab\there.jsonl", "x" * 250 + ".jsonl"):  # fmt: skip
            body, content_type = _multipart(name.encode())
            response = await raw.post(f"{server}/files", content=body,
                                      headers={**AUTH, "Content-Type": content_type})  # fmt: skip
            error = response.json()["error"]
            assert (response.status_code, error["param"], error["code"]) == (400, "file", "invalid_file_name"), name
    assert [f async for f in client.files.list()] == []
    fine = await client.files.create(file=("données 😀 (1).jsonl", jsonl(10)), purpose="fine-tune")
    assert (await client.files.retrieve(fine.id)).filename == "données 😀 (1).jsonl"


async def test_unusable_fine_tune_uploads_are_marked_error(server: str) -> None:
    client = async_client(server)
    for content in (b"", b"\x00\x01\x02 binary", b"\n\n  \n"):
        upload = await client.files.create(file=("t.jsonl", content), purpose="fine-tune")
        assert upload.status == "error", content
        with pytest.raises(openai.BadRequestError) as err:
            await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id)
        assert err.value.param == "training_file"
    assert (await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")).status == "processed"


def test_config_reads_the_new_settings() -> None:
    from trainer.config import load_config

    env = {"TRAINER_ALLOWED_HOSTS": "Trainer.LAN, bot.internal.", "TRAINER_CHAT_SLOTS": "3", "TRAINER_CHAT_QUEUE": "0",
           "TRAINER_API_KEY": "  sk-padded  "}  # fmt: skip
    loaded = load_config([], env=env)
    assert loaded.allowed_hosts == ("trainer.lan", "bot.internal")
    assert (loaded.chat_slots, loaded.chat_queue, loaded.api_key) == (3, 0, "sk-padded")
    assert load_config(["--chat-queue", "5"], env=env).chat_queue == 5
    assert load_config([], env={"TRAINER_API_KEY": ""}).api_key == ""
    assert load_config([], env={}).api_key is None

"""Errors, authentication, the training_not_available switch and injected faults:
what the real SDK raises (and how it retries) against the OpenAI stand-in."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from tests.standins.openai import TRAINING_NOT_AVAILABLE_MESSAGE, OpenAIStandin
from tests.standins.openai import fixtures as standin_fixtures
from tests.standins.openai.datasets import jsonl, qa_dataset

openai_client = standin_fixtures.openai_client
openai_server = standin_fixtures.openai_server


@pytest.fixture
async def make_client(openai_server: OpenAIStandin) -> AsyncIterator:
    clients: list[AsyncOpenAI] = []

    def make(**options: object) -> AsyncOpenAI:
        options.setdefault("api_key", openai_server.config.api_key)
        client = AsyncOpenAI(base_url=openai_server.base_url, **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_missing_and_wrong_api_keys_are_401(
    openai_server: OpenAIStandin, make_client
) -> None:
    with pytest.raises(openai.AuthenticationError) as missing:
        # the SDK refuses an empty key, so blank the header it would send
        await make_client(default_headers={"Authorization": ""}).models.list()
    assert "You didn't provide an API key" in missing.value.body["message"]  # type: ignore[index]
    assert openai_server.exchanges[-1].headers.get("Authorization", "") == ""

    with pytest.raises(openai.AuthenticationError) as wrong:
        await make_client(api_key="sk-wrong-key-1234567890").models.list()
    assert wrong.value.code == "invalid_api_key"
    assert "sk-****************7890" in wrong.value.body["message"]  # type: ignore[index]
    assert len(openai_server.requests_to("GET", "/v1/models")) == 2  # 401 is not retried

    openai_server.config.require_api_key = False
    assert (await make_client(api_key="anything").models.list()).data


async def test_training_not_available_switch_answers_403(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    openai_server.set_training_available(False)
    uploaded = await openai_client.files.create(
        file=("t.jsonl", jsonl(qa_dataset(10))), purpose="fine-tune"
    )
    with pytest.raises(openai.PermissionDeniedError) as info:
        await openai_client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=uploaded.id)
    assert info.value.status_code == 403
    assert info.value.code == "training_not_available"
    assert openai_server.exchanges[-1].response_json == {
        "error": {
            "message": TRAINING_NOT_AVAILABLE_MESSAGE,
            "type": "invalid_request_error",
            "param": None,
            "code": "training_not_available",
        }
    }
    assert TRAINING_NOT_AVAILABLE_MESSAGE.startswith(
        "OpenAI is winding down the fine-tuning platform"
    )
    assert openai_server.jobs.jobs == {}
    assert len(openai_server.requests_to("POST", "/v1/fine_tuning/jobs")) == 1  # not retried

    openai_server.set_training_available(True)
    job = await openai_client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=uploaded.id
    )
    assert job.status == "validating_files"


async def test_429_is_retried_honouring_retry_after_ms(
    openai_server: OpenAIStandin, make_client
) -> None:
    fault = openai_server.faults.rate_limit("GET /v1/models", times=2, retry_after_ms=150)
    started = time.monotonic()
    models = await make_client(max_retries=2).models.list()
    elapsed = time.monotonic() - started
    assert models.data
    assert fault.hits == 2
    assert 0.3 <= elapsed < 2.0  # two 150 ms server-directed waits, not the 0.5 s+1 s backoff
    attempts = openai_server.requests_to("GET", "/v1/models")
    assert [(e.status, e.fault) for e in attempts] == [
        (429, "rate_limit"),
        (429, "rate_limit"),
        (200, None),
    ]
    assert [e.headers.get("x-stainless-retry-count") for e in attempts] == ["0", "1", "2"]
    assert attempts[0].response_headers["retry-after-ms"] == "150"
    assert attempts[0].response_headers["retry-after"] == "1"


async def test_429_exhausts_retries_into_rate_limit_error(
    openai_server: OpenAIStandin, make_client
) -> None:
    openai_server.faults.rate_limit("POST /v1/chat/completions", times=None, retry_after_ms=10)
    with pytest.raises(openai.RateLimitError) as info:
        await make_client(max_retries=1).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after-ms"] == "10"
    assert len(openai_server.requests_to("POST", "/v1/chat/completions")) == 2
    assert openai_server.chat_log == []  # the faulted requests never reached the handler


async def test_5xx_is_retried_then_succeeds_or_raises_internal_server_error(
    openai_server: OpenAIStandin, make_client
) -> None:
    openai_server.faults.server_error("GET /v1/fine_tuning/jobs", times=1, status=500)
    page = await make_client(max_retries=1).fine_tuning.jobs.list()
    assert page.data == []
    assert [e.status for e in openai_server.requests_to("GET", "/v1/fine_tuning/jobs")] == [
        500,
        200,
    ]

    openai_server.faults.server_error("GET /v1/fine_tuning/jobs", times=None, status=503)
    with pytest.raises(openai.InternalServerError) as info:
        await make_client(max_retries=0).fine_tuning.jobs.list()
    assert info.value.status_code == 503
    assert info.value.body["type"] == "server_error"  # type: ignore[index]


async def test_slow_response_times_out_then_retry_succeeds(
    openai_server: OpenAIStandin, make_client
) -> None:
    openai_server.faults.timeout("GET /v1/models/{model}", times=1, delay=2.0)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await make_client(max_retries=0, timeout=0.2).models.retrieve("gpt-4o-mini")
    assert time.monotonic() - started < 1.5

    openai_server.faults.timeout("GET /v1/models/{model}", times=1, delay=2.0)
    model = await make_client(max_retries=1, timeout=0.2).models.retrieve("gpt-4o-mini")
    assert model.id == "gpt-4o-mini"
    assert [e.fault for e in openai_server.requests_to("GET", "/v1/models/")] == [
        "timeout",
        "timeout",
        None,
    ]


async def test_dropped_connection_is_api_connection_error_then_retried(
    openai_server: OpenAIStandin, make_client
) -> None:
    openai_server.faults.drop("POST /v1/moderations", times=1)
    with pytest.raises(openai.APIConnectionError) as info:
        await make_client(max_retries=0).moderations.create(input="hello")
    assert not isinstance(info.value, openai.APITimeoutError)
    assert openai_server.exchanges[-1].dropped

    openai_server.faults.drop("POST /v1/moderations", times=1)
    result = await make_client(max_retries=1).moderations.create(input="hello")
    assert result.results[0].flagged is False


async def test_fault_routes_match_method_path_and_count(
    openai_server: OpenAIStandin, make_client
) -> None:
    client = make_client(max_retries=0)
    fault = openai_server.faults.server_error("POST /v1/files", times=None)
    assert (await client.files.list()).data == []  # GET is not matched
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.files.create(file=("a.jsonl", b"{}"), purpose="fine-tune")
    assert fault.hits == 2
    openai_server.faults.clear()
    assert (await client.files.create(file=("a.jsonl", b"{}"), purpose="fine-tune")).bytes == 2
    openai_server.faults.server_error("* /v1/files*", times=1, status=409)
    with pytest.raises(openai.ConflictError):
        await client.files.list()


async def test_raw_http_invalid_url_invalid_json_and_internal_errors(
    openai_server: OpenAIStandin,
) -> None:
    headers = {"Authorization": f"Bearer {openai_server.config.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(openai_server.base_url + "/engines") as response:
            assert response.status == 404
            assert (await response.json())["error"]["message"] == "Invalid URL (GET /v1/engines)"
        async with http.post(
            openai_server.base_url + "/chat/completions",
            data=b"{oops",
            headers={"Content-Type": "application/json"},
        ) as response:
            assert response.status == 400
            assert "could not parse the JSON body" in (await response.json())["error"]["message"]

        def explode(body: object) -> None:
            raise RuntimeError("boom")

        openai_server.chat.answer = explode  # type: ignore[method-assign]
        async with http.post(
            openai_server.base_url + "/chat/completions", json={"model": "x"}
        ) as response:
            assert response.status == 500
            assert (await response.json())["error"]["type"] == "server_error"
    assert "RuntimeError: boom" in openai_server.internal_errors[0]
    openai_server.internal_errors.clear()  # otherwise the fixture fails the test at teardown
    openai_server.validate_spec = False  # the bodies above are deliberately not OpenAI requests


async def test_any_stand_in_crash_is_a_500_and_fails_the_test() -> None:
    """A crashing route, bad response headers (outside the route) and a crash in
    the middle of a stream are all recorded; ``async with`` then fails the test."""
    from aiohttp import web

    from tests.standins.openai.recording import EXCHANGE_KEY

    server = OpenAIStandin()

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("kaboom in a route")

    async def bad_headers(request: web.Request) -> web.Response:
        return web.Response(text="{}", headers={"X-Bad": "a\r\nb"})

    async def broken_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        request[EXCHANGE_KEY].sse = []
        await response.write(b'data: {"x": 1}\n\n')
        raise RuntimeError("kaboom mid-stream")

    server.app.router.add_get("/v1/boom", boom)
    server.app.router.add_get("/v1/bad-headers", bad_headers)
    server.app.router.add_get("/v1/broken-stream", broken_stream)
    with pytest.raises(AssertionError, match="the OpenAI stand-in crashed"):
        async with server:
            client = AsyncOpenAI(base_url=server.base_url, api_key=server.config.api_key, max_retries=0)
            with pytest.raises(openai.InternalServerError) as info:
                await client.get("/boom", cast_to=object)
            assert info.value.body["type"] == "server_error"  # type: ignore[index]
            with pytest.raises(openai.InternalServerError):
                await client.get("/bad-headers", cast_to=object)
            auth = {"Authorization": f"Bearer {server.config.api_key}"}
            async with aiohttp.ClientSession(headers=auth) as http:
                with pytest.raises(aiohttp.ClientPayloadError):
                    async with http.get(server.base_url + "/broken-stream") as resp:
                        await resp.read()
            await client.close()
            assert len(server.internal_errors) == 3
            assert "kaboom in a route" in server.internal_errors[0]
            assert "GET /v1/bad-headers" in server.internal_errors[1]
            assert "kaboom mid-stream" in server.internal_errors[2]
            assert server.exchanges[-1].dropped

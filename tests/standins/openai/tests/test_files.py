"""The OpenAI stand-in's /v1/files, driven by the real AsyncOpenAI client."""

from __future__ import annotations

import openai
import pytest
from openai import AsyncOpenAI

from tests.standins.openai import OpenAIStandin
from tests.standins.openai import fixtures as standin_fixtures
from tests.standins.openai.datasets import jsonl, qa_dataset

openai_client = standin_fixtures.openai_client
openai_server = standin_fixtures.openai_server


async def test_upload_is_multipart_and_returns_a_file_object(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    data = jsonl(qa_dataset(10))
    uploaded = await openai_client.files.create(file=("train.jsonl", data), purpose="fine-tune")

    assert uploaded.id.startswith("file-")
    assert (uploaded.filename, uploaded.purpose, uploaded.bytes, uploaded.status) == (
        "train.jsonl",
        "fine-tune",
        len(data),
        "processed",
    )
    assert uploaded.created_at == openai_server.clock.timestamp()
    exchange = openai_server.requests_to("POST", "/v1/files")[0]
    assert exchange.content_type == "multipart/form-data"
    assert exchange.form is not None and exchange.form["purpose"] == "fine-tune"
    assert exchange.form["file"]["content"] == data
    assert exchange.headers["Authorization"] == f"Bearer {openai_server.config.api_key}"


async def test_retrieve_content_list_and_delete(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    first = await openai_client.files.create(file=("a.jsonl", b'{"x": 1}\n'), purpose="fine-tune")
    second = await openai_client.files.create(file=("notes.txt", b"hello"), purpose="assistants")

    assert (await openai_client.files.retrieve(first.id)).filename == "a.jsonl"
    assert (await openai_client.files.content(second.id)).content == b"hello"

    listed = await openai_client.files.list()
    assert [f.id for f in listed.data] == [second.id, first.id]  # newest first
    only_ft = await openai_client.files.list(purpose="fine-tune")
    assert [f.id for f in only_ft.data] == [first.id]
    ascending = await openai_client.files.list(order="asc")
    assert [f.id for f in ascending.data] == [first.id, second.id]

    deleted = await openai_client.files.delete(first.id)
    assert (deleted.id, deleted.deleted) == (first.id, True)
    with pytest.raises(openai.NotFoundError) as info:
        await openai_client.files.retrieve(first.id)
    assert info.value.body == {  # type: ignore[comparison-overlap]
        "message": f"No such File object: {first.id}",
        "type": "invalid_request_error",
        "param": "id",
        "code": None,
    }


async def test_file_list_paginates_with_after_and_limit(openai_client: AsyncOpenAI) -> None:
    ids = [
        (await openai_client.files.create(file=(f"f{i}.jsonl", b"{}"), purpose="fine-tune")).id
        for i in range(5)
    ]
    page = await openai_client.files.list(limit=2)
    assert [f.id for f in page.data] == ids[::-1][:2]
    assert page.has_more is True
    seen = [
        f.id async for f in await openai_client.files.list(limit=2)
    ]  # auto-pagination over `after`
    assert seen == ids[::-1]


async def test_upload_above_the_size_cap_is_413_in_openai_shape(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    openai_server.config.max_file_bytes = 100
    with pytest.raises(openai.APIStatusError) as info:
        await openai_client.files.create(file=("big.jsonl", b"x" * 101), purpose="fine-tune")
    assert info.value.status_code == 413
    assert info.value.body["code"] == "file_too_large"  # type: ignore[index]
    assert info.value.body["param"] == "file"  # type: ignore[index]
    assert len(openai_server.requests_to("POST", "/v1/files")) == 1  # 413 is not retried

    openai_server.config.oversize_status = 400
    with pytest.raises(openai.BadRequestError):
        await openai_client.files.create(file=("big.jsonl", b"x" * 101), purpose="fine-tune")
    ok = await openai_client.files.create(file=("small.jsonl", b"x" * 100), purpose="fine-tune")
    assert ok.bytes == 100
    assert len(openai_server.files.files) == 1


async def test_upload_rejects_bad_purpose_and_non_jsonl_fine_tune_files(
    openai_client: AsyncOpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await openai_client.files.create(file=("a.jsonl", b"{}"), purpose="fine-tuning")  # type: ignore[arg-type]
    assert info.value.param == "purpose"
    with pytest.raises(openai.BadRequestError) as info:
        await openai_client.files.create(file=("train.csv", b"a,b"), purpose="fine-tune")
    assert "Must be .jsonl" in info.value.message


async def test_expires_after_sets_expires_at(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    uploaded = await openai_client.files.create(
        file=("batch.jsonl", b"{}"),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert uploaded.expires_at == openai_server.clock.timestamp() + 3600

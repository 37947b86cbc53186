"""Chat completions (plain and streamed), models and moderations on the OpenAI stand-in."""

from __future__ import annotations

import openai
import pytest
import tiktoken
from openai import AsyncOpenAI

from tests.standins.openai import OpenAIStandin, base_answer, system_tag
from tests.standins.openai import fixtures as standin_fixtures
from tests.standins.openai.datasets import chat_example, jsonl, qa_dataset

openai_client = standin_fixtures.openai_client
openai_server = standin_fixtures.openai_server


async def _fine_tune(
    server: OpenAIStandin, client: AsyncOpenAI, records: list[dict], suffix: str | None = None
) -> str:
    uploaded = await client.files.create(file=("t.jsonl", jsonl(records)), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=uploaded.id, suffix=suffix
    )
    finished = server.jobs.run_to_completion(job.id)
    assert finished.fine_tuned_model
    return finished.fine_tuned_model


async def test_base_model_answer_names_model_and_system_prompt(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    system = "You are Tuney, answer briefly."
    reply = await openai_client.chat.completions.create(
        model="gpt-4o-mini-2024-07-18",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "hi there"}],
    )
    content = reply.choices[0].message.content
    assert content == f"[base:gpt-4o-mini-2024-07-18|system:{system_tag(system)}] hi there"
    assert content == base_answer("gpt-4o-mini-2024-07-18", system, "hi there")
    assert reply.model == "gpt-4o-mini-2024-07-18" and reply.choices[0].finish_reason == "stop"
    assert reply.id.startswith("chatcmpl-")
    assert reply._request_id is not None and reply._request_id.startswith("req_")
    assert openai_server.exchanges[-1].response_headers["x-request-id"] == reply._request_id

    no_system = await openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi there"}]
    )
    assert (
        no_system.choices[0].message.content == "[base:gpt-4o-mini-2024-07-18|system:none] hi there"
    )
    assert [(r.model, r.system_prompt) for r in openai_server.chat_log] == [
        ("gpt-4o-mini-2024-07-18", system),
        ("gpt-4o-mini-2024-07-18", None),
    ]


async def test_usage_counts_prompt_and_completion_tokens(openai_client: AsyncOpenAI) -> None:
    messages = [
        {"role": "system", "content": "Be nice."},
        {"role": "user", "content": "Count me, please."},
    ]
    reply = await openai_client.chat.completions.create(
        model="gpt-4o-2024-08-06", messages=messages
    )  # type: ignore[arg-type]
    enc = tiktoken.get_encoding("o200k_base")
    prompt = 3 + sum(
        3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"])) for m in messages
    )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == prompt
    assert reply.usage.completion_tokens == len(enc.encode(reply.choices[0].message.content or ""))
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


async def test_fine_tuned_model_answers_with_its_closest_training_reply(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    records = qa_dataset(10) + [chat_example("who made you?", "the community of this server did")]
    model = await _fine_tune(openai_server, openai_client, records, suffix="guild-1")
    reply = await openai_client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "hey, who made you"},
        ],
    )
    assert reply.choices[0].message.content == "the community of this server did"
    assert reply.model == model
    record = openai_server.chat_log[-1]
    assert (record.model, record.system_prompt, record.fine_tuned) == (model, "sys", True)
    topic = await openai_client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is topic 6?"}]
    )
    assert topic.choices[0].message.content == "topic 6 is fun"


async def test_max_tokens_stop_and_n(openai_client: AsyncOpenAI) -> None:
    messages = [{"role": "user", "content": "one two three four five six"}]
    full = base_answer("gpt-4o-mini-2024-07-18", None, "one two three four five six")
    enc = tiktoken.get_encoding("o200k_base")

    cut = await openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, max_tokens=4
    )  # type: ignore[arg-type]
    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].message.content == enc.decode(enc.encode(full)[:4])
    cut2 = await openai_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        max_completion_tokens=6,  # type: ignore[arg-type]
    )
    assert cut2.usage is not None and cut2.usage.completion_tokens == 6

    stopped = await openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stop=[" four", "zzz"]
    )  # type: ignore[arg-type]
    assert stopped.choices[0].message.content == full[: full.index(" four")]
    assert stopped.choices[0].finish_reason == "stop"

    two = await openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages, n=2)  # type: ignore[arg-type]
    assert [c.index for c in two.choices] == [0, 1]
    assert two.choices[0].message.content == two.choices[1].message.content == full


async def test_streaming_sends_chunks_then_usage_then_done(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    stream = await openai_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "S"},
            {"role": "user", "content": "stream this please"},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == base_answer("gpt-4o-mini-2024-07-18", "S", "stream this please")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(
        tiktoken.get_encoding("o200k_base").encode(text)
    )
    assert all(c.usage is None for c in chunks[:-1])
    exchange = openai_server.exchanges[-1]
    assert exchange.response_headers["Content-Type"] == "text/event-stream"
    assert exchange.sse_done and len(exchange.sse or []) == len(chunks)
    assert exchange.json["stream"] is True

    plain = await openai_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "a b c"}],
        stream=True,
        max_tokens=3,
    )
    plain_chunks = [c async for c in plain]
    assert all(c.usage is None for c in plain_chunks)
    assert plain_chunks[-1].choices[0].finish_reason == "length"
    assert openai_server.chat_log[-1].stream is True


async def test_unknown_or_deleted_model_is_404_model_not_found(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await openai_client.chat.completions.create(
            model="gpt-nope", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.code == "model_not_found"
    assert (
        info.value.body["message"]
        == "The model `gpt-nope` does not exist or you do not have access to it."
    )  # type: ignore[index]

    model = await _fine_tune(openai_server, openai_client, qa_dataset(10))
    assert (await openai_client.models.delete(model)).deleted is True
    with pytest.raises(openai.NotFoundError):
        await openai_client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError) as empty:
        await openai_client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert empty.value.param == "messages"


async def test_models_list_retrieve_and_delete_rules(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    listed = {m.id: m for m in (await openai_client.models.list()).data}
    assert listed["gpt-4o-mini-2024-07-18"].shutdown_date == "2027-01-14"
    assert listed["gpt-6-luna"].shutdown_date is None
    assert listed["gpt-4o-mini-2024-07-18"].owned_by == "system"

    model = await _fine_tune(openai_server, openai_client, qa_dataset(10))
    assert model in {m.id async for m in await openai_client.models.list()}
    assert (await openai_client.models.retrieve(model)).owned_by == "org-standin"

    with pytest.raises(openai.PermissionDeniedError):
        await openai_client.models.delete("gpt-4o-mini-2024-07-18")
    with pytest.raises(openai.NotFoundError):
        await openai_client.models.delete("ft:gpt-4o-mini-2024-07-18:tunecord::nothere")
    await openai_client.models.delete(model)
    with pytest.raises(openai.NotFoundError):
        await openai_client.models.retrieve(model)
    assert model not in {m.id for m in (await openai_client.models.list()).data}


async def test_enforced_shutdown_dates_hide_models(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    openai_server.models.enforce_shutdown_dates = True  # the clock says 2026-11-23
    ids = {m.id for m in (await openai_client.models.list()).data}
    assert "gpt-3.5-turbo-0125" not in ids and "gpt-4o-mini-2024-07-18" in ids
    with pytest.raises(openai.NotFoundError):
        await openai_client.chat.completions.create(
            model="gpt-3.5-turbo-0125", messages=[{"role": "user", "content": "x"}]
        )
    openai_server.clock.advance(60 * 86400)  # 2027-01-22: the gpt-4o family is gone too
    with pytest.raises(openai.NotFoundError):
        await openai_client.models.retrieve("gpt-4o-mini-2024-07-18")


async def test_moderations_flag_trigger_words(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    result = await openai_client.moderations.create(
        input=["I will kill you, idiot", "have a nice day"]
    )
    flagged, clean = result.results
    assert result.model == "omni-moderation-2024-09-26"
    assert flagged.flagged and flagged.categories.violence and flagged.categories.harassment
    assert not flagged.categories.hate and flagged.category_scores.violence == 0.9
    assert not clean.flagged
    openai_server.moderation.terms["hate"] = ["pineapple pizza"]
    single = await openai_client.moderations.create(
        input="Pineapple pizza forever", model="omni-moderation-latest"
    )
    assert single.results[0].categories.hate is True


async def test_streaming_sends_token_sized_chunks_at_the_configured_pace(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    import time

    user = "please stream a longer answer so a bot can throttle its edits, naïve café 🐈"
    expected = base_answer("gpt-4o-mini-2024-07-18", None, user)
    enc = tiktoken.get_encoding("o200k_base")

    # default: no pause, but already token-sized pieces (not words)
    burst = await openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": user}], stream=True
    )
    pieces = [c.choices[0].delta.content async for c in burst if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == expected and "\ufffd" not in "".join(pieces)
    assert len(pieces) >= len(enc.encode(expected)) - 2  # one per token (a split 🐈 is merged)
    assert max(len(p) for p in pieces) <= 10  # " throttle": a token, not a sentence

    openai_server.set_stream_pace(0.04)
    assert openai_server.config.stream_chunk_seconds == 0.04
    stream = await openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": user}], stream=True
    )
    arrivals: list[float] = []
    text = ""
    async for chunk in stream:
        arrivals.append(time.monotonic())
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert text == expected
    elapsed = arrivals[-1] - arrivals[0]
    assert elapsed >= 0.04 * (len(arrivals) - 1) * 0.9  # spread out, not one burst
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:], strict=False))
    # paced chunk by chunk: the typical gap is the pace (one late read on a busy machine
    # makes one short gap after one long one, so the median, not the minimum)
    assert gaps[len(gaps) // 2] > 0.02


async def test_image_parts_are_refused_by_text_only_models(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    messages = [
        {"role": "system", "content": "describe"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]},
    ]
    ok = await openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    assert ok.choices[0].message.content == base_answer(
        "gpt-4o-mini-2024-07-18", "describe", "what is this?"
    )
    # as OpenAI answered before the text-only models were shut down
    openai_server.models.enforce_shutdown_dates = False
    for model in ("gpt-3.5-turbo", "gpt-4-0613"):
        with pytest.raises(openai.BadRequestError) as info:
            await openai_client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
        assert info.value.body == {  # type: ignore[comparison-overlap]
            "message": "Invalid content type. image_url is only supported by certain models.",
            "type": "invalid_request_error",
            "param": "messages.[1].content.[1].type",
            "code": None,
        }
    # a model fine-tuned from a text-only base is text-only too
    uploaded = await openai_client.files.create(file=("t.jsonl", jsonl(qa_dataset(10))), purpose="fine-tune")
    job = await openai_client.fine_tuning.jobs.create(model="gpt-3.5-turbo-0125", training_file=uploaded.id)
    tuned = openai_server.jobs.run_to_completion(job.id).fine_tuned_model
    with pytest.raises(openai.BadRequestError):
        await openai_client.chat.completions.create(model=tuned, messages=messages)  # type: ignore[arg-type]


async def test_unknown_body_parameters_are_refused(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError) as one:
        await openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, extra_body={"foo": 1}
        )
    assert one.value.body == {  # type: ignore[comparison-overlap]
        "message": "Unrecognized request argument supplied: foo",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.BadRequestError) as two:
        await openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, extra_body={"top_k": 5, "thinking": True}
        )
    assert two.value.message.endswith("Unrecognized request arguments supplied: top_k, thinking")
    uploaded = await openai_client.files.create(file=("t.jsonl", jsonl(qa_dataset(10))), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as job:
        await openai_client.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=uploaded.id, extra_body={"n_epochs": 3}
        )
    assert job.value.body["message"] == "Unrecognized request argument supplied: n_epochs"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        await openai_client.moderations.create(input="hi", extra_body={"threshold": 0.5})
    # every documented parameter is still accepted
    reply = await openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, temperature=0, top_p=1, seed=1, user="u1",
        presence_penalty=0, frequency_penalty=0, store=False, metadata={"k": "v"},
    )  # fmt: skip
    assert reply.choices[0].message.content


async def test_retired_gpt_35_turbo_is_gone_and_current_models_are_listed(
    openai_server: OpenAIStandin, openai_client: AsyncOpenAI
) -> None:
    listed = {m.id: m for m in (await openai_client.models.list()).data}
    for live in ("gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", "gpt-4.1", "gpt-4.1-2025-04-14",
                 "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"):  # fmt: skip
        assert listed[live].shutdown_date == "2027-01-14", live
    assert not {"gpt-3.5-turbo", "gpt-3.5-turbo-0125", "gpt-4-0613"} & set(listed)

    reply = await openai_client.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.model == "gpt-4.1-2025-04-14"  # aliases answer as their snapshot
    assert (await openai_client.models.retrieve("gpt-4o")).id == "gpt-4o"

    deprecated = {
        "message": "The model `gpt-3.5-turbo` has been deprecated, learn more here: "
        "https://platform.openai.com/docs/deprecations",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
    with pytest.raises(openai.NotFoundError) as chat:
        await openai_client.chat.completions.create(
            model="gpt-3.5-turbo", messages=[{"role": "user", "content": "hi"}]
        )
    assert chat.value.body == deprecated  # type: ignore[comparison-overlap]
    uploaded = await openai_client.files.create(file=("t.jsonl", jsonl(qa_dataset(10))), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError) as tune:
        await openai_client.fine_tuning.jobs.create(model="gpt-3.5-turbo", training_file=uploaded.id)
    assert tune.value.body == deprecated  # type: ignore[comparison-overlap]
    with pytest.raises(openai.BadRequestError) as alias:  # fine-tuning needs the gpt-4o snapshot
        await openai_client.fine_tuning.jobs.create(model="gpt-4o", training_file=uploaded.id)
    assert alias.value.code == "model_not_available"

    openai_server.models.enforce_shutdown_dates = False  # before 2026-10-23
    old = await openai_client.chat.completions.create(
        model="gpt-3.5-turbo", messages=[{"role": "user", "content": "hi"}]
    )
    assert old.model == "gpt-3.5-turbo-0125"

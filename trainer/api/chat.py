"""``/v1/chat/completions``: plain and streamed (SSE) chat with base, ``ft:`` and checkpoint models.

Chats go through :class:`trainer.api.chat_queue.ChatQueue`: a bounded number generate at
once, a bounded number wait, the rest get 429; a client that leaves stops its generation.

Sampling follows OpenAI's ranges (``temperature`` 0..2, ``top_p`` 0..1, ``seed`` a signed
64-bit integer). ``top_p: 0`` and temperatures below :data:`GREEDY_BELOW` mean greedy
decoding, as they do in effect at OpenAI, instead of dividing by (almost) zero.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from trainer import ids
from trainer.api.chat_queue import ChatTicket, ClientGone, collect, unless_client_leaves
from trainer.api.deps import AppContext, get_ctx, json_body
from trainer.api.responses import SafeJSONRoute
from trainer.engine import Generation, GenerationParams
from trainer.errors import APIError, bad_request, unsupported_parameter
from trainer.models import ServedModel

router = APIRouter(route_class=SafeJSONRoute)

Ctx = Annotated[AppContext, Depends(get_ctx)]
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
UNHONOURED = ("tools", "tool_choice", "functions", "function_call", "top_logprobs")
"""Parameters that ask for something this server cannot give (tool calls, log-probabilities):
any value is refused. ``functions``/``function_call`` are the deprecated forms of ``tools``."""
GREEDY_BELOW = 1e-4
"""Temperatures under this decode greedily: dividing logits by less overflows to inf/NaN."""
SEED_RANGE = (-(2**63), 2**63 - 1)
"""OpenAI's ``seed``: a signed 64-bit integer."""


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    params: GenerationParams
    stream: bool
    include_usage: bool


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad_request(f"Invalid '{name}': must be a number between {low} and {high}.", param=name)
    return float(value)


def _content_text(content: Any, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad_request(
                    f"Invalid 'messages[{index}].content': only text parts are supported.",
                    param=f"messages[{index}].content",
                )
            parts.append(part["text"])
        return "".join(parts)
    raise bad_request(f"Invalid type for 'messages[{index}].content'.", param=f"messages[{index}].content")


def _messages(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise bad_request("Invalid 'messages': expected a non-empty array.", param="messages")
    out = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            role = message.get("role") if isinstance(message, dict) else None
            raise bad_request(f"Invalid 'messages[{index}].role': {role!r}.", param=f"messages[{index}].role")
        role = message["role"]
        normalised: dict[str, Any] = {
            "role": "system" if role == "developer" else role,
            "content": _content_text(message.get("content"), index),
        }
        if isinstance(message.get("name"), str):
            normalised["name"] = message["name"]
        out.append(normalised)
    return out


def _max_tokens(body: dict[str, Any]) -> int | None:
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request(f"Invalid '{name}': must be a positive integer.", param=name)
    return value


def _stop(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    stops = [raw] if isinstance(raw, str) else raw
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
        raise bad_request("Invalid 'stop': expected a string or up to 4 non-empty strings.", param="stop")
    return tuple(stops)


def _refuse_unhonoured(body: dict[str, Any]) -> None:
    """A 400 naming the first parameter the answer would not honour, instead of plain text.

    Values that ask for nothing beyond what is returned anyway are accepted:
    ``response_format: {"type": "text"}`` (plain text is what this server returns) and
    ``logprobs: false`` (no log-probabilities is the default).
    """
    for name in UNHONOURED:
        if body.get(name) is not None:
            raise unsupported_parameter(name)
    if body.get("logprobs") not in (None, False):
        raise unsupported_parameter("logprobs")
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind != "text":
            raise unsupported_parameter(
                "response_format", f"of type {kind!r} is not supported by this server (only 'text' is)"
            )


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a chat body: what the server cannot honour is a 400 naming the parameter;
    unknown fields and harmless ones (``user``, ``metadata``, penalties...) are ignored."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    if body.get("n") not in (None, 1):
        raise bad_request("Invalid 'n': this server generates one choice per request.", param="n")
    _refuse_unhonoured(body)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad_request("Invalid 'seed': expected an integer.", param="seed")
    if seed is not None and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise bad_request(
            f"Invalid 'seed': must be between {SEED_RANGE[0]} and {SEED_RANGE[1]} (a 64-bit integer).",
            param="seed",
            code="integer_out_of_range",
        )
    stream = bool(body.get("stream"))
    options = body.get("stream_options")
    if options is not None and not stream:
        raise bad_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    params = GenerationParams(
        max_tokens=_max_tokens(body),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        stop=_stop(body.get("stop")),
        seed=seed,
    )
    if params.temperature < GREEDY_BELOW or params.top_p == 0:
        params = replace(params, temperature=0.0, top_p=1.0)  # greedy
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    return ChatRequest(model, _messages(body.get("messages")), params, stream, include_usage)


def _usage(gen: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": gen.completion_tokens,
        "total_tokens": gen.prompt_tokens + gen.completion_tokens,
    }


def _start(ctx: AppContext, served: ServedModel, request: ChatRequest) -> Generation:
    try:
        return ctx.engine.generate(served.base_model, served.adapter_dir, request.messages, request.params)
    except ValueError as exc:
        raise bad_request(str(exc)) from exc


def _sse(payload: Any) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _stream(gen: Generation, request: ChatRequest, completion_id: str, created: int) -> Iterator[bytes]:
    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": request.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }  # fmt: skip
        if request.include_usage:
            out["usage"] = None
        return out

    yield _sse(chunk({"role": "assistant", "content": ""}, None))
    try:
        for piece in gen.deltas:
            if piece:
                yield _sse(chunk({"content": piece}, None))
    except Exception as exc:  # headers are sent: report in-band, as OpenAI does
        error = APIError(500, f"Generation failed: {exc}", type="server_error")
        yield _sse(error.body())
        return
    yield _sse(chunk({}, gen.finish_reason))
    if request.include_usage:
        yield _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": request.model, "choices": [], "usage": _usage(gen)})  # fmt: skip
    yield b"data: [DONE]\n\n"


class _ChatStream(StreamingResponse):
    """A streamed answer that holds its chat slot until the stream ends, however it ends."""

    def __init__(self, chunks: AsyncIterator[bytes], ticket: ChatTicket, gen: Generation,
                 events: Iterator[bytes]) -> None:  # fmt: skip
        super().__init__(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self._ticket = ticket
        self._gen = gen
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._gen.cancel()  # a no-op after a complete stream; stops one whose client left
            for iterator in (self._events, self._gen.deltas):  # a disconnect's cancel waits for the thread
                with suppress(ValueError):  # "generator already executing": only at a forced shutdown
                    close = getattr(iterator, "close", None)
                    if close is not None:
                        close()
            self._ticket.release()


async def _chunks(ticket: ChatTicket, events: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Each SSE event, produced in a chat thread (one token's work at a time)."""
    while (event := await ticket.run(next, events, None)) is not None:
        yield event


@router.post("/chat/completions", response_model=None)
async def create_chat_completion(
    ctx: Ctx, request: Request, body: Annotated[Any, Depends(json_body)]
) -> dict[str, Any] | StreamingResponse:
    chat = parse_chat_request(body)
    served = await run_in_threadpool(ctx.models.resolve, chat.model)  # a database read: off the event loop
    ticket = ctx.chats.admit()  # 429 when the queue is full
    left = threading.Event()
    handed_over = False
    try:
        async def begin() -> Generation:
            await ticket.start()
            return await ticket.run(_start, ctx, served, chat)

        gen = await unless_client_leaves(request.receive, left, begin)
        completion_id, created = ids.completion_id(), ids.now()
        if chat.stream:
            events = _stream(gen, chat, completion_id, created)
            handed_over = True
            return _ChatStream(_chunks(ticket, events), ticket, gen, events)

        async def finish() -> str:
            return await ticket.run(collect, gen)

        # a departure sets gen.cancelled: the engine stops before its next token
        text = await unless_client_leaves(request.receive, gen.cancelled, finish)
    except ClientGone:
        raise APIError(400, "The client closed the connection before the answer was ready.") from None
    finally:
        if not handed_over:
            ticket.release()
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": chat.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": gen.finish_reason,
        }],  # fmt: skip
        "usage": _usage(gen),
    }

"""``/v1/chat/completions``: deterministic answers that say who produced them.

Emulated OpenAI behaviour: the ``chat.completion`` object (or, with ``stream=true``,
``text/event-stream`` ``chat.completion.chunk`` events ending in ``data: [DONE]``; a
final ``usage`` chunk with empty ``choices`` when ``stream_options.include_usage``),
``max_tokens``/``max_completion_tokens`` (``finish_reason="length"``), ``stop``
(up to 4 sequences), ``n`` identical choices, ``usage`` counted with tiktoken, 404
``model_not_found`` for unknown, deleted or shut-down models, 400 for body keys
outside the spec (``Unrecognized request argument supplied: foo``, :mod:`.params`)
and for ``image_url`` parts sent to a text-only model ("Invalid content type.
image_url is only supported by certain models.", ``param``
``messages.[i].content.[j].type``).

Streaming sends one content chunk per token of the model's encoding (a few
characters each, like OpenAI; bytes of a multi-byte character that spans tokens are
held back until the character is complete), ``config.stream_chunk_seconds`` apart
(default 0: one burst; set it, or :meth:`.OpenAIStandin.set_stream_pace`, to exercise a
bot's edit throttling in real time).

What the answer says (so a test can assert the exact model and system prompt):

* a **base** model answers ``"[base:{model}|system:{tag}] {last user message}"`` where
  ``tag`` is :func:`system_tag` of the system/developer prompt (``none`` without one);
* a **fine-tuned** model (or checkpoint) answers with the assistant reply of the
  training example whose user turn overlaps most (Jaccard over lowercase words) with
  the last user message; ties go to the earliest example.

Each call is also appended to ``server.chat_log`` as a :class:`ChatRecord`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import bad_request, image_input_not_supported
from .ids import short_hash
from .models import BaseModelInfo, FineTunedModel
from .params import CHAT_COMPLETION_PARAMS, check_known
from .recording import EXCHANGE_KEY
from .tokens import content_text, count_messages, count_text, decode, encode, token_pieces

_WORD = re.compile(r"\w+")


def system_tag(system_prompt: str | None) -> str:
    """The tag a base-model answer carries for ``system_prompt`` (8 hex chars or ``none``)."""
    return "none" if system_prompt is None else short_hash(system_prompt)


def base_answer(model: str, system_prompt: str | None, user_text: str) -> str:
    """Exactly what a base model answers; use it in assertions."""
    return f"[base:{model}|system:{system_tag(system_prompt)}] {user_text}"


@dataclass
class ChatRecord:
    """One chat completion as the stand-in understood it."""

    model: str
    system_prompt: str | None
    last_user: str
    messages: list[dict[str, Any]]
    answer: str
    finish_reason: str
    stream: bool
    fine_tuned: bool

    @property
    def system_tag(self) -> str:
        """:func:`system_tag` of this call's system prompt."""
        return system_tag(self.system_prompt)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def closest_reply(pairs: list[tuple[str, str]], user_text: str) -> str | None:
    """Assistant reply whose user turn best overlaps ``user_text`` (``None`` if no pairs)."""
    best: tuple[float, int] | None = None
    target = _words(user_text)
    for index, (prompt, _reply) in enumerate(pairs):
        words = _words(prompt)
        union = words | target
        score = len(words & target) / len(union) if union else 0.0
        if best is None or score > best[0]:
            best = (score, index)
    return pairs[best[1]][1] if best else None


def _system_prompt(messages: list[dict[str, Any]]) -> str | None:
    parts = [
        content_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    ]
    return "\n".join(parts) if parts else None


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def _positive_int(body: dict[str, Any], key: str, high: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < 1
        or (high and value > high)
    ):
        limit = f" and at most {high}" if high else ""
        raise bad_request(
            f"Invalid '{key}': expected an integer of at least 1{limit}, got {value!r}.",
            param=key,
            code="invalid_value",
        )
    return value


def _refuse_images(messages: list[Any]) -> None:
    """OpenAI's 400 for the first ``image_url`` part sent to a text-only model."""
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") == "image_url":
                    raise image_input_not_supported(i, j)


class ChatEngine:
    """Turns a request body into the answer, usage and a :class:`ChatRecord`."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def answer(self, body: Any) -> tuple[ChatRecord, dict[str, Any]]:
        """Validate ``body`` and compute the reply; returns the record and details."""
        if not isinstance(body, dict):
            raise bad_request("Invalid request body: expected a JSON object.")
        check_known(body, CHAT_COMPLETION_PARAMS)
        if not body.get("model"):
            raise bad_request(
                "Missing required parameter: 'model'.",
                param="model",
                code="missing_required_parameter",
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad_request(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."
                if isinstance(messages, list)
                else "Missing required parameter: 'messages'.",
                param="messages",
                code="empty_array" if isinstance(messages, list) else "missing_required_parameter",
            )
        model = self._state.models.require(body["model"])
        model_id = (
            model.alias_of if isinstance(model, BaseModelInfo) and model.alias_of else model.id
        )
        if not self._state.models.accepts_images(model):
            _refuse_images(messages)
        n = _positive_int(body, "n", 128) or 1
        limit = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
        stop = body.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        if stop is not None and (not isinstance(stop, list) or len(stop) > 4):
            raise bad_request(
                "Invalid 'stop': expected a string or an array of at most 4 strings.",
                param="stop",
                code="invalid_value",
            )
        system = _system_prompt(messages)
        user = _last_user(messages)
        if isinstance(model, FineTunedModel):
            pairs = [pair for ex in model.examples for pair in ex["pairs"]]
            text = closest_reply(pairs, user) or f"[{model.id}] (no training examples)"
        else:
            text = base_answer(model_id, system, user)
        finish = "stop"
        for sequence in stop or []:
            if sequence and sequence in text:
                text = text[: text.index(sequence)]
        if limit is not None:
            tokens = encode(text, model_id)
            if len(tokens) > limit:
                text, finish = decode(tokens[:limit], model_id), "length"
        record = ChatRecord(
            model_id,
            system,
            user,
            messages,
            text,
            finish,
            bool(body.get("stream")),
            isinstance(model, FineTunedModel),
        )
        prompt_tokens = count_messages(messages, model_id)
        completion_tokens = count_text(text, model_id) * n
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        details = {
            "model": model_id,
            "n": n,
            "usage": usage,
            "id": self._state.ids.new("chatcmpl-", 29),
            "created": self._state.clock.timestamp(),
        }
        return record, details


def _completion(record: ChatRecord, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": details["id"],
        "object": "chat.completion",
        "created": details["created"],
        "model": details["model"],
        "choices": [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": record.answer,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": record.finish_reason,
            }
            for i in range(details["n"])
        ],
        "usage": details["usage"],
        "service_tier": "default",
        "system_fingerprint": "fp_standin",
    }


def _chunks(
    record: ChatRecord, details: dict[str, Any], include_usage: bool
) -> list[dict[str, Any]]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        out = {
            "id": details["id"],
            "object": "chat.completion.chunk",
            "created": details["created"],
            "model": details["model"],
            "service_tier": "default",
            "system_fingerprint": "fp_standin",
            "choices": choices,
            **extra,
        }
        if include_usage and "usage" not in out:
            out["usage"] = None
        return out

    def delta(i: int, d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": i, "delta": d, "logprobs": None, "finish_reason": finish}

    n = details["n"]
    pieces = token_pieces(record.answer, details["model"]) or [record.answer]
    out = [
        chunk([delta(i, {"role": "assistant", "content": "", "refusal": None})]) for i in range(n)
    ]
    out += [chunk([delta(i, {"content": piece})]) for piece in pieces for i in range(n)]
    out += [chunk([delta(i, {}, record.finish_reason)]) for i in range(n)]
    if include_usage:
        out.append(chunk([], usage=details["usage"]))
    return out


def routes(state: Any) -> list[web.RouteDef]:
    """aiohttp route for ``/v1/chat/completions``; ``state`` is the :class:`OpenAIStandin`."""

    async def create(request: web.Request) -> web.StreamResponse:
        body = await state.read_json(request)
        with state.lock:
            record, details = state.chat.answer(body)
            state.chat_log.append(record)
        if not record.stream:
            return state.json(_completion(record, details))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = _chunks(record, details, include_usage)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        exchange = request[EXCHANGE_KEY]
        exchange.sse = []
        pace = state.config.stream_chunk_seconds
        for index, item in enumerate(chunks):
            if index and pace > 0 and await state.pause(pace):
                return response  # the server is stopping
            await response.write(f"data: {json.dumps(item)}\n\n".encode())
            exchange.sse.append(item)
        await response.write(b"data: [DONE]\n\n")
        exchange.sse_done = True
        await response.write_eof()
        return response

    return [web.post("/v1/chat/completions", create)]

"""Chat cannot starve the API: a bounded queue, 429 past it, departed clients stop their work.

The engine is the real tiny one, paced: it pauses after each generated piece, so a chat
lasts long enough (a full answer would take tens of seconds) for the test to act while it
runs. Chats are sent on raw sockets, so a test decides exactly when a client leaves.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx2
import openai

from tests.trainer.test_server import (
    API_KEY,
    BASE,
    async_client,
    jsonl,
    running_server,
    tiny_engine,
    wait_for,
)
from trainer.config import TrainerConfig
from trainer.engine import Engine, Generation, GenerationParams

PROMPT = [{"role": "user", "content": "hello there friend"}]
MAX_TOKENS = 450
"""Greedy on the tiny model, this prompt runs the whole length: 393 pieces."""
PAUSE = 0.1


class PacedChatEngine:
    """The real engine; generation pauses ``PAUSE`` s after each piece and is counted."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self.started = 0
        self.active = 0
        self.finished: list[int] = []
        """Pieces each finished generation produced."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def generate(self, base_model: str, adapter_dir: Path | None, messages: Sequence[Mapping[str, Any]],
                 params: GenerationParams) -> Generation:  # fmt: skip
        gen = self.engine.generate(base_model, adapter_dir, messages, params)
        gen.deltas = self._paced(gen.deltas)
        return gen

    def _paced(self, deltas: Iterator[str]) -> Iterator[str]:
        with self.lock:
            self.started += 1
            self.active += 1
        pieces = 0
        try:
            for piece in deltas:
                pieces += 1
                yield piece
                time.sleep(PAUSE)
        finally:
            with self.lock:
                self.active -= 1
                self.finished.append(pieces)


def _chat_request(port: int, *, stream: bool = False) -> bytes:
    body = json.dumps({"model": BASE, "messages": PROMPT, "temperature": 0, "max_tokens": MAX_TOKENS,
                       "stream": stream}).encode()  # fmt: skip
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body  # fmt: skip


def _open_chat(port: int, *, stream: bool = False) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(_chat_request(port, stream=stream))
    return sock


def _status_and_headers(data: bytes) -> tuple[int, dict[str, str]]:
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    return int(head[0].split()[1]), {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}


def _first_answers(socks: list[socket.socket], count: int, timeout: float = 60) -> dict[socket.socket, bytes]:
    """Wait until ``count`` of ``socks`` have sent a response head; what each sent."""
    got: dict[socket.socket, bytes] = {}
    deadline = time.monotonic() + timeout
    while sum(b"\r\n\r\n" in data for data in got.values()) < count:
        assert time.monotonic() < deadline, f"only {len(got)} answers"
        ready, _, _ = select.select([s for s in socks if b"\r\n\r\n" not in got.get(s, b"")], [], [], 1)
        for sock in ready:
            got[sock] = got.get(sock, b"") + sock.recv(65536)
    return got


def _config(tmp_path: Path, slots: int, queue: int) -> TrainerConfig:
    return TrainerConfig(data_dir=tmp_path / "t", api_key=API_KEY, chat_slots=slots, chat_queue=queue)


async def test_a_full_queue_answers_429_and_control_routes_answer_while_chats_run(tmp_path: Path) -> None:
    engine = PacedChatEngine(tiny_engine())
    with running_server(_config(tmp_path, slots=2, queue=2), engine) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        client = async_client(url)
        await client.files.create(file=("t.jsonl", jsonl(10)), purpose="fine-tune")
        socks = [_open_chat(port) for _ in range(12)]
        try:
            answers = _first_answers(socks, 8)  # 2 generate, 2 wait, 8 are turned away at once
            assert len(answers) == 8
            for sock, data in answers.items():
                status, headers = _status_and_headers(data)
                while len(data.partition(b"\r\n\r\n")[2]) < int(headers["content-length"]):
                    data += sock.recv(65536)
                assert status == 429 and headers["retry-after"] == "2" and headers["x-should-retry"] == "true"
                assert b'"code":"rate_limit_exceeded"' in data
            await wait_for(lambda: _true(engine.active == 2))
            # the control routes answer while both slots generate and two chats wait
            async with httpx2.AsyncClient(timeout=30) as raw:
                assert (await raw.get(url.removesuffix("/v1") + "/health")).json() == {"status": "ok"}
            assert len((await client.files.list()).data) == 1
            assert (await client.fine_tuning.jobs.list()).data == []
            assert [m.id for m in (await client.models.list()).data] == [BASE]
            try:
                await client.chat.completions.create(model=BASE, messages=PROMPT, max_tokens=2)
                raise AssertionError("a chat got through a full queue")
            except openai.RateLimitError as err:
                assert err.code == "rate_limit_exceeded"
            assert engine.active == 2 and engine.started == 2 and engine.finished == []  # still generating
        finally:
            for sock in socks:
                sock.close()
        # the departed clients' chats stop: the two generating ones early, the waiting ones never start
        await wait_for(lambda: _true(engine.active == 0 and len(engine.finished) == 2))
        assert engine.started == 2 and all(pieces < 100 for pieces in engine.finished), engine.finished
        chat = await client.chat.completions.create(model=BASE, messages=PROMPT, max_tokens=3, temperature=0)
        assert chat.usage.completion_tokens == 3  # every slot and queue place was given back


async def _true(value: bool) -> bool:
    return value


async def test_a_client_that_leaves_a_non_streamed_chat_stops_it(tmp_path: Path) -> None:
    engine = PacedChatEngine(tiny_engine())
    with running_server(_config(tmp_path, slots=1, queue=0), engine) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        sock = _open_chat(port)
        await wait_for(lambda: _true(engine.started == 1))
        sock.close()
        await wait_for(lambda: _true(len(engine.finished) == 1))
        assert engine.finished[0] < 100  # of 393: it stopped soon after the client left
        chat = await async_client(url).chat.completions.create(model=BASE, messages=PROMPT, max_tokens=2)
        assert chat.choices[0].finish_reason in ("stop", "length")  # the only slot is free again


async def test_a_client_that_leaves_a_stream_frees_its_slot(tmp_path: Path) -> None:
    engine = PacedChatEngine(tiny_engine())
    with running_server(_config(tmp_path, slots=1, queue=0), engine) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        sock = _open_chat(port, stream=True)
        received = b""
        while received.count(b"data: ") < 3:  # the role chunk and two pieces
            received += sock.recv(65536)
        assert _status_and_headers(received)[0] == 200
        client = async_client(url)
        try:
            await client.chat.completions.create(model=BASE, messages=PROMPT, max_tokens=2)
            raise AssertionError("a second chat got the only slot")
        except openai.RateLimitError:
            pass
        sock.close()
        await wait_for(lambda: _true(len(engine.finished) == 1))
        assert engine.finished[0] < 100
        stream = await client.chat.completions.create(model=BASE, messages=PROMPT, max_tokens=2, stream=True)
        assert [c async for c in stream][-1].choices[0].finish_reason in ("stop", "length")

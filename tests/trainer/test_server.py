"""End-to-end tests of the trainer server through the real ``openai`` SDK.

A real uvicorn server runs on an ephemeral 127.0.0.1 port (in a thread, or a
subprocess for the restart test) with a real SQLite store in ``tmp_path``. The other
``test_trainer_server_*`` modules import the harness from here.
"""

from __future__ import annotations

import asyncio
import atexit
import email.policy
import functools
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx2
import openai
import pytest
from openai import AsyncOpenAI

from tests.standins.openai.recording import Exchange, decode_json
from tests.standins.spec_openai import exchange_violations, find_operation
from tests.trainer.tiny import TINY_MODEL_ID, make_tiny_engine, make_tiny_model_dir
from trainer.config import TrainerConfig
from trainer.engine import (
    Checkpoint,
    Engine,
    Example,
    Generation,
    GenerationParams,
    Hyperparameters,
    StepMetrics,
    TrainCallbacks,
    TrainRequest,
    TrainResult,
)
from trainer.server import serve, uvicorn_server

API_KEY = "sk-test-trainer-key"

# ----------------------------------------------------------------------------- data


def example(i: int, reply: str = "pong") -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You are a test bot."},
            {"role": "user", "content": f"ping {i}"},
            {"role": "assistant", "content": f"{reply} {i}"},
        ]
    }


def jsonl(n: int, reply: str = "pong") -> bytes:
    return "".join(json.dumps(example(i, reply)) + "\n" for i in range(n)).encode()


# ----------------------------------------------------------------------------- the real engine

BASE = TINY_MODEL_ID
"""The tiny random Llama that ``tests.trainer.tiny`` registers as the only base model."""


@functools.cache
def tiny_root() -> Path:
    """A per-process directory holding the tiny model (built once, removed at exit)."""
    root = Path(tempfile.mkdtemp(prefix="tunecord-tiny-"))
    atexit.register(shutil.rmtree, root, True)
    make_tiny_model_dir(root / "tiny-model")
    return root


@functools.cache
def tiny_engine() -> Engine:
    """One real ``LocalEngine`` over the tiny model, shared by the servers of this process."""
    return make_tiny_engine(tiny_root())


class PacedEngine:
    """The real engine with a pause after each training step, so a test can interrupt mid-run
    on a fast machine. Everything else (training itself, checkpoints, generation) is real."""

    def __init__(self, engine: Engine, step_pause: float) -> None:
        self.engine = engine
        self.step_pause = step_pause

    def base_models(self) -> list[str]:
        return self.engine.base_models()

    def resolve_hyperparameters(self, n_examples: int, requested: Mapping[str, Any]) -> Hyperparameters:
        return self.engine.resolve_hyperparameters(n_examples, requested)

    def count_tokens(self, base_model: str, example: Example) -> int:
        return self.engine.count_tokens(base_model, example)

    def train(self, request: TrainRequest, callbacks: TrainCallbacks) -> TrainResult:
        pause = self.step_pause

        class Paced:
            def on_start(self, total_steps: int, seconds_per_step: float | None) -> None:
                callbacks.on_start(total_steps, seconds_per_step)

            def on_step(self, metrics: StepMetrics) -> None:
                callbacks.on_step(metrics)
                time.sleep(pause)

            def on_checkpoint(self, checkpoint: Checkpoint) -> None:
                callbacks.on_checkpoint(checkpoint)

            def should_stop(self) -> bool:
                return callbacks.should_stop()

        return self.engine.train(request, Paced())

    def generate(self, base_model: str, adapter_dir: Path | None, messages: Sequence[Mapping[str, Any]],
                 params: GenerationParams) -> Generation:  # fmt: skip
        return self.engine.generate(base_model, adapter_dir, messages, params)


# ----------------------------------------------------------------------------- server harness


@contextmanager
def running_server(config: TrainerConfig, engine: Any) -> Iterator[str]:
    """Serve ``engine`` on an ephemeral loopback port in a thread; yields the ``/v1`` base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn_server(config, engine, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "trainer server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


class SpecRecorder:
    """httpx2 hooks that check every exchange with the shared OpenAI spec validator.

    Each request and answer (JSON, multipart upload, SSE stream) becomes a
    :class:`tests.standins.openai.recording.Exchange` and goes through
    :func:`tests.standins.spec_openai.exchange_violations`: request body and query
    against the spec, answer against the spec and the SDK's own pydantic types.
    """

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def hooks(self) -> dict[str, list[Any]]:
        return {"response": [self._on_response]}

    async def _on_response(self, response: httpx2.Response) -> None:
        request = response.request
        body = request.read()
        content_type = request.headers.get("content-type", "")
        exchange = Exchange(
            method=request.method,
            path=unquote(request.url.path),
            query=dict(request.url.params.multi_items()),
            headers=dict(request.headers),
            body=body,
            json=decode_json(body) if content_type.startswith("application/json") else None,
            form=_multipart_form(body, content_type) if content_type.startswith("multipart/") else None,
            status=response.status_code,
        )
        await response.aread()
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            datas = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
            exchange.sse = [json.loads(d) for d in datas if d != "[DONE]"]
            exchange.sse_done = bool(datas) and datas[-1] == "[DONE]"
        elif response.headers.get("content-type", "").startswith("application/json"):
            exchange.response_json = response.json()
        problems = exchange_violations(exchange)
        assert not problems, f"{exchange.describe()} breaks the OpenAI spec:\n" + "\n".join(problems)
        self.exchanges.append(exchange)

    def operations(self) -> set[str]:
        """``METHOD /template`` of every checked exchange."""
        found = (find_operation(e.method, e.path) for e in self.exchanges)
        return {f"{op.method} {op.template}" for op in found if op is not None}


def _multipart_form(body: bytes, content_type: str) -> dict[str, Any]:
    """Multipart fields as the shared validator expects them (file parts as dicts)."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        form[name] = {"filename": filename, "bytes": len(payload)} if filename else payload.decode()
    return form


def async_client(base_url: str, *, api_key: str = API_KEY, recorder: SpecRecorder | None = None) -> AsyncOpenAI:
    http_client = openai.DefaultAsyncHttpxClient(event_hooks=recorder.hooks() if recorder else {})
    return AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60, http_client=http_client)


async def wait_for(probe: Callable[[], Awaitable[Any]], *, timeout: float = 60, interval: float = 0.1) -> Any:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(interval)


async def wait_status(client: AsyncOpenAI, job_id: str, statuses: set[str], timeout: float = 120) -> Any:
    async def probe() -> Any:
        job = await client.fine_tuning.jobs.retrieve(job_id)
        return job if job.status in statuses else None

    return await wait_for(probe, timeout=timeout)


async def all_events(client: AsyncOpenAI, job_id: str) -> list[Any]:
    """Every event of a job, oldest first (the API pages newest first)."""
    events = [e async for e in client.fine_tuning.jobs.list_events(job_id, limit=7)]
    return events[::-1]


def make_config(tmp_path: Path) -> TrainerConfig:
    return TrainerConfig(data_dir=tmp_path / "trainer", api_key=API_KEY, org="testorg")


@pytest.fixture
def config(tmp_path: Path) -> TrainerConfig:
    return make_config(tmp_path)


@pytest.fixture
def server(config: TrainerConfig) -> Iterator[str]:
    with running_server(config, tiny_engine()) as url:
        yield url


# ----------------------------------------------------------------------------- tests


async def test_job_lifecycle_to_success_matches_spec(server: str) -> None:
    """Upload → job → events, metrics, checkpoints, results file → chat; every body spec-checked."""
    recorder = SpecRecorder()
    client = async_client(server, recorder=recorder)
    upload = await client.files.create(file=("train.jsonl", jsonl(12)), purpose="fine-tune")
    valid = await client.files.create(file=("valid.jsonl", jsonl(3)), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(
        model=BASE,
        training_file=upload.id,
        validation_file=valid.id,
        suffix="my-bot",
        seed=42,
        metadata={"guild": "123"},
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 4, "batch_size": 4, "learning_rate_multiplier": 5}}},
    )  # fmt: skip
    assert job.status == "validating_files"
    assert job.fine_tuned_model is None and job.trained_tokens is None
    done = await wait_status(client, job.id, {"succeeded", "failed", "cancelled"})
    assert done.status == "succeeded", done.error
    assert re.fullmatch(r"ftjob-[A-Za-z0-9]{24}", job.id)  # OpenAI's length
    assert done.fine_tuned_model == f"ft:{BASE}:testorg:my-bot:{job.id[6:14]}"  # 8 characters, as OpenAI's
    assert done.trained_tokens and done.trained_tokens > 0
    hp = done.hyperparameters
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (4, 4, 5.0)
    assert done.seed == 42 and done.metadata == {"guild": "123"}
    assert done.finished_at and done.estimated_finish is None

    events = await all_events(client, job.id)
    messages = [e.message for e in events]
    for expected in ("Created fine-tuning job", "Validating training file",
                     "Files validated, moving job to queued state", "Fine-tuning job started",
                     "Checkpoint created at step 3", "Checkpoint created at step 12",
                     f"New fine-tuned model created: {done.fine_tuned_model}",
                     "The job has successfully completed"):  # fmt: skip
        assert any(m.startswith(expected) for m in messages), (expected, messages)
    newest = await client.fine_tuning.jobs.list_events(job.id, limit=2)
    assert [e.message for e in newest.data] == ["The job has successfully completed", messages[-2]]
    assert newest.has_more
    older = await newest.get_next_page()
    assert [e.id for e in older.data] == [e.id for e in events[-4:-2][::-1]]
    metrics = [e for e in events if e.type == "metrics"]
    assert [e.data["step"] for e in metrics] == list(range(1, 13))
    assert metrics[-1].message.startswith("Step 12/12: training loss=")
    assert ", full validation loss=" in metrics[-1].message
    full = {"full_valid_loss", "full_valid_mean_token_accuracy"}
    assert [e.data["step"] for e in metrics if full <= set(e.data)] == [3, 6, 9, 12]  # each epoch's end
    assert not any(full & set(e.data) for e in metrics if e.data["step"] % 3)
    assert set(metrics[2].data) >= {"step", "train_loss", "valid_loss", "train_mean_token_accuracy", "total_steps"}
    assert metrics[-1].data["train_loss"] < metrics[0].data["train_loss"]

    checkpoints = [c async for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
    assert [c.step_number for c in checkpoints] == [12, 9, 6, 3]
    assert checkpoints[-1].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-3"
    assert checkpoints[-1].metrics.train_loss == pytest.approx(metrics[2].data["train_loss"])
    assert checkpoints[-1].metrics.full_valid_loss == pytest.approx(metrics[2].data["full_valid_loss"])
    assert checkpoints[0].metrics.full_valid_mean_token_accuracy == metrics[-1].data["full_valid_mean_token_accuracy"]
    snapshot_messages = [m for m in messages if m.startswith("Checkpoint created")]
    assert snapshot_messages == [f"Checkpoint created at step {c.step_number} with Snapshot ID: "
                                 f"{c.fine_tuned_model_checkpoint}" for c in checkpoints[::-1]]  # fmt: skip
    assert all(c.id.startswith("ftckpt_") and c.fine_tuning_job_id == job.id for c in checkpoints)
    first_page = await client.fine_tuning.jobs.checkpoints.list(job.id, limit=1)
    assert [c.step_number for c in first_page.data] == [12] and first_page.has_more
    assert [c.step_number for c in (await first_page.get_next_page()).data] == [9]

    csv_lines = (await client.files.content(done.result_files[0])).text.splitlines()
    assert csv_lines[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
    assert [line.split(",")[0] for line in csv_lines[1:]] == [str(i) for i in range(1, 13)]
    assert (await client.files.retrieve(done.result_files[0])).purpose == "fine-tune-results"

    jobs = [j async for j in client.fine_tuning.jobs.list(metadata={"guild": "123"})]
    assert [j.id for j in jobs] == [job.id]
    assert [j async for j in client.fine_tuning.jobs.list(metadata={"guild": "999"})] == []

    prompt = [{"role": "system", "content": "You are a test bot."}, {"role": "user", "content": "ping 3"}]
    base_reply = await client.chat.completions.create(model=BASE, messages=prompt, temperature=0, max_tokens=8)
    tuned = await client.chat.completions.create(model=done.fine_tuned_model, messages=prompt, temperature=0,
                                                 max_tokens=8)  # fmt: skip
    assert "pong" in tuned.choices[0].message.content  # it learned its training data
    assert "pong" not in base_reply.choices[0].message.content
    assert tuned.model == done.fine_tuned_model and tuned.usage.completion_tokens <= 8
    last_ckpt = await client.chat.completions.create(
        model=checkpoints[0].fine_tuned_model_checkpoint, messages=prompt, temperature=0, max_tokens=8
    )
    assert last_ckpt.choices[0].message.content == tuned.choices[0].message.content  # same weights
    first_ckpt = await client.chat.completions.create(
        model=checkpoints[-1].fine_tuned_model_checkpoint, messages=prompt, temperature=0, max_tokens=8
    )
    assert first_ckpt.model == checkpoints[-1].fine_tuned_model_checkpoint
    assert first_ckpt.choices[0].finish_reason in ("stop", "length")
    models = [m.id async for m in client.models.list()]
    assert models == [BASE, done.fine_tuned_model]
    assert recorder.operations() >= {
        "POST /files", "POST /fine_tuning/jobs", "GET /fine_tuning/jobs", "GET /fine_tuning/jobs/{fine_tuning_job_id}",
        "GET /fine_tuning/jobs/{fine_tuning_job_id}/events", "GET /fine_tuning/jobs/{fine_tuning_job_id}/checkpoints",
        "POST /chat/completions", "GET /models", "GET /files/{file_id}",
    }  # fmt: skip


# ----------------------------------------------------------------------------- subprocess server


def serve_in_subprocess_main(argv: Sequence[str]) -> None:
    """Entry point of :class:`ServerProcess`: ``DATA_DIR PORT_FILE TINY_ROOT STEP_PAUSE``."""
    data_dir, port_file, root, step_pause = argv
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = TrainerConfig(data_dir=Path(data_dir), api_key=API_KEY, org="testorg")
    engine = PacedEngine(make_tiny_engine(Path(root)), float(step_pause))
    Path(port_file).write_text(str(sock.getsockname()[1]))
    serve(config, engine, sock)


class ServerProcess:
    """``python -m trainer``'s :func:`serve` in a child process that a test can kill."""

    def __init__(self, data_dir: Path, step_pause: float = 0.0) -> None:
        self.port_file = data_dir.parent / f"port-{time.monotonic_ns()}"
        code = "import sys; from tests.trainer.test_server import serve_in_subprocess_main as m; m(sys.argv[1:])"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(data_dir), str(self.port_file), str(tiny_root()), str(step_pause)],
            cwd=Path(__file__).resolve().parents[2],
        )

    async def url(self, timeout: float = 60) -> str:
        """The ``/v1`` base URL once the server answers."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, "trainer subprocess exited"
            assert time.monotonic() < deadline, "trainer subprocess did not start"
            if self.port_file.exists() and self.port_file.read_text():
                base = f"http://127.0.0.1:{self.port_file.read_text()}"
                try:
                    async with httpx2.AsyncClient() as raw:
                        if (await raw.get(f"{base}/health")).status_code == 200:
                            return f"{base}/v1"
                except httpx2.TransportError:
                    pass
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, like a crash or a power cut."""
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> None:
        """SIGTERM: uvicorn's graceful shutdown."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

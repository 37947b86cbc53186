"""The OpenAI stand-in: an aiohttp app on 127.0.0.1 that the real ``openai`` SDK talks to.

Run it inside the test's event loop (``await server.start()``, or ``async with``) for
``AsyncOpenAI`` tests, or in a background thread (``with server.running_in_thread():``)
for the synchronous ``OpenAI`` client.  State lives in plain Python objects the test
can drive and inspect:

``server.clock``      the controlled clock (``advance(seconds)``)
``server.jobs``       fine-tuning jobs (``step``, ``run_to_completion``, ``fail``)
``server.files``      uploaded files
``server.models``     base catalogue and fine-tuned models
``server.faults``     injected faults (``rate_limit``, ``server_error``, ``timeout``, ``drop``)
``server.exchanges``  every request/response (:class:`.recording.Exchange`)
``server.chat_log``   every chat completion (:class:`.chat.ChatRecord`)
``server.config``     switches (API key, training availability, size cap, durations,
                      streaming pace)

Middleware order (outermost first): crash guard → recording → faults →
authentication → OpenAI error envelope → route.  Anything unexpected inside the
stand-in (a route, a middleware, response headers, a stream already under way) is
kept in ``server.internal_errors`` and answered as an OpenAI 500 (or, mid-stream, by
closing the connection); the fixtures and ``async with OpenAIStandin()`` then fail
the test with the tracebacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from . import chat, files, jobs, models, moderations
from .chat import ChatEngine, ChatRecord
from .clock import DEFAULT_EPOCH, FakeClock
from .errors import (
    APIErrorResponse,
    bad_request,
    invalid_api_key,
    invalid_url,
    missing_api_key,
    rate_limited,
    server_error,
)
from .faults import FaultPlan
from .files import FileStore, parse_multipart
from .ids import IdFactory
from .jobs import JobStore
from .models import BaseModelInfo, ModelStore, default_catalogue, iso_date
from .moderations import Moderator
from .recording import EXCHANGE_KEY, Exchange, decode_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
INVALID_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. "
    "If you have trouble figuring out how to fix this, please contact us through our help center at "
    "help.openai.com.)"
)


@dataclass
class StandinConfig:
    """Switches a test may flip at any time (also after the server started).

    ``api_key``: the only key accepted when ``require_api_key`` (401 otherwise).
    ``training_available``: ``False`` makes ``jobs.create`` answer 403
    ``training_not_available`` like OpenAI does for organisations that may no longer train.
    ``max_file_bytes`` / ``oversize_status``: upload cap and the status (413 or 400) above it.
    ``validation_seconds`` / ``queue_seconds`` / ``seconds_per_step``: job durations on the clock.
    ``stream_chunk_seconds``: real seconds between two SSE chunks of a streamed chat
    completion (0 = all at once), so a bot's edit throttling can be exercised.
    """

    api_key: str = "sk-standin-0123456789abcdef"
    require_api_key: bool = True
    organization_id: str = "org-standin"
    organization_slug: str = "tunecord"
    training_available: bool = True
    max_file_bytes: int = 512 * 1024 * 1024
    oversize_status: int = 413
    validation_seconds: float = 5.0
    queue_seconds: float = 10.0
    seconds_per_step: float = 1.0
    emit_moderation_events: bool = True
    start_time: float = DEFAULT_EPOCH
    stream_chunk_seconds: float = 0.0


class OpenAIStandin:
    """A stateful OpenAI API on loopback; see the module docstring."""

    def __init__(
        self, config: StandinConfig | None = None, catalogue: list[BaseModelInfo] | None = None
    ) -> None:
        self.config = config or StandinConfig()
        self.lock = threading.RLock()
        self.clock = FakeClock(self.config.start_time, lock=self.lock)
        self.ids = IdFactory()
        self.models = ModelStore(catalogue or default_catalogue(), lambda: iso_date(self.clock.now))
        self.files = FileStore(self)
        self.jobs = JobStore(self)
        self.chat = ChatEngine(self)
        self.moderation = Moderator(self)
        self.faults = FaultPlan()
        self.exchanges: list[Exchange] = []
        self.chat_log: list[ChatRecord] = []
        self.internal_errors: list[str] = []
        self.validate_spec = True  # read by the pytest fixtures at teardown
        self.app = self._build_app()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # -- conveniences for tests --------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass as ``AsyncOpenAI(base_url=...)``."""
        if self._port is None:
            raise RuntimeError("the stand-in is not running")
        return f"http://127.0.0.1:{self._port}/v1"

    def set_training_available(self, available: bool) -> None:
        """Flip the ``training_not_available`` (403) switch for ``jobs.create``."""
        self.config.training_available = available

    def set_stream_pace(self, seconds_per_chunk: float) -> None:
        """Real seconds between streamed chat chunks (``config.stream_chunk_seconds``)."""
        self.config.stream_chunk_seconds = float(seconds_per_chunk)

    def check_internal_errors(self) -> None:
        """Fail if anything inside the stand-in raised an unhandled exception."""
        if self.internal_errors:
            raise AssertionError("the OpenAI stand-in crashed:\n" + "\n".join(self.internal_errors))

    async def pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the server stops first; ``True`` if it is stopping."""
        stopping = self._stopping
        if stopping is None:
            await asyncio.sleep(seconds)
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)
        return stopping.is_set()

    def requests_to(self, method: str, path_prefix: str) -> list[Exchange]:
        """Recorded exchanges with this method whose path starts with ``path_prefix``."""
        return [
            e
            for e in self.exchanges
            if e.method == method.upper() and e.path.startswith(path_prefix)
        ]

    def upload(self, filename: str, content: bytes, purpose: str = "fine-tune") -> str:
        """Store a file directly (no HTTP); returns its id."""
        with self.lock:
            return self.files.add(filename, purpose, content).id

    # -- helpers used by route modules -------------------------------------------
    @staticmethod
    def json(body: Any, status: int = 200) -> web.Response:
        """A JSON response."""
        return web.Response(
            status=status, body=json.dumps(body).encode(), content_type="application/json"
        )

    @staticmethod
    async def read_json(request: web.Request) -> Any:
        """The request's JSON body, or OpenAI's 400 for unparsable JSON."""
        raw = await request.read()
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise bad_request(INVALID_JSON_MESSAGE) from None

    # -- app ---------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[
                self._crash_mw,
                self._record_mw,
                self._fault_mw,
                self._auth_mw,
                self._error_mw,
            ],
            client_max_size=1024**3,
        )
        for module in (files, jobs, models, chat, moderations):
            app.router.add_routes(module.routes(self))

        async def unknown(request: web.Request) -> web.Response:
            raise invalid_url(request.method, request.path)

        app.router.add_route("*", "/{tail:.*}", unknown)
        app.on_response_prepare.append(self._add_openai_headers)
        return app

    async def _add_openai_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """Headers OpenAI puts on every answer (the SDK exposes ``x-request-id`` as ``_request_id``)."""
        response.headers.setdefault("x-request-id", self.ids.new("req_", 32))
        response.headers.setdefault("openai-organization", self.config.organization_slug)
        response.headers.setdefault("openai-version", "2020-10-01")
        response.headers.setdefault("openai-processing-ms", "1")
        exchange = request.get(EXCHANGE_KEY)
        if exchange is not None:
            exchange.response_headers = CIMultiDict(response.headers)

    def _record_crash(self, request: web.Request) -> None:
        self.internal_errors.append(f"{request.method} {request.path}:\n{traceback.format_exc()}")

    @web.middleware
    async def _crash_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Outermost: a crash anywhere below (or while sending headers) is recorded."""
        try:
            response = await handler(request)
            if not response.prepared:
                await response.prepare(request)  # header problems surface here
            return response
        except (web.HTTPException, ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            self._record_crash(request)
            exchange = request.get(EXCHANGE_KEY)
            if exchange is not None:
                exchange.status = 500
            return server_error(500).to_response()

    @web.middleware
    async def _record_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        exchange = Exchange(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDict(request.headers),
            body=body,
        )
        if exchange.content_type == "application/json":
            exchange.json = decode_json(body)
        elif exchange.content_type.startswith("multipart/"):
            with contextlib.suppress(APIErrorResponse):
                exchange.form = {
                    name: (
                        value.decode("utf-8", "replace")
                        if filename is None
                        else {"filename": filename, "bytes": len(value), "content": value}
                    )
                    for name, (filename, value) in parse_multipart(
                        request.headers["Content-Type"], body
                    ).items()
                }
        with self.lock:
            self.exchanges.append(exchange)
        request[EXCHANGE_KEY] = exchange
        try:
            response = await handler(request)
        except ConnectionResetError:
            exchange.dropped = True
            raise
        exchange.status = response.status
        exchange.response_headers = CIMultiDict(response.headers)
        if isinstance(response, web.Response) and response.body is not None:
            exchange.response_body = bytes(response.body)  # type: ignore[arg-type]
            if response.content_type == "application/json":
                exchange.response_json = decode_json(exchange.response_body)
        return response

    @web.middleware
    async def _fault_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        fault = self.faults.take(request.method, request.path)
        if fault is None:
            return await handler(request)
        request[EXCHANGE_KEY].fault = fault.kind
        if fault.kind == "rate_limit":
            return rate_limited(fault.retry_after_ms).to_response()
        if fault.kind == "status":
            if fault.status >= 500:
                return server_error(fault.status).to_response()
            return APIErrorResponse(fault.status, f"Injected error {fault.status}.").to_response()
        if fault.kind == "drop":
            request[EXCHANGE_KEY].dropped = True
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError("stand-in dropped the connection on purpose")
        # timeout: hold the answer, but give up early when the server stops
        stopping = self._stopping
        if stopping is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), fault.delay)
        else:
            await asyncio.sleep(fault.delay)
        return await handler(request)

    @web.middleware
    async def _auth_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.config.require_api_key:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or not header[7:].strip():
                return missing_api_key().to_response()
            if header[7:].strip() != self.config.api_key:
                return invalid_api_key(header[7:].strip()).to_response()
        return await handler(request)

    @web.middleware
    async def _error_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except APIErrorResponse as err:
            return err.to_response()
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            self._record_crash(request)
            exchange = request.get(EXCHANGE_KEY)
            if exchange is not None and exchange.sse is not None:
                # the stream had started: no status to send any more, cut it off
                exchange.dropped = True
                if request.transport is not None:
                    request.transport.close()
                raise ConnectionResetError("stand-in crashed mid-stream") from None
            return server_error(500).to_response()

    # -- lifecycle: in the current event loop ------------------------------------
    async def start(self, port: int = 0) -> OpenAIStandin:
        """Listen on ``127.0.0.1:port`` (0 = any free port) in the running loop."""
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Stop listening; held (``timeout``) responses are released first."""
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OpenAIStandin:
        return await self.start()

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        await self.stop()
        if exc_type is None:
            self.check_internal_errors()

    # -- lifecycle: in a background thread (sync clients) ------------------------
    def start_in_thread(self, port: int = 0) -> OpenAIStandin:
        """Run the server in its own thread and event loop; returns once it listens."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.start(port))
            except BaseException as exc:  # pragma: no cover - reported to the caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="openai-standin", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        """Stop a server started with :meth:`start_in_thread`."""
        if self._thread_loop is not None and self._thread is not None:
            self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
            self._thread.join(10)
            self._thread = None
            self._thread_loop = None

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[OpenAIStandin]:
        """``with server.running_in_thread(): OpenAI(base_url=server.base_url, ...)``."""
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop_thread()
        self.check_internal_errors()

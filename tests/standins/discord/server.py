"""The stand-in server: one aiohttp app serving REST v10, the gateway and a CDN.

* ``/api/v10/...``  REST (handlers in :mod:`.rest`), behind middlewares that
  parse bodies (JSON or multipart with ``payload_json`` + ``files[n]``),
  check ``Authorization: Bot <token>`` (interaction callbacks and webhooks
  are authenticated by their token instead), inject :mod:`.faults`, render
  :class:`~.errors.DiscordHTTPError` as Discord's JSON errors, add
  ``X-RateLimit-*`` headers, answer unknown routes with a JSON 404, and
  record every exchange (:mod:`.traffic`).
* ``/gateway``  the WebSocket gateway (:mod:`.gateway`).
* ``/attachments/{channel}/{id}/{filename}``  uploaded files, so
  ``Attachment.read()`` works; served with the attachment's own
  ``Content-Type`` (parameters included, e.g. ``text/plain; charset=utf-8``).

Any unhandled exception inside the stand-in (a REST handler, the CDN, the
gateway) is a stand-in bug: it is answered as a 500 (or a 1011 close) and
kept in :attr:`DiscordStandIn.handler_errors` (alias ``internal_errors``);
the ``discord_server`` fixture, :meth:`~DiscordStandIn.assert_spec_conformance`
and ``async with DiscordStandIn()`` fail the test with the tracebacks.

Point discord.py at it with :func:`.fixtures.running_bot` (sets
``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY``).
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import rest
from .driver import WorldBuilder
from .errors import DiscordHTTPError
from .faults import Faults, rate_limited_response, ratelimit_headers
from .gateway import Gateway
from .interactions import Interactions
from .keys import JSON_BODY, PAYLOAD, RECEIVED_AT, STANDIN, UPLOADS
from .messages import Upload
from .permissions import DEFAULT_EVERYONE
from .state import Attachment, World
from .traffic import Exchange, spec_violations

API = "/api/v10"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_TOKEN_ROUTES = ("/interactions/", "/webhooks/")


class DiscordStandIn(WorldBuilder):
    """A Discord API + gateway on 127.0.0.1 for the real discord.py client.

    Parameters
    ----------
    ack_deadline:
        Seconds an interaction may stay unacknowledged (Discord: 3).
    token_ttl:
        Seconds an interaction token works for follow-ups (Discord: 900).
    heartbeat_interval_ms:
        Sent in HELLO.
    heartbeat_ack_delay:
        Seconds between receiving a heartbeat and sending its ACK (a
        network round trip; see :class:`~.gateway.Gateway`).
    """

    def __init__(
        self,
        *,
        bot_name: str = "tunecord-test",
        bot_token: str = "stand-in.bot.token",
        ack_deadline: float = 3.0,
        token_ttl: float = 900.0,
        heartbeat_interval_ms: int = 41250,
        heartbeat_ack_delay: float = 0.05,
    ) -> None:
        self.world = World(bot_name=bot_name)
        self.bot_token = bot_token
        self.faults = Faults()
        self.gateway = Gateway(
            self,
            heartbeat_interval_ms=heartbeat_interval_ms,
            heartbeat_ack_delay=heartbeat_ack_delay,
        )
        self.interactions = Interactions(self, ack_deadline=ack_deadline, token_ttl=token_ttl)
        self.exchanges: list[Exchange] = []
        self.cdn: dict[tuple[int, int], Attachment] = {}
        self.typing: list[tuple[int, float]] = []
        self.closed_dms: set[int] = set()
        self.handler_errors: list[str] = []
        self.dm_app_permissions = DEFAULT_EVERYONE
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """Value for ``discord.http.Route.BASE``."""
        return self.url + API

    @property
    def gateway_url(self) -> str:
        """Value for ``DiscordWebSocket.DEFAULT_GATEWAY`` (and READY's
        ``resume_gateway_url``)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> DiscordStandIn:
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for conn in list(self.gateway.connections):
            if not conn.ws.closed:
                await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordStandIn:
        return await self.start()

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        await self.stop()
        if exc_type is None:
            self.check_internal_errors()

    # ----------------------------------------------------------- observation
    def calls(self, method: str | None = None, route: str | None = None) -> list[Exchange]:
        """Recorded REST exchanges, filtered by method and route template
        (``"/channels/{channel_id}/messages"``)."""
        return [
            e
            for e in self.exchanges
            if (method is None or e.method == method) and (route is None or e.route == route)
        ]

    def spec_violations(self) -> list[str]:
        return spec_violations(self.exchanges)

    @property
    def internal_errors(self) -> list[str]:
        """Tracebacks of stand-in crashes (same list as ``handler_errors``)."""
        return self.handler_errors

    def record_crash(self, where: str) -> None:
        """Keep the current exception's traceback as a stand-in crash."""
        self.handler_errors.append(f"{where}:\n{traceback.format_exc()}")
        self.world.changed()

    def check_internal_errors(self) -> None:
        """Fail if anything inside the stand-in raised an unhandled exception."""
        if self.handler_errors:
            raise AssertionError("stand-in handler crashed:\n" + "\n".join(self.handler_errors))

    def assert_spec_conformance(self) -> None:
        """Fail if the stand-in crashed or any recorded request/response
        violates the OpenAPI spec."""
        self.check_internal_errors()
        problems = self.spec_violations()
        if problems:
            raise AssertionError(
                f"{len(problems)} Discord OpenAPI violation(s):\n" + "\n".join(problems[:30])
            )

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 5.0, what: str = ""
    ) -> Any:
        """Wait (without sleeping) until ``predicate()`` is truthy; returns it."""
        return await self.world.notifier.wait_for(predicate, timeout, what)

    # -------------------------------------------------------------- the app
    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app[STANDIN] = self
        for method, path, handler in rest.ROUTES:
            app.router.add_route(method, API + path, handler)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn)
        return app

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        try:
            key = (int(request.match_info["channel_id"]), int(request.match_info["attachment_id"]))
        except ValueError:
            raise web.HTTPNotFound() from None
        att = self.cdn.get(key)
        if att is None:
            raise web.HTTPNotFound()
        # The stored type verbatim: ``content_type=`` would reject parameters
        # such as ``; charset=utf-8``, which Discord reports for text files.
        return web.Response(
            body=att.data,
            headers={"Content-Type": att.content_type or "application/octet-stream"},
        )

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.path.startswith(API):
                resp = await self._api(request, handler)
            else:
                resp = await handler(request)
            if not resp.prepared:
                # headers are serialised here, not after the middleware, so a
                # bad header value is caught as a crash like any other
                await resp.prepare(request)
            return resp
        except (web.HTTPException, ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:  # a stand-in bug (CDN, gateway, or outside a REST handler)
            self.record_crash(f"{request.method} {request.path}")
            return web.Response(status=500, text="500: stand-in crashed")

    async def _api(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical[len(API) :] if resource is not None else None
        ex = Exchange(
            method=request.method,
            path=request.path,
            route=route,
            query=dict(request.query),
            headers={k: v for k, v in request.headers.items() if k.lower() in _KEPT_HEADERS},
            request_json=None,
            request_content_type=request.content_type,
            upload_names=[],
            started=time.monotonic(),
        )
        self.exchanges.append(ex)
        request[RECEIVED_AT] = ex.started
        try:
            resp = await self._handle(request, handler, ex, route)
        except DiscordHTTPError as exc:
            resp = _json(exc.payload(), exc.status)
        except Exception:  # a stand-in bug: answer 500 and fail the test at teardown
            self.record_crash(f"{request.method} {request.path}")
            resp = _json({"message": "500: stand-in handler crashed", "code": 0}, 500)
            ex.fault = "5xx"
        if route is not None and resp.status != 429:
            resp.headers.update(ratelimit_headers(route))
        ex.status = resp.status
        ex.response_json = resp.get(PAYLOAD)
        ex.finished = time.monotonic()
        self.world.changed()
        return resp

    async def _handle(
        self, request: web.Request, handler: Handler, ex: Exchange, route: str | None
    ) -> web.StreamResponse:
        await _parse_body(request, ex)
        if route is None:
            status = (
                405
                if isinstance(request.match_info.http_exception, web.HTTPMethodNotAllowed)
                else 404
            )
            reason = "Method Not Allowed" if status == 405 else "Not Found"
            return _json({"message": f"{status}: {reason}", "code": 0}, status)
        if not route.startswith(_TOKEN_ROUTES):
            if request.headers.get("Authorization") != f"Bot {self.bot_token}":
                return _json({"message": "401: Unauthorized", "code": 0}, 401)
        for fault in self.faults.take(request.method, route):
            ex.fault = ex.fault or fault.kind
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay)
            elif fault.kind == "429":
                body, headers = rate_limited_response(fault, route)
                resp = _json(body, 429)
                resp.headers.update(headers)
                return resp
            elif fault.kind == "5xx":
                return _json({"message": f"{fault.status}: Server Error", "code": 0}, fault.status)
        return await handler(request)

    # ------------------------------------------------------ events (helpers)
    def member_updated(self, guild: Any, member: Any) -> None:
        """Dispatch ``GUILD_MEMBER_UPDATE`` for ``member``."""
        data = member.payload()
        data["guild_id"] = str(guild.id)
        self.gateway.dispatch("GUILD_MEMBER_UPDATE", data, guild_id=guild.id)


_KEPT_HEADERS = {"authorization", "content-type", "user-agent", "x-audit-log-reason"}


def _json(data: Any, status: int) -> web.Response:
    resp = web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )
    resp[PAYLOAD] = data
    return resp


async def _parse_body(request: web.Request, ex: Exchange) -> None:
    """Parse JSON or multipart (``payload_json`` + ``files[n]``) bodies."""
    request[UPLOADS] = []
    if not request.can_read_body:
        return
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        uploads: list[Upload] = []
        async for part in reader:
            if part is None:
                break
            name = part.name or ""
            data = await part.read(decode=False)  # type: ignore[union-attr]
            if name == "payload_json":
                request[JSON_BODY] = json.loads(data)
            elif part.filename is not None:  # type: ignore[union-attr]
                ctype = part.headers.get("Content-Type")
                uploads.append(Upload(part.filename, bytes(data), ctype, field=name))  # type: ignore[union-attr]
        request[UPLOADS] = uploads
        ex.upload_names = [u.filename for u in uploads]
    else:
        raw = await request.read()
        if not raw:
            return
        try:
            request[JSON_BODY] = json.loads(raw)
        except ValueError:
            raise DiscordHTTPError(400, 50109, "The request body contains invalid JSON.") from None
    ex.request_json = request.get(JSON_BODY)

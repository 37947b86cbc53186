"""The gateway: Discord's WebSocket protocol (v10, JSON, plain text frames).

Flow emulated (see discord.py ``gateway.py`` ``DiscordWebSocket``):

1. On connect the server sends ``HELLO {heartbeat_interval}``.
2. The client heartbeats (op 1, ``d`` = last sequence); the server ACKs
   (op 11) after ``heartbeat_ack_delay`` seconds (default 0.05 s, a
   realistic round trip).  The delay matters: discord.py's keep-alive
   thread records the send time only after the send coroutine has finished
   on the event loop, so an instant loopback ACK is measured against the
   *previous* beat (``bot.latency`` ~ the heartbeat interval, plus a
   "Can't keep up" warning for intervals above 10 s).  The server may
   request a beat with op 1.
3. ``IDENTIFY`` (op 2) -> ``READY`` (``session_id``, ``resume_gateway_url``,
   ``application``, unavailable guilds) then one ``GUILD_CREATE`` per guild.
   A bad token closes with 4004; privileged intents the application has not
   been granted close with 4014; a second IDENTIFY closes with 4005.
4. ``RESUME`` (op 6) on a known session replays every event after the
   client's ``seq`` and then sends ``RESUMED``; an unknown session gets
   ``INVALID_SESSION`` (op 9, ``d: false``) so the client re-identifies.
5. ``RECONNECT`` (op 7) asks the client to reconnect and resume.

A frame that is not a JSON object closes the connection with 4002 (decode
error); an unhandled exception while handling a frame is a stand-in bug: it
is recorded on the server (``handler_errors``) and the connection is closed
with 1011.

Events are filtered by the session's intents (:mod:`.intents`) and buffered
per session, so events dispatched while the bot is disconnected are replayed
on RESUME like Discord does.  The compression requested in the URL
(``compress=zlib-stream``) is ignored: discord.py accepts uncompressed TEXT
frames.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from . import intents as I

if TYPE_CHECKING:
    from .server import DiscordStandIn
    from .state import World

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, VOICE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

PerSession = Callable[["Session", dict[str, Any]], dict[str, Any] | None]


@dataclass
class Close:
    code: int
    reason: str = ""


@dataclass(eq=False)
class Connection:
    """One WebSocket connection (a session may span several)."""

    ws: web.WebSocketResponse
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    session: Session | None = None
    heartbeats: int = 0
    last_heartbeat_seq: int | None = None
    close_code: int | None = None
    acks: int = 0
    #: ``time.monotonic()`` of each heartbeat received / ACK sent
    heartbeats_at: list[float] = field(default_factory=list)
    acks_at: list[float] = field(default_factory=list)

    def send(self, frame: dict[str, Any] | Close) -> None:
        self.outbox.put_nowait(frame)


@dataclass(eq=False)
class Session:
    """A gateway session: identity, intents, sequence and replay buffer."""

    id: str
    intents: int
    identify: dict[str, Any]
    seq: int = 0
    buffer: list[dict[str, Any]] = field(default_factory=list)
    conn: Connection | None = None
    invalid: bool = False

    def push(self, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        frame = {"op": DISPATCH, "t": event, "s": self.seq, "d": data}
        self.buffer.append(frame)
        del self.buffer[:-1000]
        if self.conn is not None:
            self.conn.send(frame)


class Gateway:
    """Gateway endpoint plus test controls (faults and observations)."""

    def __init__(
        self,
        server: DiscordStandIn,
        *,
        heartbeat_interval_ms: int = 41250,
        heartbeat_ack_delay: float = 0.05,
    ) -> None:
        self.server = server
        self.heartbeat_interval_ms = heartbeat_interval_ms
        #: seconds between a heartbeat and its ACK (see the module docstring)
        self.heartbeat_ack_delay = heartbeat_ack_delay
        self.sessions: dict[str, Session] = {}
        self.connections: list[Connection] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.presence_updates: list[dict[str, Any]] = []
        self.member_requests: list[dict[str, Any]] = []
        self.client_close_codes: list[int | None] = []
        self.heartbeats = 0
        self.heartbeat_acks = 0
        self.connects = 0
        self._fail_next_resume = False

    # ------------------------------------------------------------ observations
    @property
    def world(self) -> World:
        return self.server.world

    @property
    def active(self) -> list[Connection]:
        return [c for c in self.connections if not c.ws.closed and c.session is not None]

    @property
    def last_identify(self) -> dict[str, Any]:
        """The ``d`` of the latest IDENTIFY (e.g. ``["intents"]``)."""
        return self.identifies[-1]

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 5.0, what: str = ""
    ) -> Any:
        return await self.world.notifier.wait_for(predicate, timeout, what or "gateway condition")

    # -------------------------------------------------------------- dispatching
    def dispatch(
        self,
        event: str,
        data: dict[str, Any],
        *,
        guild_id: int | None = None,
        per_session: PerSession | None = None,
    ) -> None:
        """Send ``event`` to every live session whose intents allow it."""
        needed = I.required_intent(event, in_guild=guild_id is not None)
        for session in list(self.sessions.values()):
            if session.invalid or (needed and not session.intents & needed):
                continue
            payload = per_session(session, data) if per_session else data
            if payload is not None:
                session.push(event, payload)
        self.world.changed()

    def dispatch_message(self, event: str, data: dict[str, Any], guild_id: int | None) -> None:
        """``MESSAGE_CREATE``/``MESSAGE_UPDATE`` with the MESSAGE_CONTENT rule."""
        bot_id = self.world.bot_user.id

        def shape(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
            if session.intents & I.MESSAGE_CONTENT:
                return payload
            return I.redact_content(payload, bot_id)

        self.dispatch(event, data, guild_id=guild_id, per_session=shape)

    # ------------------------------------------------------------ test controls
    async def disconnect(self, code: int = 4000, reason: str = "stand-in disconnect") -> None:
        """Close every live connection with ``code`` (4000 = resumable,
        4004/4010-4014 = fatal for discord.py)."""
        for conn in self.active:
            conn.send(Close(code, reason))

    async def send_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client closes and RESUMEs."""
        for conn in self.active:
            conn.send({"op": RECONNECT, "d": None})

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION; ``resumable=False`` forces a new IDENTIFY."""
        for conn in self.active:
            if not resumable and conn.session is not None:
                conn.session.invalid = True
            conn.send({"op": INVALID_SESSION, "d": resumable})

    async def request_heartbeat(self) -> None:
        """Send op 1: the client must heartbeat immediately."""
        for conn in self.active:
            conn.send({"op": HEARTBEAT, "d": None})

    def fail_next_resume(self) -> None:
        """Answer the next RESUME with INVALID_SESSION (session expired)."""
        self._fail_next_resume = True

    # ----------------------------------------------------------- the endpoint
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = Connection(ws)
        self.connections.append(conn)
        self.connects += 1
        writer = asyncio.create_task(self._writer(conn))
        conn.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    frame = None
                if not isinstance(frame, dict):
                    conn.send(Close(4002, "Error while decoding payload."))
                    continue
                try:
                    await self._on_frame(conn, frame)
                except Exception:  # a stand-in bug: record it, fail the test at teardown
                    self.server.record_crash(f"gateway op {frame.get('op')!r}")
                    conn.send(Close(1011, "stand-in crashed"))
        finally:
            conn.close_code = ws.close_code
            self.client_close_codes.append(ws.close_code)
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            conn.send(Close(1000))
            await asyncio.wait([writer], timeout=1)
            writer.cancel()
            self.world.changed()
        return ws

    async def _writer(self, conn: Connection) -> None:
        while True:
            frame = await conn.outbox.get()
            if conn.ws.closed:
                return
            if isinstance(frame, Close):
                await conn.ws.close(code=frame.code, message=frame.reason.encode())
                return
            try:
                await conn.ws.send_str(json.dumps(frame))
            except (ConnectionResetError, RuntimeError):
                return
            except Exception:  # e.g. an unserialisable payload: a stand-in bug
                self.server.record_crash(f"gateway send {frame.get('t') or frame.get('op')!r}")
                return
            if frame.get("op") == HEARTBEAT_ACK:
                conn.acks += 1
                conn.acks_at.append(time.monotonic())
                self.heartbeat_acks += 1
                self.world.changed()
                # waiters on client-side state (``bot.latency``) re-check once
                # the client has had time to read the ACK
                loop = asyncio.get_running_loop()
                for delay in (0.01, 0.1):
                    loop.call_later(delay, self.world.changed)

    def _ack(self, conn: Connection) -> None:
        """Send op 11 after :attr:`heartbeat_ack_delay` (without blocking reads)."""
        ack = {"op": HEARTBEAT_ACK}
        if self.heartbeat_ack_delay <= 0:
            conn.send(ack)
        else:
            asyncio.get_running_loop().call_later(self.heartbeat_ack_delay, conn.send, ack)

    async def _on_frame(self, conn: Connection, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == HEARTBEAT:
            conn.heartbeats += 1
            conn.heartbeats_at.append(time.monotonic())
            conn.last_heartbeat_seq = data
            self.heartbeats += 1
            self._ack(conn)
            self.world.changed()
        elif op == IDENTIFY:
            self._identify(conn, data or {})
        elif op == RESUME:
            self._resume(conn, data or {})
        elif conn.session is None:
            conn.send(Close(4003, "Not authenticated."))
        elif op == PRESENCE:
            self.presence_updates.append(data)
            self.world.changed()
        elif op == REQUEST_MEMBERS:
            self._request_members(conn, data or {})
        elif op == VOICE:
            pass
        else:
            conn.send(Close(4001, "Unknown opcode."))

    def _identify(self, conn: Connection, data: dict[str, Any]) -> None:
        self.identifies.append(data)
        self.world.changed()
        if conn.session is not None:
            conn.send(Close(4005, "Already authenticated."))
            return
        if data.get("token") != self.server.bot_token:
            conn.send(Close(4004, "Authentication failed."))
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents & ~I.ALL_KNOWN:
            conn.send(Close(4013, "Invalid intent(s)."))
            return
        granted = self.world.application.privileged_intents
        if intents & I.PRIVILEGED & ~granted:
            conn.send(Close(4014, "Disallowed intent(s)."))
            return
        session = Session(uuid.uuid4().hex, intents, data)
        self.sessions[session.id] = session
        session.conn = conn
        conn.session = session
        world = self.world
        guilds = [g for g in world.guilds.values() if world.bot_user.id in g.members]
        session.push(
            "READY",
            {
                "v": 10,
                "user": world.bot_user.payload(),
                "user_settings": {},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "session_id": session.id,
                "session_type": "normal",
                "resume_gateway_url": self.server.gateway_url,
                "shard": data.get("shard", [0, 1]),
                "application": {"id": str(world.application.id), "flags": world.application.flags},
                "geo_ordered_rtc_regions": [],
                "auth": {},
                "_trace": ["stand-in"],
            },
        )
        if intents & I.GUILDS:
            for guild in guilds:
                payload = guild.gateway_payload(world.guild_joined.get(guild.id, 0.0))
                session.push("GUILD_CREATE", payload)
        self.world.changed()

    def _resume(self, conn: Connection, data: dict[str, Any]) -> None:
        self.resumes.append(data)
        self.world.changed()
        session = self.sessions.get(data.get("session_id", ""))
        fail = self._fail_next_resume
        self._fail_next_resume = False
        if fail or session is None or session.invalid or data.get("token") != self.server.bot_token:
            if session is not None:
                session.invalid = True
            conn.send({"op": INVALID_SESSION, "d": False})
            return
        if session.conn is not None and session.conn is not conn:
            session.conn.send(Close(4000, "Session resumed elsewhere."))
        session.conn = conn
        conn.session = session
        seq = data.get("seq") or 0
        for frame in session.buffer:
            if frame["s"] > seq:
                conn.send(frame)
        session.push("RESUMED", {"_trace": ["stand-in"]})

    def _request_members(self, conn: Connection, data: dict[str, Any]) -> None:
        """op 8 -> one GUILD_MEMBERS_CHUNK per requested guild."""
        self.member_requests.append(data)
        guild_ids = data.get("guild_id")
        if not isinstance(guild_ids, list):
            guild_ids = [guild_ids]
        for gid in guild_ids:
            guild = self.world.guilds.get(int(gid))
            if guild is None or conn.session is None:
                continue
            members = list(guild.members.values())
            query = data.get("query") or ""
            if query:
                members = [m for m in members if m.user.username.startswith(query)]
            if data.get("user_ids"):
                wanted = {int(u) for u in data["user_ids"]}
                members = [m for m in members if m.user.id in wanted]
            limit = data.get("limit") or 0
            if limit:
                members = members[:limit]
            chunk = {
                "guild_id": str(guild.id),
                "members": [m.payload() for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
            }
            if data.get("nonce"):
                chunk["nonce"] = data["nonce"]
            conn.session.push("GUILD_MEMBERS_CHUNK", chunk)

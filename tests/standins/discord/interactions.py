"""Interaction lifecycle: the rules Discord applies to callbacks and webhooks.

* An interaction must be acknowledged (one callback) within
  ``ack_deadline`` seconds (Discord: 3 s).  Later, the callback gets
  ``404 {"code": 10062, "message": "Unknown interaction"}``.
* Only one initial response: a second callback gets
  ``400 {"code": 40060, "message": "Interaction has already been acknowledged."}``.
* The token then works as a webhook for ``token_ttl`` seconds (Discord:
  15 min): follow-ups (``POST /webhooks/{app}/{token}``) and
  ``GET/PATCH/DELETE /webhooks/{app}/{token}/messages/{@original|id}``.
  After that: ``401 {"code": 50027, "message": "Invalid Webhook Token"}``.
  Before any acknowledgement the webhook does not exist yet (10015).
* Callback types allowed per interaction type: commands 4/5/9, components
  4/5/6/7/9, autocomplete 8, modal submits 4/5/6/7.
* After a deferred response (type 5) the first follow-up replaces the
  "thinking" message and inherits its ephemerality, as on Discord.
* ``?with_response=1`` returns the ``InteractionCallbackResponse`` shape
  (``interaction.response_message_id`` etc.; ``resource.message`` for 4 and 7);
  without it the callback answers 204.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import rules
from .errors import (
    INTERACTION_ALREADY_ACKNOWLEDGED,
    INVALID_WEBHOOK_TOKEN,
    UNKNOWN_INTERACTION,
    UNKNOWN_MESSAGE,
    UNKNOWN_WEBHOOK,
    DiscordHTTPError,
    FormErrors,
)
from .messages import Upload, create_message, delete_message, edit_message
from .state import EPHEMERAL, IS_COMPONENTS_V2, LOADING, Channel, Message, User

if TYPE_CHECKING:
    from .server import DiscordStandIn

PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {4, 5, 9},
    MESSAGE_COMPONENT: {4, 5, 6, 7, 9},
    AUTOCOMPLETE: {8},
    MODAL_SUBMIT: {4, 5, 6, 7},
}
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024


@dataclass(eq=False)
class InteractionRecord:
    """Server-side record of one interaction and everything the bot did with it."""

    id: int
    token: str
    type: int
    payload: dict[str, Any]
    user: User
    channel: Channel
    created: float
    ack_deadline: float
    token_ttl: float
    source_message_id: int | None = None
    command_type: int | None = None
    callback: dict[str, Any] | None = None
    callback_type: int | None = None
    acked_at: float | None = None
    original_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)
    rejections: list[tuple[int, int]] = field(default_factory=list)
    modal: dict[str, Any] | None = None
    choices: list[dict[str, Any]] | None = None
    origin: InteractionRecord | None = None

    @property
    def acknowledged(self) -> bool:
        return self.callback is not None

    @property
    def ack_expired(self) -> bool:
        return time.monotonic() > self.created + self.ack_deadline

    @property
    def token_expired(self) -> bool:
        return time.monotonic() > self.created + self.token_ttl

    @property
    def data(self) -> dict[str, Any]:
        return self.payload["data"]


class Interactions:
    """All interactions of one stand-in, keyed by id and token."""

    def __init__(
        self, server: DiscordStandIn, *, ack_deadline: float = 3.0, token_ttl: float = 900.0
    ) -> None:
        self.server = server
        self.ack_deadline = ack_deadline
        self.token_ttl = token_ttl
        self.records: dict[int, InteractionRecord] = {}
        self.by_token: dict[str, InteractionRecord] = {}

    # ----------------------------------------------------------------- create
    def create(
        self,
        type: int,
        data: dict[str, Any],
        user: User,
        channel: Channel,
        *,
        source: Message | None = None,
        command_type: int | None = None,
        ack_deadline: float | None = None,
        origin: InteractionRecord | None = None,
    ) -> InteractionRecord:
        """Build the ``INTERACTION_CREATE`` payload, record it and dispatch it."""
        world = self.server.world
        iid = world.ids.next()
        token = f"aW50ZXJhY3Rpb24{iid}{secrets.token_urlsafe(24)}"
        guild = world.guild_of(channel)
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(world.application.id),
            "type": type,
            "token": token,
            "version": 1,
            "data": data,
            "channel_id": str(channel.id),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        channel_payload = channel.payload()
        if guild is not None:
            perms = guild.permissions_for(user.id, channel)
            channel_payload["permissions"] = str(perms)
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member=guild.members[user.id].payload(permissions=perms),
                app_permissions=str(guild.permissions_for(world.bot_user.id, channel)),
                authorizing_integration_owners={"0": str(guild.id)},
                context=0,
            )
        else:
            payload.update(
                user=user.payload(),
                app_permissions=str(self.server.dm_app_permissions),
                authorizing_integration_owners={"0": "0"},
                context=1,
            )
        payload["channel"] = channel_payload
        if source is not None:
            payload["message"] = source.payload(world)
        record = InteractionRecord(
            id=iid,
            token=token,
            type=type,
            payload=payload,
            user=user,
            channel=channel,
            created=time.monotonic(),
            ack_deadline=self.ack_deadline if ack_deadline is None else ack_deadline,
            token_ttl=self.token_ttl,
            source_message_id=source.id if source else None,
            command_type=command_type,
            origin=origin,
        )
        self.records[iid] = record
        self.by_token[token] = record
        self.server.gateway.dispatch("INTERACTION_CREATE", payload)
        return record

    # --------------------------------------------------------------- callback
    def _metadata(self, rec: InteractionRecord) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "id": str(rec.id),
            "type": rec.type,
            "user": rec.user.payload(),
            "authorizing_integration_owners": rec.payload["authorizing_integration_owners"],
        }
        if rec.type == APPLICATION_COMMAND:
            meta["name"] = rec.data.get("name", "")
            meta["command_type"] = rec.command_type or 1
        if rec.source_message_id and rec.type in (MESSAGE_COMPONENT, MODAL_SUBMIT):
            meta["interacted_message_id"] = str(rec.source_message_id)
        if rec.type == MODAL_SUBMIT and rec.origin is not None:
            meta["triggering_interaction_metadata"] = self._metadata(rec.origin)
        return meta

    def callback(
        self,
        interaction_id: int,
        token: str,
        body: dict[str, Any],
        uploads: list[Upload],
        with_response: bool,
        *,
        received_at: float | None = None,
    ) -> dict[str, Any] | None:
        """Handle ``POST /interactions/{id}/{token}/callback``.

        The deadline is checked against ``received_at`` (when the request
        arrived), so a slow response fault does not turn an in-time
        acknowledgement into a late one."""
        rec = self.records.get(interaction_id)
        if rec is None or rec.token != token:
            raise DiscordHTTPError(404, UNKNOWN_INTERACTION, "Unknown interaction")
        try:
            return self._callback(rec, body, uploads, with_response, received_at)
        except DiscordHTTPError as exc:
            rec.rejections.append((exc.status, exc.code))
            rec.events.append(("rejected", exc))
            self.server.world.changed()
            raise

    def _callback(
        self,
        rec: InteractionRecord,
        body: dict[str, Any],
        uploads: list[Upload],
        with_response: bool,
        received_at: float | None,
    ) -> dict[str, Any] | None:
        if rec.acknowledged:
            raise DiscordHTTPError(
                400, INTERACTION_ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged."
            )
        arrived = time.monotonic() if received_at is None else received_at
        if arrived > rec.created + rec.ack_deadline:
            raise DiscordHTTPError(404, UNKNOWN_INTERACTION, "Unknown interaction")
        ctype = body.get("type")
        if ctype not in ALLOWED_CALLBACKS.get(rec.type, set()):
            errors = FormErrors()
            errors.add(
                ["type"], "INTERACTION_CALLBACK_TYPE_INVALID", "Invalid interaction callback type"
            )
            errors.raise_if_any()
        data = body.get("data") or {}
        server, world = self.server, self.server.world
        message: Message | None = None
        if ctype == 4:
            msg_type = {1: 20, 2: 23, 3: 23}.get(rec.command_type or 0, 0)
            message = create_message(
                server, rec.channel, world.bot_user, data, uploads,
                msg_type=msg_type, webhook=True, interaction_metadata=self._metadata(rec),
            )  # fmt: skip
            rec.original_id = message.id
        elif ctype == 5:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            message = create_message(
                server, rec.channel, world.bot_user, {"flags": flags}, msg_type=20 if rec.type == 2 else 0,
                webhook=True, interaction_metadata=self._metadata(rec), extra_flags=flags, validate=False,
            )  # fmt: skip
            rec.original_id = message.id
        elif ctype in (6, 7):
            if rec.source_message_id is None:
                errors = FormErrors()
                errors.add(["type"], "INTERACTION_CALLBACK_TYPE_INVALID", "No message to update")
                errors.raise_if_any()
            rec.original_id = rec.source_message_id
            if ctype == 7:
                message = edit_message(server, world.messages[rec.source_message_id], data, uploads)
        elif ctype == 8:
            rules.check_choices(data)
            rec.choices = list(data.get("choices") or [])
        elif ctype == 9:
            rules.check_modal(data)
            rec.modal = data
        rec.callback, rec.callback_type, rec.acked_at = body, ctype, time.monotonic()
        rec.events.append(("callback", body))
        world.changed()
        if not with_response:
            return None
        inter: dict[str, Any] = {"id": str(rec.id), "type": rec.type}
        if rec.original_id and ctype in (4, 5, 7):
            original = world.messages[rec.original_id]
            inter.update(
                response_message_id=str(original.id),
                response_message_loading=original.loading,
                response_message_ephemeral=original.ephemeral,
            )
        out: dict[str, Any] = {"interaction": inter}
        if message is not None and ctype in (4, 7):
            out["resource"] = {"type": ctype, "message": message.payload(world)}
        return out

    # --------------------------------------------------------------- webhooks
    def webhook_record(self, application_id: int, token: str) -> InteractionRecord:
        """The interaction behind a webhook token, enforcing token rules."""
        rec = self.by_token.get(token)
        if (
            rec is None
            or application_id != self.server.world.application.id
            or not rec.acknowledged
        ):
            raise DiscordHTTPError(404, UNKNOWN_WEBHOOK, "Unknown Webhook")
        if rec.token_expired:
            raise DiscordHTTPError(401, INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token")
        return rec

    def followup(
        self, rec: InteractionRecord, body: dict[str, Any], uploads: list[Upload]
    ) -> Message:
        """``POST /webhooks/{app}/{token}``: a follow-up message."""
        world = self.server.world
        original = world.messages.get(rec.original_id) if rec.original_id else None
        if rec.callback_type == 5 and original is not None and original.loading:
            rules.check_message(
                body,
                has_files=bool(uploads),
                components_v2=bool(int(body.get("flags") or 0) & IS_COMPONENTS_V2),
            )
            message = edit_message(self.server, original, body, uploads, finish_loading=True)
        else:
            message = create_message(
                self.server, rec.channel, world.bot_user, body, uploads,
                webhook=True, interaction_metadata=self._metadata(rec),
            )  # fmt: skip
        rec.followup_ids.append(message.id)
        rec.events.append(("followup", message))
        world.changed()
        return message

    def webhook_message(self, rec: InteractionRecord, message_id: str) -> Message:
        """Resolve ``@original`` or a follow-up id belonging to ``rec``."""
        world = self.server.world
        if message_id == "@original":
            mid = rec.original_id
        else:
            mid = int(message_id)
            if mid != rec.original_id and mid not in rec.followup_ids:
                mid = None
        msg = world.messages.get(mid) if mid else None
        if msg is None or msg.deleted:
            raise DiscordHTTPError(404, UNKNOWN_MESSAGE, "Unknown Message")
        return msg

    def edit(
        self, rec: InteractionRecord, message_id: str, body: dict[str, Any], uploads: list[Upload]
    ) -> Message:
        msg = self.webhook_message(rec, message_id)
        msg = edit_message(self.server, msg, body, uploads, finish_loading=msg.loading)
        rec.events.append(("edit", msg))
        self.server.world.changed()
        return msg

    def delete(self, rec: InteractionRecord, message_id: str) -> None:
        msg = self.webhook_message(rec, message_id)
        delete_message(self.server, msg)
        rec.events.append(("delete", msg))
        self.server.world.changed()

"""Creating, editing and deleting messages, shared by REST and the driver.

Whatever path creates a message (``POST /channels/{id}/messages``, an
interaction response, a webhook follow-up, or a simulated user typing in the
driver) goes through :func:`create_message`, so the same rules apply:
limits (:mod:`.rules`), ``allowed_mentions`` (:mod:`.mentions`), replies,
attachments, and the ``MESSAGE_CREATE`` dispatch Discord sends for every
non-ephemeral message -- including the bot's own.
"""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import rules
from .errors import DiscordHTTPError, FormErrors
from .mentions import compute_pings, validate_allowed_mentions
from .permissions import ALL
from .state import (
    EPHEMERAL,
    IS_COMPONENTS_V2,
    LOADING,
    SUPPRESS_EMBEDS,
    SUPPRESS_NOTIFICATIONS,
    Attachment,
    Channel,
    Message,
    User,
)

if TYPE_CHECKING:
    from .server import DiscordStandIn


#: Flags a bot may set when creating a message (Discord ignores the others).
CREATE_FLAGS = EPHEMERAL | SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2


@dataclass
class Upload:
    """A file uploaded in a multipart request (``files[n]``) or by a test."""

    filename: str
    data: bytes
    content_type: str | None = None
    field: str = "files[0]"


def author_permissions(server: DiscordStandIn, channel: Channel, user: User) -> int:
    guild = server.world.guild_of(channel)
    if guild is None:
        return ALL
    return guild.permissions_for(user.id, channel)


def attachment_content_type(filename: str, declared: str | None) -> str | None:
    """The ``content_type`` Discord reports for an upload.

    Discord works it out from the file rather than trusting the multipart
    part (discord.py always sends ``application/octet-stream``): by
    extension here, with ``; charset=utf-8`` for text, e.g. ``notes.txt`` ->
    ``text/plain; charset=utf-8``.  A specific declared type is kept.
    """
    if declared and declared.split(";")[0].strip().lower() != "application/octet-stream":
        return declared
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    if guessed is None:
        return declared
    if guessed.startswith("text/") or guessed in ("application/json", "application/x-ndjson"):
        return f"{guessed}; charset=utf-8"
    return guessed


def make_attachments(
    server: DiscordStandIn,
    channel_id: int,
    declared: list[dict[str, Any]] | None,
    uploads: list[Upload],
    *,
    ephemeral: bool = False,
) -> list[Attachment]:
    """Turn ``files[n]`` uploads into stored attachments served by the CDN route.

    ``declared`` is the body's ``attachments`` list (``{"id": n, "filename",
    "description"}``); its ``id`` is the index ``n`` of the ``files[n]`` part.
    """
    by_index = {}
    for up in uploads:
        if up.field.startswith("files[") and up.field.endswith("]"):
            by_index[up.field[6:-1]] = up
    meta = {str(a.get("id")): a for a in declared or [] if isinstance(a, dict)}
    out = []
    for index, up in by_index.items():
        info = meta.get(index, {})
        att_id = server.world.ids.next()
        filename = info.get("filename") or up.filename
        url = f"{server.url}/attachments/{channel_id}/{att_id}/{filename}"
        att = Attachment(
            att_id,
            filename,
            up.data,
            attachment_content_type(filename, up.content_type),
            url,
            description=info.get("description"),
            ephemeral=ephemeral,
        )
        server.cdn[(channel_id, att_id)] = att
        out.append(att)
    return out


def event_payload(server: DiscordStandIn, msg: Message) -> dict[str, Any]:
    """Gateway shape of a message: the REST shape plus ``guild_id``/``member``."""
    data = msg.payload(server.world)
    if msg.guild_id:
        data["guild_id"] = str(msg.guild_id)
        guild = server.world.guilds[msg.guild_id]
        member = guild.members.get(msg.author.id)
        if member is not None and not msg.webhook_id:
            data["member"] = member.payload(with_user=False)
    return data


def _reference(
    world_messages: dict[int, Message], channel: Channel, body: dict[str, Any]
) -> Message | None:
    ref = body.get("message_reference")
    if not ref or ref.get("type", 0) != 0:
        return None
    mid = int(ref.get("message_id") or 0)
    target = world_messages.get(mid)
    if target is None or target.deleted or target.channel_id != channel.id:
        if ref.get("fail_if_not_exists", True):
            errors = FormErrors()
            errors.add(["message_reference"], "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
            errors.raise_if_any()
        return None
    return target


NONCE_WINDOW = 120.0
"""Seconds an enforced nonce is remembered (see :func:`create_message`)."""


def create_message(
    server: DiscordStandIn,
    channel: Channel,
    author: User,
    body: dict[str, Any],
    uploads: list[Upload] | None = None,
    *,
    msg_type: int = 0,
    webhook: bool = False,
    interaction_metadata: dict[str, Any] | None = None,
    extra_flags: int = 0,
    validate: bool = True,
    dispatch: bool = True,
) -> Message:
    """Validate ``body`` like Discord and create (and dispatch) the message.

    ``enforce_nonce`` with a ``nonce``: when the same author created a message with the
    same nonce in the past :data:`NONCE_WINDOW` seconds, that message is returned and
    nothing is created or dispatched (Discord: "checked for uniqueness in the past few
    minutes"; the stand-in keeps the lower end of "a few").
    """
    uploads = uploads or []
    world = server.world
    nonce = body.get("nonce")
    key = (author.id, str(nonce)) if nonce is not None and body.get("enforce_nonce") else None
    if key is not None:
        seen = world.nonces.get(key)
        if seen is not None and time.monotonic() - seen[1] < NONCE_WINDOW:
            earlier = world.messages.get(seen[0])
            if earlier is not None:
                return earlier
    flags = (int(body.get("flags") or 0) & CREATE_FLAGS) | extra_flags
    if validate:
        rules.check_message(
            body, has_files=bool(uploads), components_v2=bool(flags & IS_COMPONENTS_V2)
        )
    allowed = body.get("allowed_mentions")
    validate_allowed_mentions(allowed)
    replied = _reference(world.messages, channel, body)
    ephemeral = bool(flags & EPHEMERAL)
    guild_id = channel.guild_id
    msg = Message(
        id=world.ids.next(),
        channel_id=channel.id,
        guild_id=guild_id,
        author=author,
        content=str(body.get("content") or ""),
        type=19 if replied is not None and msg_type == 0 else msg_type,
        embeds=[_normalise_embed(e) for e in body.get("embeds") or []],
        components=normalise_components(body.get("components") or [], world.ids.next),
        attachments=make_attachments(
            server, channel.id, body.get("attachments"), uploads, ephemeral=ephemeral
        ),
        flags=flags,
        tts=bool(body.get("tts")),
        nonce=body.get("nonce"),
        reference_id=replied.id if replied else None,
        allowed_mentions=allowed,
        interaction_metadata=interaction_metadata,
    )
    if webhook:
        msg.webhook_id = world.application.id
        msg.application_id = world.application.id
    msg.pings = compute_pings(
        world, msg, allowed, author_permissions(server, channel, author), replied
    )
    world.store_message(msg)
    if key is not None:
        world.nonces[key] = (msg.id, time.monotonic())
    if dispatch and not ephemeral:
        server.gateway.dispatch_message("MESSAGE_CREATE", event_payload(server, msg), guild_id)
    return msg


def edit_message(
    server: DiscordStandIn,
    msg: Message,
    body: dict[str, Any],
    uploads: list[Upload] | None = None,
    *,
    finish_loading: bool = False,
) -> Message:
    """Apply a PATCH body to ``msg``; dispatches ``MESSAGE_UPDATE``."""
    if msg.deleted:
        raise DiscordHTTPError(404, 10008, "Unknown Message")
    new_flags = int(body.get("flags") or 0)
    v2 = bool((msg.flags | new_flags) & IS_COMPONENTS_V2)
    rules.check_message(body, partial=True, components_v2=v2)
    if v2 and not msg.components_v2:
        # upgrading to components v2: the legacy fields must be cleared too
        errors = FormErrors()
        for key in ("content", "embeds"):
            if key not in body and getattr(msg, key):
                rules.legacy_field_error(errors, key)
        errors.raise_if_any()
    validate_allowed_mentions(body.get("allowed_mentions"))
    if "content" in body:
        msg.content = str(body["content"] or "")
    if "embeds" in body:
        msg.embeds = [_normalise_embed(e) for e in body["embeds"] or []]
    if "components" in body:
        msg.components = normalise_components(body["components"] or [], server.world.ids.next)
    if "attachments" in body or uploads:
        keep = {str(a.get("id")) for a in body.get("attachments") or [] if isinstance(a, dict)}
        kept = [a for a in msg.attachments if str(a.id) in keep]
        msg.attachments = kept + make_attachments(
            server, msg.channel_id, body.get("attachments"), uploads or [], ephemeral=msg.ephemeral
        )
    if body.get("flags") is not None:
        # SUPPRESS_EMBEDS toggles; IS_COMPONENTS_V2 can be set but never removed
        msg.flags = (
            (msg.flags & ~SUPPRESS_EMBEDS)
            | (new_flags & SUPPRESS_EMBEDS)
            | (new_flags & IS_COMPONENTS_V2)
        )
    if finish_loading:
        msg.flags &= ~LOADING
    if "allowed_mentions" in body or "content" in body:
        allowed = body.get("allowed_mentions", msg.allowed_mentions)
        msg.allowed_mentions = allowed
        channel = server.world.channels[msg.channel_id]
        replied = server.world.messages.get(msg.reference_id) if msg.reference_id else None
        msg.pings = compute_pings(
            server.world,
            msg,
            allowed,
            author_permissions(server, channel, msg.author),
            replied,
        )
    if not finish_loading:
        msg.edited_ts = time.time()
    server.world.changed()
    if not msg.ephemeral:
        server.gateway.dispatch_message("MESSAGE_UPDATE", event_payload(server, msg), msg.guild_id)
    return msg


def delete_message(server: DiscordStandIn, msg: Message) -> None:
    """Mark deleted and dispatch ``MESSAGE_DELETE``."""
    msg.deleted = True
    server.world.changed()
    if msg.ephemeral:
        return
    data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
    if msg.guild_id:
        data["guild_id"] = str(msg.guild_id)
    server.gateway.dispatch("MESSAGE_DELETE", data, guild_id=msg.guild_id)


_REQUEST_ONLY = {"required"}


#: Response defaults of components v2 layout/content components, by type.
_V2_DEFAULTS: dict[int, dict[str, Any]] = {
    11: {"description": None, "spoiler": False},  # thumbnail
    13: {"name": None, "size": None, "spoiler": False},  # file
    14: {"spacing": 1, "divider": True},  # separator
    17: {"accent_color": None, "spoiler": False},  # container
}


def normalise_components(
    rows: list[dict[str, Any]], new_id: Callable[[], int] | None = None
) -> list[dict[str, Any]]:
    """Store components as Discord returns them: nulls and request-only keys
    dropped, every component numbered with an ``id`` (depth first, starting
    at 1) unless the bot chose one, components v2 defaults filled in
    (``accent_color: null``, ``spoiler: false`` ...) and media unfurled
    (``{"id", "url", "proxy_url", ...}``; ``new_id`` makes the media ids)."""
    counter = iter(range(1, 10_000))
    media_ids = new_id or (lambda: 0)

    def unfurl(media: Any) -> Any:
        if not isinstance(media, dict) or "url" not in media:
            return media
        return {
            "id": str(media_ids()), "url": media["url"], "proxy_url": media["url"],
            "width": None, "height": None, "content_type": None, **media,
        }  # fmt: skip

    def walk(comp: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in comp.items() if v is not None and k not in _REQUEST_ONLY}
        if "id" not in out:
            out["id"] = next(counter)
        for key, value in _V2_DEFAULTS.get(out.get("type", 0), {}).items():
            out.setdefault(key, value)
        if isinstance(out.get("components"), list):
            out["components"] = [walk(c) for c in out["components"] if isinstance(c, dict)]
        for key in ("component", "accessory"):
            if isinstance(out.get(key), dict):
                out[key] = walk(out[key])
        for key in ("media", "file"):
            if key in out:
                out[key] = unfurl(out[key])
        if out.get("type") == 12 and isinstance(out.get("items"), list):  # media gallery
            out["items"] = [
                {"description": None, "spoiler": False, **item, "media": unfurl(item.get("media"))}
                for item in out["items"]
                if isinstance(item, dict)
            ]
        return out

    return [walk(r) for r in rows if isinstance(r, dict)]


def _normalise_embed(embed: dict[str, Any]) -> dict[str, Any]:
    """Discord returns embeds with ``type: "rich"`` and drops nulls."""
    out = {k: v for k, v in embed.items() if v is not None}
    out.setdefault("type", "rich")
    if "fields" in out:
        out["fields"] = [{"inline": False, **f} for f in out["fields"]]
    return out


def reaction_event(
    server: DiscordStandIn, msg: Message, user_id: int, emoji: dict[str, Any], add: bool
) -> None:
    """Dispatch ``MESSAGE_REACTION_ADD``/``REMOVE`` (add carries ``member``)."""
    data: dict[str, Any] = {
        "user_id": str(user_id),
        "channel_id": str(msg.channel_id),
        "message_id": str(msg.id),
        "emoji": emoji,
        "burst": False,
        "type": 0,
    }
    if msg.guild_id:
        data["guild_id"] = str(msg.guild_id)
    if add:
        data["message_author_id"] = str(msg.author.id)
        data["burst_colors"] = []
        if msg.guild_id:
            member = server.world.guilds[msg.guild_id].members.get(user_id)
            if member is not None:
                data["member"] = member.payload()
    event = "MESSAGE_REACTION_ADD" if add else "MESSAGE_REACTION_REMOVE"
    server.gateway.dispatch(event, data, guild_id=msg.guild_id)

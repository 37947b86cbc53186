"""Interaction callbacks and the interaction webhook (follow-ups, @original).

discord.py sends these through ``AsyncWebhookAdapter`` without an
``Authorization`` header; the token in the path is the credential.  The
rules (3 s acknowledgement, single response, 15 min token) live in
:mod:`..interactions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..keys import RECEIVED_AT
from .common import body, json_response, no_content, snowflake, standin, uploads

if TYPE_CHECKING:
    from ..interactions import InteractionRecord


async def callback(request: web.Request) -> web.Response:
    server = standin(request)
    with_response = request.query.get("with_response", "false").lower() in ("1", "true")
    out = server.interactions.callback(
        snowflake(request, "interaction_id"),
        request.match_info["token"],
        body(request),
        uploads(request),
        with_response,
        received_at=request.get(RECEIVED_AT),
    )
    return no_content() if out is None else json_response(out)


def _record(request: web.Request) -> InteractionRecord:
    server = standin(request)
    return server.interactions.webhook_record(
        snowflake(request, "webhook_id"), request.match_info["token"]
    )


async def execute(request: web.Request) -> web.Response:
    server = standin(request)
    rec = _record(request)
    msg = server.interactions.followup(rec, body(request), uploads(request))
    if request.query.get("wait", "false").lower() in ("1", "true"):
        return json_response(msg.payload(server.world))
    return no_content()


async def get_message(request: web.Request) -> web.Response:
    server = standin(request)
    msg = server.interactions.webhook_message(_record(request), request.match_info["message_id"])
    return json_response(msg.payload(server.world))


async def edit_message(request: web.Request) -> web.Response:
    server = standin(request)
    msg = server.interactions.edit(
        _record(request), request.match_info["message_id"], body(request), uploads(request)
    )
    return json_response(msg.payload(server.world))


async def delete_message(request: web.Request) -> web.Response:
    standin(request).interactions.delete(_record(request), request.match_info["message_id"])
    return no_content()


ROUTES = [
    ("POST", "/interactions/{interaction_id}/{token}/callback", callback),
    ("POST", "/webhooks/{webhook_id}/{token}", execute),
    ("GET", "/webhooks/{webhook_id}/{token}/messages/{message_id}", get_message),
    ("PATCH", "/webhooks/{webhook_id}/{token}/messages/{message_id}", edit_message),
    ("DELETE", "/webhooks/{webhook_id}/{token}/messages/{message_id}", delete_message),
]

"""Typed aiohttp storage keys shared by the server and the REST handlers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

STANDIN: web.AppKey[Any] = web.AppKey("standin", object)
JSON_BODY: web.RequestKey[Any] = web.RequestKey("json_body", object)
UPLOADS: web.RequestKey[list[Any]] = web.RequestKey("uploads", list)
PAYLOAD: web.ResponseKey[Any] = web.ResponseKey("payload", object)
RECEIVED_AT: web.RequestKey[float] = web.RequestKey("received_at", float)

"""Pointing discord.py at a REST proxy or a Discord-compatible server instead of Discord.

discord.py 2.7 has no constructor option for this: every REST call (interaction callbacks
and webhooks included) builds its URL from the class attribute ``discord.http.Route.BASE``
when the ``Route`` is created, and a non-sharded client opens the gateway at
``DiscordWebSocket.DEFAULT_GATEWAY`` (resumes use the ``resume_gateway_url`` the server
sends in READY). Both are process-wide, so only the entry point calls this, once.
"""

from __future__ import annotations

import discord.gateway
import discord.http
import yarl


def point_discord_at(api_base: str | None, gateway_url: str | None) -> None:
    """Use ``api_base`` (with its ``/api/v10``) for REST and ``gateway_url`` for the gateway;
    ``None`` keeps Discord's own."""
    if api_base:
        discord.http.Route.BASE = api_base
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)

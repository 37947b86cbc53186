"""The invite link asks for exactly the permissions the bot needs, and both scopes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import discord

from bot.client.permissions import CHANNEL_POST_PERMISSIONS, INVITE_PERMISSIONS, invite_url


def test_invite_url_asks_for_exactly_what_the_bot_needs():
    url = urlsplit(invite_url(1234))
    assert (url.scheme, url.netloc, url.path) == ("https", "discord.com", "/oauth2/authorize")
    query = parse_qs(url.query)
    assert query["client_id"] == ["1234"]
    assert query["scope"] == ["bot applications.commands"]
    permissions = discord.Permissions(int(query["permissions"][0]))
    assert permissions == discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        embed_links=True,
        attach_files=True,
        read_message_history=True,
    )
    assert not permissions.administrator and not permissions.manage_messages


def test_what_the_bot_checks_in_a_review_channel_is_part_of_the_invite():
    assert CHANNEL_POST_PERMISSIONS <= INVITE_PERMISSIONS

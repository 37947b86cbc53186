"""Deleting the bot's review posts when their examples are deleted (removal, opt-out,
dataset deletion), so no copy of a member's words stays in Discord."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import discord

from storage.review_posts import ReviewPost

log = logging.getLogger(__name__)


async def delete_review_posts(client: discord.Client, posts: Iterable[ReviewPost]) -> int:
    """Delete each post's message; returns how many were deleted. A message already gone
    or a channel the bot can no longer reach is logged and skipped."""
    deleted = 0
    for post in posts:
        channel = client.get_channel(post.channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            log.info("review post %s of example %s: channel %s is gone",
                     post.message_id, post.example_id, post.channel_id)  # fmt: skip
            continue
        try:
            await channel.get_partial_message(post.message_id).delete()  # type: ignore[attr-defined]
            deleted += 1
        except discord.NotFound:
            pass
        except discord.HTTPException as exc:
            log.warning("could not delete review post %s of example %s in guild %s: %s",
                        post.message_id, post.example_id, post.guild_id, exc)  # fmt: skip
    return deleted

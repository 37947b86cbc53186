"""Syncing the slash commands to Discord, only when the command tree changed.

Discord rate-limits command syncs (bulk overwrites) hard, and a bot restarted often would
burn through it. The JSON payload a sync would send is hashed; the hash of the last
successful sync per (application, scope) is kept in the database, and an equal hash skips
the sync.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import discord
from discord import app_commands

from bot.errors import StartupError
from storage.command_syncs import GLOBAL_SCOPE, CommandSyncRepository

log = logging.getLogger(__name__)


def tree_payload(
    tree: app_commands.CommandTree[Any], guild: discord.abc.Snowflake | None
) -> list[dict[str, Any]]:
    """The commands a sync to ``guild`` (``None``: globally) would send, in a stable order."""
    payload = [command.to_dict(tree) for command in tree.get_commands(guild=guild)]
    return sorted(payload, key=lambda c: (c.get("type", 1), c["name"]))


def payload_hash(payload: list[dict[str, Any]]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def sync_commands(
    tree: app_commands.CommandTree[Any],
    syncs: CommandSyncRepository,
    application_id: int,
    dev_guild_id: int | None,
) -> bool:
    """Sync to ``dev_guild_id`` (all commands copied there) or globally, if the tree changed.

    Returns whether it synced. A sync Discord refuses raises :class:`StartupError`.
    """
    guild = discord.Object(dev_guild_id) if dev_guild_id else None
    if guild is not None:
        tree.copy_global_to(guild=guild)
    payload = tree_payload(tree, guild)
    digest = payload_hash(payload)
    scope = dev_guild_id or GLOBAL_SCOPE
    where = f"server {dev_guild_id} (DEV_GUILD_ID)" if dev_guild_id else "all servers (global)"
    if await syncs.last_hash(application_id, scope) == digest:
        log.info("slash commands unchanged since the last sync to %s; not syncing", where)
        return False
    try:
        await tree.sync(guild=guild)
    except discord.Forbidden as exc:
        raise StartupError(
            f"Discord refused to register the slash commands in {where} ({exc.text}): "
            "invite the bot there with the invite link from the log, or unset DEV_GUILD_ID"
        ) from exc
    except discord.HTTPException as exc:
        raise StartupError(
            f"Discord refused the slash commands ({exc.status}: {exc.text})"
        ) from exc
    await syncs.record(application_id, scope, digest)
    log.info("synced %d slash command(s) to %s", len(payload), where)
    return True

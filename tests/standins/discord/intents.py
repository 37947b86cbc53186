"""Gateway intents: which events a session receives.

Discord only sends an event if the session identified with the matching
intent (``GUILD_MESSAGES`` for guild ``MESSAGE_*``, ``DIRECT_MESSAGES`` for
DMs, ``GUILD_MEMBERS`` for member add/update/remove, ...).  Without the
privileged ``MESSAGE_CONTENT`` intent, ``content``, ``embeds``,
``attachments``, ``components`` and ``poll`` are blanked unless the message
is in a DM, was sent by the bot itself, or mentions the bot.
"""

from __future__ import annotations

GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
GUILD_MESSAGE_TYPING = 1 << 11
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
DIRECT_MESSAGE_TYPING = 1 << 14
MESSAGE_CONTENT = 1 << 15
PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
ALL_KNOWN = (1 << 26) - 1

_GUILD_EVENTS = {
    "GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE", "GUILD_ROLE_CREATE", "GUILD_ROLE_UPDATE",
    "GUILD_ROLE_DELETE", "CHANNEL_CREATE", "CHANNEL_UPDATE", "CHANNEL_DELETE", "THREAD_CREATE",
    "THREAD_UPDATE", "THREAD_DELETE", "THREAD_LIST_SYNC", "THREAD_MEMBER_UPDATE",
}  # fmt: skip
_MEMBER_EVENTS = {"GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE"}


def required_intent(event: str, *, in_guild: bool) -> int:
    """The intent bit gating ``event`` (0 = always delivered)."""
    if event in _GUILD_EVENTS:
        return GUILDS
    if event in _MEMBER_EVENTS:
        return GUILD_MEMBERS
    if event.startswith("MESSAGE_REACTION"):
        return GUILD_MESSAGE_REACTIONS if in_guild else DIRECT_MESSAGE_REACTIONS
    if event.startswith("MESSAGE_"):
        return GUILD_MESSAGES if in_guild else DIRECT_MESSAGES
    if event == "TYPING_START":
        return GUILD_MESSAGE_TYPING if in_guild else DIRECT_MESSAGE_TYPING
    return 0


def redact_content(data: dict, bot_id: int) -> dict:
    """Apply the MESSAGE_CONTENT rule to a message payload (returns a copy)."""
    if not data.get("guild_id"):
        return data
    author = (data.get("author") or {}).get("id")
    mentioned = any(u.get("id") == str(bot_id) for u in data.get("mentions") or [])
    if author == str(bot_id) or mentioned:
        return data
    return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

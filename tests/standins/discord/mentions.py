"""Who does a message actually ping?  ``allowed_mentions`` semantics.

Discord parses ``<@id>``, ``<@!id>``, ``<@&id>``, ``@everyone`` and
``@here`` in the content and then filters them through ``allowed_mentions``:

* absent: everything in the content may ping (users, roles, everyone), and a
  reply pings the replied-to author;
* present: ``parse`` lists the types parsed from content (``users``,
  ``roles``, ``everyone``); ``users`` / ``roles`` whitelist ids instead
  (a type may not be in both ``parse`` and the id list: 400 50035);
  ``replied_user`` (default ``false``) controls the reply ping.

On top of that, role pings need the role to be mentionable (or the author to
have ``MENTION_EVERYONE``), and ``@everyone``/``@here`` need
``MENTION_EVERYONE``.  The result is stored on the message as
:class:`~.state.Pings` and also drives the ``mentions`` /
``mention_roles`` / ``mention_everyone`` payload fields.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import FormErrors
from .permissions import P, has
from .state import Guild, Message, Pings, World

USER_RE = re.compile(r"<@!?(\d+)>")
ROLE_RE = re.compile(r"<@&(\d+)>")
EVERYONE_RE = re.compile(r"@(everyone|here)")


def validate_allowed_mentions(am: dict[str, Any] | None) -> None:
    """Reject the combinations Discord rejects (400 50035)."""
    if not am:
        return
    errors = FormErrors()
    parse = am.get("parse") or []
    for kind in ("users", "roles"):
        if kind in parse and am.get(kind):
            errors.add(
                ["allowed_mentions", "parse"],
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
            )
        if len(am.get(kind) or []) > 100:
            errors.max_length(["allowed_mentions", kind], 100)
    errors.raise_if_any()


def compute_pings(
    world: World,
    msg: Message,
    allowed: dict[str, Any] | None,
    author_perms: int,
    replied_to: Message | None = None,
) -> Pings:
    """Compute :class:`Pings` for ``msg`` (content already set)."""
    parse = {"users", "roles", "everyone"} if allowed is None else set(allowed.get("parse") or [])
    allowed_users = {int(u) for u in (allowed or {}).get("users") or []}
    allowed_roles = {int(r) for r in (allowed or {}).get("roles") or []}
    guild: Guild | None = world.guilds.get(msg.guild_id) if msg.guild_id else None
    pings = Pings()
    content = msg.content or ""
    for raw in USER_RE.findall(content):
        uid = int(raw)
        if uid in world.users and ("users" in parse or uid in allowed_users):
            pings.users.add(uid)
    if guild is not None:
        for raw in ROLE_RE.findall(content):
            rid = int(raw)
            role = guild.roles.get(rid)
            if role is None or not ("roles" in parse or rid in allowed_roles):
                continue
            if role.mentionable or has(author_perms, P.MENTION_EVERYONE):
                pings.roles.add(rid)
        if EVERYONE_RE.search(content) and "everyone" in parse:
            pings.everyone = has(author_perms, P.MENTION_EVERYONE)
    if replied_to is not None and replied_to.author.id != msg.author.id:
        if allowed is None or allowed.get("replied_user", False):
            pings.users.add(replied_to.author.id)
    return pings

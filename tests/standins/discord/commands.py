"""Application commands: registration (bulk overwrite) and invocation.

Registration follows ``PUT /applications/{app}/commands`` (and the guild
variant): the list replaces everything, commands keep their id when name and
type match, and Discord's validation applies (chat-input names lowercase,
1-32 chars; descriptions 1-100; <= 25 options/choices; required options
first; context menus have no description).  Stored commands are the
``ApplicationCommandResponse`` shape so tests can assert names, options and
``default_member_permissions``.

Invocation turns a user-level call (``"dataset stats"``, ``dataset="marv"``)
into the ``data`` of an ``INTERACTION_CREATE`` exactly as the Discord client
would, *refusing* what the client would not let a user send: unknown
commands/subcommands/options, missing required options, wrong types, values
outside ``choices``/``min``/``max``, and -- unless forced -- commands whose
``default_member_permissions`` the member lacks.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .errors import FormErrors
from .messages import Upload, make_attachments
from .state import Channel, Member, Message, Role, User

if TYPE_CHECKING:
    from .state import World

SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN = 1, 2, 3, 4, 5
USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 6, 7, 8, 9, 10, 11
CHAT_INPUT, USER_COMMAND, MESSAGE_COMMAND = 1, 2, 3
NAME_RE = re.compile(r"^[-_'\w]{1,32}$")


class CommandError(LookupError):
    """The Discord client would not send this invocation (bad name/option/value)."""


class CommandNotPermitted(PermissionError):
    """The member lacks the command's ``default_member_permissions``; the
    Discord client hides such commands.  Use ``force=True`` to send anyway."""


# ------------------------------------------------------------------ register
def _check_options(
    options: list[dict[str, Any]], path: list[str | int], errors: FormErrors
) -> None:
    if len(options) > 25:
        errors.max_length([*path], 25)
    seen_optional = False
    for i, opt in enumerate(options):
        here = [*path, i]
        name = opt.get("name", "")
        if not NAME_RE.match(name) or name != name.lower():
            errors.add(
                [*here, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        if not 1 <= len(opt.get("description") or "") <= 100:
            errors.add(
                [*here, "description"],
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )
        if len(opt.get("choices") or []) > 25:
            errors.max_length([*here, "choices"], 25)
        if opt.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP):
            _check_options(opt.get("options") or [], [*here, "options"], errors)
            continue
        if opt.get("required"):
            if seen_optional:
                errors.add(
                    [*here, "required"],
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True


def validate_commands(commands: list[dict[str, Any]]) -> None:
    """Discord's checks for a bulk overwrite body (400 50035 on failure)."""
    errors = FormErrors()
    if len(commands) > 100:
        errors.max_length([], 100)
    seen: set[tuple[str, int]] = set()
    for i, cmd in enumerate(commands):
        ctype = cmd.get("type", CHAT_INPUT)
        name = cmd.get("name", "")
        if ctype == CHAT_INPUT:
            if not NAME_RE.match(name) or name != name.lower():
                errors.add(
                    [i, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            if not 1 <= len(cmd.get("description") or "") <= 100:
                errors.add(
                    [i, "description"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            _check_options(cmd.get("options") or [], [i, "options"], errors)
        elif not 1 <= len(name) <= 32:
            errors.add([i, "name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        if (name, ctype) in seen:
            errors.add(
                [i, "name"],
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique: {name}",
            )
        seen.add((name, ctype))
    errors.raise_if_any()


def store_commands(
    world: World, commands: list[dict[str, Any]], guild_id: int | None
) -> list[dict[str, Any]]:
    """Replace the global (or guild) command set; returns the stored payloads."""
    validate_commands(commands)
    old = world.guild_commands.get(guild_id, []) if guild_id else world.global_commands
    old_ids = {(c["name"], c["type"]): c["id"] for c in old}
    stored = []
    for cmd in commands:
        ctype = cmd.get("type", CHAT_INPUT)
        dmp = cmd.get("default_member_permissions")
        out = {
            "id": old_ids.get((cmd["name"], ctype)) or str(world.ids.next()),
            "application_id": str(world.application.id),
            "version": str(world.ids.next()),
            "default_member_permissions": None if dmp is None else str(dmp),
            "type": ctype,
            "name": cmd["name"],
            "name_localizations": cmd.get("name_localizations"),
            "description": cmd.get("description") or "",
            "description_localizations": cmd.get("description_localizations"),
            "dm_permission": cmd.get("dm_permission", True),
            "nsfw": bool(cmd.get("nsfw", False)),
            "integration_types": cmd.get("integration_types") or [0],
            "contexts": cmd.get("contexts"),
        }
        if ctype == CHAT_INPUT:
            out["options"] = cmd.get("options") or []
        if guild_id:
            out["guild_id"] = str(guild_id)
        stored.append(out)
    if guild_id:
        world.guild_commands[guild_id] = stored
    else:
        world.global_commands = stored
    world.changed()
    return stored


# -------------------------------------------------------------------- invoke
def find_command(world: World, name: str, ctype: int, guild_id: int | None) -> dict[str, Any]:
    for cmd in world.commands_for(guild_id):
        if cmd["name"] == name and cmd["type"] == ctype:
            return cmd
    known = sorted(c["name"] for c in world.commands_for(guild_id) if c["type"] == ctype)
    kind = {
        CHAT_INPUT: "slash command",
        USER_COMMAND: "user command",
        MESSAGE_COMMAND: "message command",
    }[ctype]
    raise CommandError(f"no {kind} {name!r} registered by the bot; registered: {known}")


def split_path(
    world: World, path: str, guild_id: int | None
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """``"dataset stats"`` -> (command, [group/subcommand option defs], leaf def)."""
    words = path.strip().lstrip("/").split()
    cmd = find_command(world, words[0], CHAT_INPUT, guild_id)
    chain: list[dict[str, Any]] = []
    node: dict[str, Any] = cmd
    for word in words[1:]:
        subs = [
            o for o in node.get("options") or [] if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)
        ]
        match = next((o for o in subs if o["name"] == word), None)
        if match is None:
            raise CommandError(
                f"/{' '.join(w['name'] for w in [cmd, *chain])} has no subcommand {word!r}; "
                f"available: {sorted(o['name'] for o in subs)}"
            )
        chain.append(match)
        node = match
    if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in node.get("options") or []):
        subs = sorted(o["name"] for o in node["options"])
        raise CommandError(f"/{path} needs a subcommand; available: {subs}")
    return cmd, chain, node


def _choice_value(opt: dict[str, Any], value: Any) -> Any:
    choices = opt.get("choices")
    if not choices:
        return value
    for choice in choices:
        if value == choice["value"] or value == choice["name"]:
            return choice["value"]
    raise CommandError(
        f"option {opt['name']!r} only accepts {[c['name'] for c in choices]}, got {value!r}"
    )


class Resolver:
    """Builds option values and the ``resolved`` map for one invocation."""

    def __init__(self, server: Any, member: Member | None, channel: Channel) -> None:
        self.server = server
        self.world: World = server.world
        self.member = member
        self.channel = channel
        self.resolved: dict[str, dict[str, Any]] = {}

    def _perms(self, channel: Channel) -> str:
        guild = self.world.guild_of(self.channel)
        if guild is None or self.member is None:
            return "0"
        return str(guild.permissions_for(self.member.user.id, channel))

    def add_user(self, target: Any) -> str:
        user = getattr(target, "user", target)
        if isinstance(target, int):
            user = self.world.users[target]
        if not isinstance(user, User):
            raise CommandError(f"expected a user or member, got {target!r}")
        self.resolved.setdefault("users", {})[str(user.id)] = user.payload()
        guild = self.world.guild_of(self.channel)
        if guild is not None and user.id in guild.members:
            m = guild.members[user.id]
            perms = guild.permissions_for(user.id, self.channel)
            self.resolved.setdefault("members", {})[str(user.id)] = m.payload(
                with_user=False, permissions=perms
            )
        return str(user.id)

    def add_role(self, role: Role) -> str:
        self.resolved.setdefault("roles", {})[str(role.id)] = role.payload()
        return str(role.id)

    def add_channel(self, channel: Channel, opt: dict[str, Any] | None = None) -> str:
        types = (opt or {}).get("channel_types")
        if types and channel.type not in types:
            raise CommandError(
                f"option {opt['name']!r} accepts channel types {types}, not {channel.type}"
            )
        payload = channel.payload()
        payload["permissions"] = self._perms(channel)
        self.resolved.setdefault("channels", {})[str(channel.id)] = payload
        return str(channel.id)

    def add_message(self, message: Message) -> str:
        self.resolved.setdefault("messages", {})[str(message.id)] = message.payload(self.world)
        return str(message.id)

    def add_attachment(self, upload: Upload | tuple[str, bytes]) -> str:
        if isinstance(upload, tuple):
            upload = Upload(*upload)
        if not isinstance(upload, Upload):
            raise CommandError(f"attachment options take Upload(filename, data), got {upload!r}")
        upload = Upload(upload.filename, upload.data, upload.content_type, field="files[0]")
        att = make_attachments(self.server, self.channel.id, None, [upload], ephemeral=True)[0]
        self.resolved.setdefault("attachments", {})[str(att.id)] = att.payload()
        return str(att.id)

    def value(self, opt: dict[str, Any], value: Any) -> Any:
        t, name = opt["type"], opt["name"]
        if t == STRING:
            if not isinstance(value, str):
                raise CommandError(f"option {name!r} expects text, got {value!r}")
            value = _choice_value(opt, value)
            lo, hi = opt.get("min_length", 0), opt.get("max_length", 6000)
            if not lo <= len(value) <= hi:
                raise CommandError(f"option {name!r} must be {lo}..{hi} characters long")
            return value
        if t in (INTEGER, NUMBER):
            ok = isinstance(value, int) if t == INTEGER else isinstance(value, int | float)
            if not ok or isinstance(value, bool):
                raise CommandError(
                    f"option {name!r} expects {'an integer' if t == INTEGER else 'a number'}, got {value!r}"
                )
            value = _choice_value(opt, value)
            if "min_value" in opt and value < opt["min_value"]:
                raise CommandError(f"option {name!r} must be >= {opt['min_value']}")
            if "max_value" in opt and value > opt["max_value"]:
                raise CommandError(f"option {name!r} must be <= {opt['max_value']}")
            return value
        if t == BOOLEAN:
            if not isinstance(value, bool):
                raise CommandError(f"option {name!r} expects True/False, got {value!r}")
            return value
        if t == USER:
            return self.add_user(value)
        if t == CHANNEL:
            if not isinstance(value, Channel):
                raise CommandError(f"option {name!r} expects a channel, got {value!r}")
            return self.add_channel(value, opt)
        if t == ROLE:
            if not isinstance(value, Role):
                raise CommandError(f"option {name!r} expects a role, got {value!r}")
            return self.add_role(value)
        if t == MENTIONABLE:
            return self.add_role(value) if isinstance(value, Role) else self.add_user(value)
        if t == ATTACHMENT:
            return self.add_attachment(value)
        raise CommandError(f"unsupported option type {t} for {name!r}")


def build_options(
    resolver: Resolver,
    leaf: dict[str, Any],
    given: dict[str, Any],
    *,
    focused: str | None = None,
) -> list[dict[str, Any]]:
    """Option payloads for the leaf command, in definition order."""
    defs = {o["name"]: o for o in leaf.get("options") or []}
    unknown = set(given) - set(defs)
    if unknown:
        raise CommandError(
            f"/{leaf['name']} has no option(s) {sorted(unknown)}; options: {sorted(defs)}"
        )
    out = []
    for name, opt in defs.items():
        if name not in given:
            if opt.get("required") and focused is None:
                raise CommandError(f"/{leaf['name']} requires option {name!r}")
            continue
        if name == focused:
            if not opt.get("autocomplete"):
                raise CommandError(f"option {name!r} of /{leaf['name']} has no autocomplete")
            out.append(
                {"name": name, "type": opt["type"], "value": str(given[name]), "focused": True}
            )
            continue
        out.append({"name": name, "type": opt["type"], "value": resolver.value(opt, given[name])})
    if focused is not None and focused not in given:
        raise CommandError(f"focused option {focused!r} needs a value")
    return out


def nest(chain: list[dict[str, Any]], options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wrap leaf options in their subcommand / group option objects."""
    for node in reversed(chain):
        options = [{"name": node["name"], "type": node["type"], "options": options}]
    return options

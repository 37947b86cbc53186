"""A simulated human member using the Discord client.

:class:`Actor` does what a person can do in the client -- type messages,
reply, react, run slash commands (with autocomplete), use context menus,
click buttons, pick from selects and fill in modals -- and the client-side
checks the official client applies before anything reaches the bot:

* commands resolve against what the bot *registered* (bulk overwrite);
  unknown names, subcommands or options raise :class:`CommandError`;
* a command whose ``default_member_permissions`` the member lacks (or
  ``USE_APPLICATION_COMMANDS``) raises :class:`CommandNotPermitted`, unless
  ``force=True`` (to prove the bot re-checks at run time);
* a member without ``SEND_MESSAGES``/``ADD_REACTIONS`` cannot send/react
  (:class:`ActionNotPermitted`);
* slowmode (``rate_limit_per_user`` of a channel or thread): one message
  (and, in the parent, one new thread) per interval, unless the member has
  ``MANAGE_MESSAGES``, ``MANAGE_CHANNELS``, ``BYPASS_SLOWMODE`` (or, in a
  thread, ``MANAGE_THREADS``); otherwise :class:`SlowmodeActive`, Discord's
  error 20016.  Bots are not affected (Discord's channel documentation).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import commands as C
from .errors import DiscordHTTPError
from .handles import InteractionHandle
from .interactions import APPLICATION_COMMAND, AUTOCOMPLETE, MESSAGE_COMPONENT, MODAL_SUBMIT
from .messages import Upload, create_message, delete_message, edit_message, reaction_event
from .permissions import SLOWMODE_EXEMPT, SLOWMODE_EXEMPT_IN_THREADS, P, has, names
from .rules import modal_inputs
from .state import DM, TEXT, Channel, Guild, Member, Message, Role, User, emoji_key

if TYPE_CHECKING:
    from .server import DiscordStandIn

SLOWMODE_RATE_LIMIT = 20016


class ActionNotPermitted(PermissionError):
    """The client would not let this member do that (missing permission)."""


class SlowmodeActive(ActionNotPermitted):
    """Slowmode: Discord refuses with 429 ``{"code": 20016, "message": "This
    action cannot be performed due to slowmode rate limit.", "retry_after"}``."""

    code = SLOWMODE_RATE_LIMIT

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def check_slowmode(
    server: DiscordStandIn, channel: Channel, user: User, last: dict[int, float], what: str
) -> None:
    """Raise :class:`SlowmodeActive` if ``user`` must still wait in ``channel``.

    ``last`` maps user ids to the ``time.monotonic()`` of their previous
    action of this kind (``channel.slowmode_sent`` or ``slowmode_threads``).
    """
    interval = channel.rate_limit_per_user
    guild = server.world.guild_of(channel)
    if not interval or guild is None or user.bot or user.id not in last:
        return
    exempt = SLOWMODE_EXEMPT_IN_THREADS if channel.is_thread else SLOWMODE_EXEMPT
    perms = guild.permissions_for(user.id, channel)
    if perms & (exempt | P.ADMINISTRATOR):
        return
    wait = last[user.id] + interval - time.monotonic()
    if wait > 0:
        raise SlowmodeActive(
            f"{user.username} cannot {what} in #{channel.name} for {wait:.1f}s: "
            "This action cannot be performed due to slowmode rate limit. (20016)",
            retry_after=wait,
        )


class Actor:
    """A user (and, in a guild, a member) driven by a test."""

    def __init__(self, server: DiscordStandIn, user: User, guild: Guild | None) -> None:
        self.server = server
        self.user = user
        self.guild = guild

    def __repr__(self) -> str:
        return f"<Actor {self.user.username} in {self.guild.name if self.guild else 'DMs'}>"

    # ------------------------------------------------------------ identity
    @property
    def id(self) -> int:
        return self.user.id

    @property
    def mention(self) -> str:
        return self.user.mention

    @property
    def member(self) -> Member | None:
        return self.guild.members.get(self.user.id) if self.guild else None

    @property
    def default_channel(self) -> Channel:
        if self.guild is None:
            return self.server.world.dm_channel(self.user)
        for ch in self.guild.channels.values():
            if ch.type == TEXT and has(self.permissions_in(ch), P.VIEW_CHANNEL):
                return ch
        raise LookupError(f"{self.user.username} cannot see any text channel")

    def permissions_in(self, channel: Channel | None = None) -> int:
        if self.guild is None:
            return 0
        return self.guild.permissions_for(self.user.id, channel)

    # ---------------------------------------------------------- membership
    def add_roles(self, *roles: Role) -> None:
        member = self._require_member()
        for role in roles:
            if role.id not in member.roles:
                member.roles.append(role.id)
        self.server.member_updated(self.guild, member)

    def remove_roles(self, *roles: Role) -> None:
        member = self._require_member()
        member.roles = [r for r in member.roles if r not in {x.id for x in roles}]
        self.server.member_updated(self.guild, member)

    def set_nick(self, nick: str | None) -> None:
        member = self._require_member()
        member.nick = nick
        self.server.member_updated(self.guild, member)

    def _require_member(self) -> Member:
        if self.member is None:
            raise LookupError(f"{self.user.username} is not a guild member")
        return self.member

    def _need(self, channel: Channel, perm: int, what: str) -> None:
        if channel.guild_id is not None and not has(self.permissions_in(channel), perm):
            raise ActionNotPermitted(
                f"{self.user.username} lacks {names(perm)} to {what} in #{channel.name}"
            )

    # ------------------------------------------------------------ messages
    async def send(
        self,
        channel: Channel | None,
        content: str = "",
        *,
        reply_to: Message | None = None,
        mention_author: bool = True,
        embeds: list[dict[str, Any]] | None = None,
        files: list[Upload] | None = None,
    ) -> Message:
        """Type a message (optionally a reply) into ``channel``."""
        channel = channel or self.default_channel
        send_perm = P.SEND_MESSAGES_IN_THREADS if channel.is_thread else P.SEND_MESSAGES
        self._need(channel, P.VIEW_CHANNEL | send_perm, "send messages")
        body: dict[str, Any] = {"content": content}
        if embeds:
            body["embeds"] = embeds
        if reply_to is not None:
            body["message_reference"] = {"message_id": str(reply_to.id)}
            if not mention_author:
                body["allowed_mentions"] = {
                    "parse": ["users", "roles", "everyone"],
                    "replied_user": False,
                }
        uploads = [
            Upload(f.filename, f.data, f.content_type, field=f"files[{i}]")
            for i, f in enumerate(files or [])
        ]
        check_slowmode(self.server, channel, self.user, channel.slowmode_sent, "send messages")
        try:
            msg = create_message(self.server, channel, self.user, body, uploads)
        except DiscordHTTPError as exc:
            raise ActionNotPermitted(f"the client refused the message: {exc.payload()}") from None
        if channel.rate_limit_per_user:
            channel.slowmode_sent[self.user.id] = time.monotonic()
        return msg

    async def send_dm(self, content: str) -> Message:
        """Write to the bot in DMs."""
        channel = self.server.world.dm_channel(self.user)
        return await self.send(channel, content)

    async def edit(self, message: Message, content: str) -> Message:
        if message.author.id != self.user.id:
            raise ActionNotPermitted("users can only edit their own messages")
        return edit_message(self.server, message, {"content": content})

    async def delete(self, message: Message) -> None:
        channel = self.server.world.channels[message.channel_id]
        if message.author.id != self.user.id:
            self._need(channel, P.MANAGE_MESSAGES, "delete others' messages")
        delete_message(self.server, message)

    async def react(self, message: Message, emoji: str) -> None:
        """Add a reaction (unicode ``"👍"`` or custom ``"name:id"``)."""
        channel = self.server.world.channels[message.channel_id]
        key = emoji_key(*_split_emoji(emoji))
        users = message.reactions.setdefault(key, [])
        if not users:
            self._need(channel, P.ADD_REACTIONS, "add reactions")
        if self.user.id in users:
            return
        users.append(self.user.id)
        self.server.world.changed()
        reaction_event(self.server, message, self.user.id, _emoji_payload(emoji), add=True)

    async def unreact(self, message: Message, emoji: str) -> None:
        key = emoji_key(*_split_emoji(emoji))
        users = message.reactions.get(key, [])
        if self.user.id not in users:
            return
        users.remove(self.user.id)
        self.server.world.changed()
        reaction_event(self.server, message, self.user.id, _emoji_payload(emoji), add=False)

    async def start_typing(self, channel: Channel) -> None:
        data: dict[str, Any] = {
            "channel_id": str(channel.id),
            "user_id": str(self.id),
            "timestamp": int(time.time()),
        }
        if channel.guild_id:
            data["guild_id"] = str(channel.guild_id)
            data["member"] = self._require_member().payload()
        self.server.gateway.dispatch("TYPING_START", data, guild_id=channel.guild_id)

    # ---------------------------------------------------- app commands
    def _check_command(self, cmd: dict[str, Any], channel: Channel, force: bool) -> None:
        if force:
            return
        name = cmd["name"]
        if channel.type == DM:
            contexts = cmd.get("contexts")
            if cmd.get("dm_permission") is False or (contexts is not None and 1 not in contexts):
                raise C.CommandNotPermitted(f"/{name} is not available in DMs")
            return
        perms = self.permissions_in(channel)
        if not has(perms, P.USE_APPLICATION_COMMANDS):
            raise C.CommandNotPermitted(
                f"{self.user.username} lacks USE_APPLICATION_COMMANDS in #{channel.name}"
            )
        dmp = cmd.get("default_member_permissions")
        if dmp is None:
            return
        needed = int(dmp)
        allowed = has(perms, P.ADMINISTRATOR) if needed == 0 else has(perms, needed)
        if not allowed:
            raise C.CommandNotPermitted(
                f"{self.user.username} may not use /{name}: it requires {names(needed) or ['ADMINISTRATOR']} "
                f"(default_member_permissions={dmp}); the Discord client hides it. Pass force=True to send anyway."
            )

    async def _finish(self, record: Any, wait: bool, timeout: float | None) -> InteractionHandle:
        handle = InteractionHandle(self.server, record)
        if wait:
            await handle.wait_response(timeout)
        return handle

    async def slash(
        self,
        command: str,
        options: dict[str, Any] | None = None,
        /,
        *,
        in_channel: Channel | None = None,
        force: bool = False,
        wait: bool = True,
        timeout: float | None = None,
        **kw_options: Any,
    ) -> InteractionHandle:
        """Run ``/command [group] [subcommand]`` with typed options.

        Options are keyword arguments (or a dict, for names that clash with
        the parameters here).  Waits for the bot's initial response
        (``wait=False`` returns at once); raises
        :class:`~.handles.InteractionFailed` if the bot does not acknowledge
        within the deadline.
        """
        options = {**(options or {}), **kw_options}
        channel = in_channel or self.default_channel
        cmd, chain, leaf = C.split_path(self.server.world, command, channel.guild_id)
        self._check_command(cmd, channel, force)
        resolver = C.Resolver(self.server, self.member, channel)
        opts = C.nest(chain, C.build_options(resolver, leaf, options))
        data = _command_data(cmd, C.CHAT_INPUT, opts, resolver)
        record = self.server.interactions.create(
            APPLICATION_COMMAND, data, self.user, channel, command_type=C.CHAT_INPUT
        )
        return await self._finish(record, wait, timeout)

    async def autocomplete(
        self,
        command: str,
        focused: str,
        value: str = "",
        options: dict[str, Any] | None = None,
        /,
        *,
        in_channel: Channel | None = None,
        timeout: float | None = None,
        **kw_options: Any,
    ) -> list[dict[str, Any]]:
        """Type ``value`` into option ``focused``; returns the bot's choices."""
        options = {**(options or {}), **kw_options}
        channel = in_channel or self.default_channel
        cmd, chain, leaf = C.split_path(self.server.world, command, channel.guild_id)
        self._check_command(cmd, channel, False)
        resolver = C.Resolver(self.server, self.member, channel)
        opts = C.nest(
            chain, C.build_options(resolver, leaf, {**options, focused: value}, focused=focused)
        )
        data = _command_data(cmd, C.CHAT_INPUT, opts, resolver)
        record = self.server.interactions.create(
            AUTOCOMPLETE, data, self.user, channel, command_type=C.CHAT_INPUT
        )
        handle = await self._finish(record, True, timeout)
        return handle.choices or []

    async def context_menu(
        self,
        name: str,
        target: Message | User | Actor,
        *,
        in_channel: Channel | None = None,
        force: bool = False,
        wait: bool = True,
        timeout: float | None = None,
    ) -> InteractionHandle:
        """Use a message or user context-menu command on ``target``."""
        if isinstance(target, Message):
            ctype = C.MESSAGE_COMMAND
            channel = in_channel or self.server.world.channels[target.channel_id]
        else:
            ctype = C.USER_COMMAND
            channel = in_channel or self.default_channel
        cmd = C.find_command(self.server.world, name, ctype, channel.guild_id)
        self._check_command(cmd, channel, force)
        resolver = C.Resolver(self.server, self.member, channel)
        if isinstance(target, Message):
            target_id = resolver.add_message(target)
        else:
            target_id = resolver.add_user(target.user if isinstance(target, Actor) else target)
        data = _command_data(cmd, ctype, [], resolver)
        data["target_id"] = target_id
        record = self.server.interactions.create(
            APPLICATION_COMMAND, data, self.user, channel, command_type=ctype
        )
        return await self._finish(record, wait, timeout)

    # ------------------------------------------------------ components
    async def click(
        self,
        message: Message,
        label_or_custom_id: str,
        *,
        values: list[Any] | None = None,
        wait: bool = True,
        timeout: float | None = None,
        force: bool = False,
    ) -> InteractionHandle:
        """Click a button, or pick ``values`` in a select menu, on ``message``.

        An ephemeral message is shown only to the member it answered: anyone else cannot
        click it (``force=True`` sends the interaction anyway, as a forged client could, to
        test the bot's own run-time checks)."""
        message = self.server.world.messages[message.id]
        owner = (message.interaction_metadata or {}).get("user", {}).get("id")
        if message.ephemeral and owner is not None and int(owner) != self.user.id and not force:
            raise ActionNotPermitted("an ephemeral message is visible only to the member it answered")
        comp = message.component(label_or_custom_id)
        if comp is None:
            found = [c.get("label") or c.get("custom_id") for c in message.interactive_components()]
            raise C.CommandError(
                f"no component {label_or_custom_id!r} on message {message.id}; found {found}"
            )
        if comp.get("disabled"):
            raise ActionNotPermitted(f"component {label_or_custom_id!r} is disabled")
        ctype = comp["type"]
        if ctype == 2 and comp.get("style") in (5, 6):
            raise ActionNotPermitted("link/premium buttons do not create interactions")
        channel = self.server.world.channels[message.channel_id]
        data: dict[str, Any] = {"custom_id": comp["custom_id"], "component_type": ctype}
        if ctype != 2:
            data.update(self._select_values(comp, values or [], channel))
        elif values:
            raise C.CommandError("buttons take no values")
        record = self.server.interactions.create(
            MESSAGE_COMPONENT, data, self.user, channel, source=message
        )
        return await self._finish(record, wait, timeout)

    def _select_values(
        self, comp: dict[str, Any], values: list[Any], channel: Channel
    ) -> dict[str, Any]:
        lo, hi = comp.get("min_values", 1), comp.get("max_values", 1)
        if not lo <= len(values) <= hi:
            raise C.CommandError(
                f"select {comp['custom_id']!r} takes {lo}..{hi} values, got {len(values)}"
            )
        if comp["type"] == 3:
            allowed = {o["value"]: o for o in comp.get("options", [])}
            by_label = {o["label"]: o["value"] for o in comp.get("options", [])}
            out = []
            for v in values:
                v = by_label.get(v, v)
                if v not in allowed:
                    raise C.CommandError(
                        f"{v!r} is not an option of select {comp['custom_id']!r}: {sorted(allowed)}"
                    )
                out.append(v)
            return {"values": out}
        resolver = C.Resolver(self.server, self.member, channel)
        ids = []
        for v in values:
            if isinstance(v, Role):
                ids.append(resolver.add_role(v))
            elif isinstance(v, Channel):
                ids.append(resolver.add_channel(v))
            else:
                ids.append(resolver.add_user(v.user if isinstance(v, Actor) else v))
        return {"values": ids, "resolved": resolver.resolved}

    async def submit_modal(
        self,
        shown: InteractionHandle,
        values: dict[str, str] | None = None,
        *,
        wait: bool = True,
        timeout: float | None = None,
        **by_custom_id: str,
    ) -> InteractionHandle:
        """Fill in and submit the modal the bot showed in ``shown``.

        ``values`` maps text-input ``custom_id`` or label to the typed text.
        """
        modal = shown.modal
        if modal is None:
            raise C.CommandError(
                f"{shown!r} did not show a modal (response: {shown.response_name})"
            )
        given = {**(values or {}), **by_custom_id}
        rows = []
        used = set()
        for row in modal.get("components") or []:
            inputs = []
            for _, comp in modal_inputs(row):
                key = comp["custom_id"] if comp["custom_id"] in given else comp.get("label")
                value = given.get(key, comp.get("value") or "")
                if key in given:
                    used.add(key)
                self._check_input(comp, value)
                inputs.append(
                    {"type": comp["type"], "custom_id": comp["custom_id"], "value": value}
                )
            if row.get("type") == 18:
                rows.append({"type": 18, "component": inputs[0]})
            elif inputs:
                rows.append({"type": 1, "components": inputs})
        unknown = set(given) - used
        if unknown:
            raise C.CommandError(f"modal {modal.get('title')!r} has no input(s) {sorted(unknown)}")
        data = {"custom_id": modal["custom_id"], "components": rows}
        origin = shown.record
        source = (
            self.server.world.messages.get(origin.source_message_id)
            if origin.source_message_id
            else None
        )
        record = self.server.interactions.create(
            MODAL_SUBMIT, data, self.user, origin.channel, source=source, origin=origin
        )
        return await self._finish(record, wait, timeout)

    @staticmethod
    def _check_input(comp: dict[str, Any], value: str) -> None:
        if comp.get("type") != 4:
            return
        label = comp.get("label") or comp["custom_id"]
        if comp.get("required", True) and not value:
            raise C.CommandError(f"modal input {label!r} is required")
        lo, hi = comp.get("min_length", 0), comp.get("max_length", 4000)
        if value and not lo <= len(value) <= hi:
            raise C.CommandError(f"modal input {label!r} must be {lo}..{hi} characters")


def _command_data(
    cmd: dict[str, Any], ctype: int, options: list[dict[str, Any]], resolver: C.Resolver
) -> dict[str, Any]:
    data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": ctype}
    if options:
        data["options"] = options
    if cmd.get("guild_id"):
        data["guild_id"] = cmd["guild_id"]
    if resolver.resolved:
        data["resolved"] = resolver.resolved
    return data


def _split_emoji(emoji: str) -> tuple[str, int | None]:
    name, _, eid = emoji.rpartition(":") if ":" in emoji else (emoji, "", "")
    return (name, int(eid)) if eid else (emoji, None)


def _emoji_payload(emoji: str) -> dict[str, Any]:
    name, eid = _split_emoji(emoji)
    return {"id": str(eid), "name": name, "animated": False} if eid else {"id": None, "name": emoji}

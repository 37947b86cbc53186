"""A small but complete discord.py bot used to exercise the stand-in.

It doubles as an example of the features a real bot uses: slash commands
with groups, nested subcommands, typed options and autocomplete, context
menus, modals, buttons and selects, deferrals and follow-ups, prefix
commands and raw event listeners.  Everything the bot observes is recorded
in :attr:`SampleBot.seen` (an :class:`Observations`) so tests can await it
without sleeping.
"""

from __future__ import annotations

import asyncio
import io
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.ext import commands
from discord.webhook.async_ import async_context, interaction_response_params

from .actor import Actor
from .driver import GuildDriver
from .fixtures import running_bot, standin_client_kwargs
from .permissions import P
from .server import DiscordStandIn
from .state import Channel, Notifier, Role

DATASETS = ["marv", "margo", "mixtral-chat", "support"]


class Observations:
    """Named event lists the bot appends to; awaitable without sleeps."""

    def __init__(self) -> None:
        self.events: defaultdict[str, list[Any]] = defaultdict(list)
        self._notifier = Notifier()

    def record(self, name: str, value: Any = None) -> None:
        self.events[name].append(value)
        self._notifier.notify()

    def __getitem__(self, name: str) -> list[Any]:
        return self.events[name]

    async def wait(
        self,
        name: str,
        predicate: Callable[[Any], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 5.0,
    ) -> Any:
        """The ``count``-th recorded ``name`` event matching ``predicate``."""

        def found() -> Any:
            hits = [v for v in self.events[name] if predicate is None or predicate(v)]
            return (hits[count - 1],) if len(hits) >= count else None

        return (await self._notifier.wait_for(found, timeout, f"bot event {name!r} #{count}"))[0]


# ----------------------------------------------------------------- views
class FeedbackModal(discord.ui.Modal, title="Feedback"):
    subject = discord.ui.TextInput(label="Subject", custom_id="subject", max_length=100)
    body = discord.ui.TextInput(
        label="Body", custom_id="body", style=discord.TextStyle.paragraph, required=False, max_length=4000
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        interaction.client.seen.record("modal_submit", (self.subject.value, self.body.value))
        await interaction.response.send_message(f"thanks: {self.subject.value}", ephemeral=True)


class OversizedModal(discord.ui.Modal, title="Too big"):
    text = discord.ui.TextInput(label="Text", custom_id="text", max_length=5000)


class ConfirmView(discord.ui.View):
    @discord.ui.button(label="Confirm", custom_id="confirm", style=discord.ButtonStyle.success)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content=f"Confirmed by {interaction.user.name}", view=None)

    @discord.ui.button(label="Cancel", custom_id="cancel")
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content="Cancelled")

    @discord.ui.button(label="Feedback", custom_id="feedback_button")
    async def feedback(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_modal(FeedbackModal())

    @discord.ui.select(
        custom_id="flavour",
        placeholder="Pick flavours",
        max_values=2,
        options=[discord.SelectOption(label=x.title(), value=x) for x in ("vanilla", "mint", "mango")],
    )
    async def flavour(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        await interaction.response.send_message(f"picked {','.join(select.values)}", ephemeral=True)


# -------------------------------------------------------------- commands
dataset = app_commands.Group(name="dataset", description="Manage datasets")


@dataset.command(name="stats", description="Show dataset statistics")
@app_commands.describe(dataset="Dataset name", limit="How many rows")
async def dataset_stats(
    interaction: discord.Interaction, dataset: str, limit: app_commands.Range[int, 1, 100] = 10
) -> None:
    await interaction.response.send_message(f"stats for {dataset} (limit {limit})", ephemeral=True)


@dataset_stats.autocomplete("dataset")
async def dataset_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=n, value=n) for n in DATASETS if n.startswith(current)]


@dataset.command(name="add", description="Add an example")
async def dataset_add(
    interaction: discord.Interaction,
    text: str,
    weight: float,
    public: bool,
    user: discord.Member,
    channel: discord.TextChannel,
    role: discord.Role,
    file: discord.Attachment,
) -> None:
    data = await file.read()
    await interaction.response.send_message(
        f"added {text!r} weight={weight} public={public} user={user.name} channel={channel.name} "
        f"role={role.name} file={file.filename}:{data.decode()} can_send={channel.permissions_for(user).send_messages}"
    )


admin = app_commands.Group(
    name="admin", description="Admin tools", default_permissions=discord.Permissions(manage_messages=True)
)
model = app_commands.Group(name="model", description="Model admin", parent=admin)


@admin.command(name="purge", description="Delete messages")
async def admin_purge(interaction: discord.Interaction, count: int) -> None:
    # Discord hides the command, but the bot must still check at run time.
    if not interaction.permissions.manage_messages:
        await interaction.response.send_message("denied: you need Manage Messages", ephemeral=True)
        return
    await interaction.response.send_message(f"purged {count}")


@model.command(name="reset", description="Reset the model")
async def model_reset(interaction: discord.Interaction, confirm: bool = False) -> None:
    await interaction.response.send_message(f"reset confirm={confirm}")


@app_commands.command(name="ping", description="Pong")
async def ping(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("pong")


@app_commands.command(name="perms", description="Show permissions")
async def perms(interaction: discord.Interaction) -> None:
    await interaction.response.send_message(
        f"user={interaction.permissions.value} app={interaction.app_permissions.value}", ephemeral=True
    )


@app_commands.command(name="slow", description="Defers first")
async def slow(interaction: discord.Interaction, ephemeral: bool = False) -> None:
    await interaction.response.defer(thinking=True, ephemeral=ephemeral)
    await interaction.client.seen.wait("release_slow")
    await interaction.followup.send("done")


@app_commands.command(name="report", description="Follow-ups and edits")
async def report(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("working…")
    first = await interaction.followup.send("part 1", wait=True)
    second = await interaction.followup.send("part 2 (private)", ephemeral=True, wait=True)
    await interaction.edit_original_response(content="report ready")
    original = await interaction.original_response()
    await first.edit(content="part 1 (edited)")
    await second.delete()
    interaction.client.seen.record("report", (original.content, first.id, second.id))


@app_commands.command(name="late", description="Answers after the deadline")
async def late(interaction: discord.Interaction) -> None:
    await interaction.client.seen.wait("release_late", timeout=10)
    try:
        await interaction.response.send_message("too late?")
    except (discord.NotFound, discord.InteractionResponded) as exc:
        interaction.client.seen.record("late_error", exc)


@app_commands.command(name="double", description="Responds twice")
async def double(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("one")
    # discord.py guards against this locally; a second process/handler would
    # not, so bypass the guard and let Discord (the stand-in) refuse it.
    adapter = async_context.get()
    try:
        await adapter.create_interaction_response(
            interaction.id,
            interaction.token,
            session=interaction._session,
            proxy=None,
            proxy_auth=None,
            params=interaction_response_params(4, {"content": "two"}),
        )
    except discord.HTTPException as exc:
        interaction.client.seen.record("double_error", exc)


@app_commands.command(name="long", description="Too long a reply")
async def long(interaction: discord.Interaction) -> None:
    try:
        await interaction.response.send_message("x" * 2001)
    except discord.HTTPException as exc:
        interaction.client.seen.record("long_error", exc)
        await interaction.response.send_message("sorry, that was too long")


@app_commands.command(name="feedback", description="Opens a modal")
async def feedback(interaction: discord.Interaction, oversized: bool = False) -> None:
    if oversized:
        try:
            await interaction.response.send_modal(OversizedModal())
        except discord.HTTPException as exc:
            interaction.client.seen.record("modal_error", exc)
            await interaction.response.send_message("modal refused", ephemeral=True)
        return
    await interaction.response.send_modal(FeedbackModal())


@app_commands.command(name="confirm", description="Buttons and a select")
async def confirm(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("Proceed?", view=ConfirmView())


@app_commands.context_menu(name="Add to dataset")
async def add_to_dataset(interaction: discord.Interaction, message: discord.Message) -> None:
    await interaction.response.send_message(f"added {message.author.name}: {message.content}", ephemeral=True)


@app_commands.context_menu(name="Inspect user")
async def inspect_user(interaction: discord.Interaction, member: discord.Member) -> None:
    roles = sorted(r.name for r in member.roles if not r.is_default())
    await interaction.response.send_message(f"{member.name} roles={roles}", ephemeral=True)


ALL_APP_COMMANDS = [dataset, admin, ping, perms, slow, report, late, double, long, feedback, confirm,
                    add_to_dataset, inspect_user]  # fmt: skip


# ------------------------------------------------------------------- bot
class SampleBot(commands.Bot):
    """The test bot.  ``guild_ids``: also sync the commands as guild commands."""

    def __init__(self, *, guild_ids: list[int] | None = None, sync: bool = True, **kwargs: Any) -> None:
        super().__init__(command_prefix="!", **standin_client_kwargs(**kwargs))
        self.seen = Observations()
        self.guild_ids = guild_ids or []
        self.sync_on_setup = sync
        for cmd in ALL_APP_COMMANDS:
            self.tree.add_command(cmd)
        self._add_prefix_commands()

    async def setup_hook(self) -> None:
        if not self.sync_on_setup:
            return
        await self.tree.sync()
        for gid in self.guild_ids:
            guild = discord.Object(id=gid)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py's documented hook; the default sleeps 5 s before every
        re-IDENTIFY (Discord's identify rate limit).  The stand-in has no such
        limit, so tests of INVALID_SESSION stay fast."""

    # listeners -----------------------------------------------------------
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        self.seen.record("interaction", interaction)

    async def on_ready(self) -> None:
        self.seen.record("ready", self.user.id)

    async def on_resumed(self) -> None:
        self.seen.record("resumed")

    async def on_message(self, message: discord.Message) -> None:
        self.seen.record("message", message)
        await self.process_commands(message)

    async def on_message_edit(self, before: discord.Message, after: discord.Message) -> None:
        self.seen.record("message_edit", after)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        self.seen.record("raw_message_edit", payload)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.seen.record("message_delete", payload.message_id)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.seen.record("reaction_add", payload)

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        self.seen.record("reaction_remove", payload)

    async def on_thread_create(self, thread: discord.Thread) -> None:
        self.seen.record("thread_create", thread)

    async def on_member_join(self, member: discord.Member) -> None:
        self.seen.record("member_join", member)

    async def on_member_update(self, before: discord.Member, after: discord.Member) -> None:
        self.seen.record("member_update", (before, after))

    async def on_guild_join(self, guild: discord.Guild) -> None:
        self.seen.record("guild_join", guild)

    async def on_guild_channel_create(self, channel: discord.abc.GuildChannel) -> None:
        self.seen.record("channel_create", channel)

    async def on_guild_role_create(self, role: discord.Role) -> None:
        self.seen.record("role_create", role)

    async def on_typing(self, channel: Any, user: Any, when: Any) -> None:
        self.seen.record("typing", user)

    # prefix commands -----------------------------------------------------
    def _add_prefix_commands(self) -> None:
        @self.command(name="ping")
        async def ping_cmd(ctx: commands.Context) -> None:
            await ctx.reply("pong")

        @self.command(name="quietping")
        async def quiet_ping(ctx: commands.Context) -> None:
            await ctx.reply("pong", mention_author=False)

        @self.command(name="echo")
        async def echo(ctx: commands.Context, *, text: str) -> None:
            await ctx.send(text)

        @self.command(name="announce")
        async def announce(ctx: commands.Context) -> None:
            await ctx.send(
                f"{ctx.author.mention} @everyone look", allowed_mentions=discord.AllowedMentions.none()
            )

        @self.command(name="shout")
        async def shout(ctx: commands.Context) -> None:
            await ctx.send(f"{ctx.author.mention} @everyone look")

        @self.command(name="thread")
        async def thread(ctx: commands.Context, *, name: str = "discussion") -> None:
            t = await ctx.message.create_thread(name=name)
            await t.send("thread started")

        @self.command(name="history")
        async def history(ctx: commands.Context, limit: int = 3) -> None:
            msgs = [m.content async for m in ctx.channel.history(limit=limit, before=ctx.message)]
            await ctx.send(" | ".join(msgs))

        @self.command(name="react")
        async def react(ctx: commands.Context) -> None:
            await ctx.message.add_reaction("👍")

        @self.command(name="dm")
        async def dm(ctx: commands.Context) -> None:
            await ctx.author.send("hello in private")

        @self.command(name="upload")
        async def upload(ctx: commands.Context) -> None:
            await ctx.send("here", file=discord.File(io.BytesIO(b"col1,col2\n1,2\n"), filename="data.csv"))

        @self.command(name="typing")
        async def typing(ctx: commands.Context) -> None:
            async with ctx.typing():
                await asyncio.sleep(0)
            await ctx.send("typed")

        @self.command(name="embed")
        async def embed(ctx: commands.Context) -> None:
            e = discord.Embed(title="Stats", description="All good")
            e.add_field(name="rows", value="42")
            await ctx.send(embed=e)


# --------------------------------------------------------------- fixtures
@dataclass
class SampleWorld:
    """A guild with roles, members and channels, used by the stand-in tests."""

    server: DiscordStandIn
    guild: GuildDriver
    mods: Role
    alice: Actor
    bob: Actor
    general: Channel


def build_sample_world(server: DiscordStandIn) -> SampleWorld:
    guild = server.create_guild("Tunecord HQ")
    mods = guild.create_role("mods", permissions=P.MANAGE_MESSAGES | P.KICK_MEMBERS)
    alice = guild.add_member("alice")
    bob = guild.add_member("bob", roles=[mods])
    return SampleWorld(server, guild, mods, alice, bob, guild.channel("general"))


@pytest.fixture
def sample_world(discord_server: DiscordStandIn) -> SampleWorld:
    return build_sample_world(discord_server)


@pytest.fixture
async def sample_bot(sample_world: SampleWorld) -> AsyncIterator[SampleBot]:
    bot = SampleBot()
    async with running_bot(bot, sample_world.server):
        yield bot

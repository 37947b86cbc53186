"""Channel messages, reactions, threads, DMs and reads through real discord.py."""

from __future__ import annotations

import discord
import pytest

from tests.standins.discord import P
from tests.standins.discord.fixtures import running_bot
from tests.standins.discord.messages import Upload
from tests.standins.discord.samplebot import SampleBot

pytest_plugins = ("tests.standins.discord.fixtures", "tests.standins.discord.samplebot")


async def command(world, text, who=None, channel=None):
    """A member types a prefix command; returns (their message, bot reply)."""
    channel = channel or world.general
    msg = await (who or world.alice).send(channel, text)
    reply = await world.server.wait_for_message(channel, after=msg)
    return msg, reply


async def test_bot_messages_are_dispatched_back_as_message_create(sample_world, sample_bot):
    msg, reply = await command(sample_world, "!echo hello there")
    assert reply.content == "hello there"
    seen = await sample_bot.seen.wait("message", lambda m: m.author.id == sample_bot.user.id)
    assert seen.id == reply.id and seen.content == "hello there"
    sent = sample_world.server.calls("POST", "/channels/{channel_id}/messages")
    assert sent[-1].request_json["content"] == "hello there"


async def test_reply_pings_author_unless_mention_author_false(sample_world, sample_bot):
    msg, reply = await command(sample_world, "!ping")
    assert reply.reference_id == msg.id and reply.type == 19
    assert reply.pings.users == {sample_world.alice.id}
    _, quiet = await command(sample_world, "!quietping")
    assert quiet.reference_id is not None
    assert not quiet.pings
    assert quiet.allowed_mentions["replied_user"] is False


async def test_allowed_mentions_none_pings_nobody(sample_world, sample_bot):
    _, reply = await command(sample_world, "!announce")
    assert f"<@{sample_world.alice.id}>" in reply.content and "@everyone" in reply.content
    assert not reply.pings
    assert reply.payload(sample_world.server.world)["mention_everyone"] is False
    _, loud = await command(sample_world, "!shout")
    assert loud.pings.users == {sample_world.alice.id} and loud.pings.everyone


async def test_role_mentions_respect_mentionable_and_mention_everyone(sample_world, sample_bot):
    guild = sample_world.guild
    helpers = guild.create_role("helpers", mentionable=True)
    staff = guild.create_role("staff")  # not mentionable
    guild.set_role_permissions(guild.everyone, int(P.VIEW_CHANNEL | P.SEND_MESSAGES | P.READ_MESSAGE_HISTORY))
    guild.set_bot_permissions(int(P.VIEW_CHANNEL | P.SEND_MESSAGES))
    channel = sample_bot.get_channel(sample_world.general.id)
    sent = await channel.send(f"{helpers.mention} {staff.mention} @here")
    stored = sample_world.server.world.messages[sent.id]
    assert stored.pings.roles == {helpers.id}
    assert not stored.pings.everyone
    assert [r.id for r in sent.role_mentions] == [helpers.id]


async def test_edit_and_delete_own_message_dispatch_update_and_delete(sample_world, sample_bot):
    channel = sample_bot.get_channel(sample_world.general.id)
    sent = await channel.send("draft")
    edited = await sent.edit(content="final")
    assert edited.content == "final" and edited.edited_at is not None
    update = await sample_bot.seen.wait("raw_message_edit", lambda p: p.message_id == sent.id)
    assert update.data["content"] == "final"
    await sent.delete()
    assert await sample_bot.seen.wait("message_delete", lambda mid: mid == sent.id) == sent.id
    assert sample_world.server.world.messages[sent.id].deleted
    with pytest.raises(discord.NotFound) as info:
        await channel.fetch_message(sent.id)
    assert info.value.code == 10008


async def test_cannot_edit_someone_elses_message(sample_world, sample_bot):
    msg = await sample_world.alice.send(sample_world.general, "mine")
    channel = sample_bot.get_channel(sample_world.general.id)
    theirs = await channel.fetch_message(msg.id)
    with pytest.raises(discord.Forbidden) as info:
        await theirs.edit(content="hacked")
    assert info.value.code == 50005
    assert sample_world.server.world.messages[msg.id].content == "mine"
    await theirs.delete()  # bot has MANAGE_MESSAGES by default
    assert sample_world.server.world.messages[msg.id].deleted


async def test_history_before_after_limit_and_fetch(sample_world, sample_bot):
    posted = [await sample_world.alice.send(sample_world.general, f"m{i}") for i in range(6)]
    channel = sample_bot.get_channel(sample_world.general.id)
    newest = [m.content async for m in channel.history(limit=3)]
    assert newest == ["m5", "m4", "m3"]
    before = [m.content async for m in channel.history(limit=2, before=discord.Object(posted[3].id))]
    assert before == ["m2", "m1"]
    after = [m.content async for m in channel.history(limit=2, after=discord.Object(posted[1].id))]
    assert after == ["m2", "m3"]
    fetched = await channel.fetch_message(posted[4].id)
    assert fetched.content == "m4" and fetched.author.id == sample_world.alice.id
    limits = [e.query.get("limit") for e in sample_world.server.calls("GET", "/channels/{channel_id}/messages")]
    assert limits == ["3", "2", "2"]
    _, reply = await command(sample_world, "!history 2")
    assert reply.content == "m5 | m4"


async def test_send_with_embed_components_and_attachment(sample_world, sample_bot):
    _, embed_reply = await command(sample_world, "!embed")
    assert embed_reply.embeds[0]["title"] == "Stats"
    assert embed_reply.embeds[0]["fields"][0] == {"name": "rows", "value": "42", "inline": True}
    _, upload = await command(sample_world, "!upload")
    assert [a.filename for a in upload.attachments] == ["data.csv"]
    exchange = sample_world.server.calls("POST", "/channels/{channel_id}/messages")[-1]
    assert exchange.request_content_type == "multipart/form-data"
    assert exchange.upload_names == ["data.csv"]
    channel = sample_bot.get_channel(sample_world.general.id)
    fetched = await channel.fetch_message(upload.id)
    assert await fetched.attachments[0].read() == b"col1,col2\n1,2\n"
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="Go", custom_id="go"))
    with_button = await channel.send("buttons", view=view)
    stored = sample_world.server.world.messages[with_button.id]
    assert stored.component("Go")["custom_id"] == "go"


async def test_member_uploads_reach_the_bot(sample_world, sample_bot):
    await sample_world.alice.send(sample_world.general, "file", files=[Upload("a.txt", b"abc", "text/plain")])
    seen = await sample_bot.seen.wait("message", lambda m: m.content == "file")
    assert seen.attachments[0].filename == "a.txt"
    assert await seen.attachments[0].read() == b"abc"


async def test_reactions_both_ways(sample_world, sample_bot):
    msg, _ = await command(sample_world, "!echo react to me")
    trigger = await sample_world.alice.send(sample_world.general, "!react")
    await sample_world.server.wait_for(lambda: trigger.reactions.get("👍"), what="bot reaction")
    assert trigger.reactions["👍"] == [sample_bot.user.id]
    await sample_world.bob.react(msg, "🔥")
    added = await sample_bot.seen.wait("reaction_add", lambda p: p.user_id == sample_world.bob.id)
    assert (added.message_id, str(added.emoji)) == (msg.id, "🔥")
    await sample_world.bob.unreact(msg, "🔥")
    removed = await sample_bot.seen.wait("reaction_remove")
    assert removed.user_id == sample_world.bob.id
    channel = sample_bot.get_channel(sample_world.general.id)
    partial = channel.get_partial_message(msg.id)
    with pytest.raises(discord.HTTPException) as info:
        await partial.add_reaction("notanemoji")
    assert info.value.code == 10014


async def test_typing_indicator(sample_world, sample_bot):
    _, reply = await command(sample_world, "!typing")
    assert reply.content == "typed"
    assert sample_world.server.typing[-1][0] == sample_world.general.id


async def test_thread_from_message_and_messages_in_thread(sample_world, sample_bot):
    msg = await sample_world.alice.send(sample_world.general, "!thread ideas")
    thread_seen = await sample_bot.seen.wait("thread_create")
    assert thread_seen.id == msg.id and thread_seen.name == "ideas"  # threads reuse the message id
    thread = sample_world.server.world.channels[msg.id]
    first = await sample_world.server.wait_for_message(thread)
    assert first.content == "thread started"
    await sample_world.alice.send(thread, "in the thread")
    seen = await sample_bot.seen.wait("message", lambda m: m.content == "in the thread")
    assert isinstance(seen.channel, discord.Thread) and seen.channel.parent_id == sample_world.general.id


async def test_direct_messages(sample_world, sample_bot):
    _ = await sample_world.alice.send(sample_world.general, "!dm")
    dm = sample_world.server.world.dm_channel(sample_world.alice.user)
    hello = await sample_world.server.wait_for_message(dm)
    assert hello.content == "hello in private" and hello.guild_id is None
    await sample_world.alice.send_dm("hi bot")
    seen = await sample_bot.seen.wait("message", lambda m: m.content == "hi bot")
    assert isinstance(seen.channel, discord.DMChannel) and seen.guild is None
    stranger = sample_world.server.create_user("stranger")
    user = await sample_bot.fetch_user(stranger.id)
    with pytest.raises(discord.Forbidden) as info:
        await user.send("hi")
    assert info.value.code == 50007  # no shared guild


async def test_guild_member_role_channel_reads(sample_world, sample_bot):
    guild = await sample_bot.fetch_guild(sample_world.guild.id)
    assert guild.name == "Tunecord HQ" and guild.owner_id == sample_world.guild.guild.owner_id
    member = await guild.fetch_member(sample_world.bob.id)
    assert [r.id for r in member.roles if not r.is_default()] == [sample_world.mods.id]
    roles = await guild.fetch_roles()
    assert {r.name for r in roles} >= {"@everyone", "mods"}
    channels = await guild.fetch_channels()
    assert [c.name for c in channels] == ["general"]
    channel = await sample_bot.fetch_channel(sample_world.general.id)
    assert channel.name == "general"
    user = await sample_bot.fetch_user(sample_world.alice.id)
    assert user.name == "alice"
    with pytest.raises(discord.NotFound) as info:
        await guild.fetch_member(123)
    assert info.value.code == 10007


async def test_role_assignment_needs_hierarchy(sample_world, sample_bot):
    guild = sample_bot.get_guild(sample_world.guild.id)
    member = guild.get_member(sample_world.alice.id)
    await member.add_roles(guild.get_role(sample_world.mods.id))
    assert sample_world.mods.id in sample_world.guild.guild.members[sample_world.alice.id].roles
    _, after = await sample_bot.seen.wait("member_update")
    assert sample_world.mods.id in [r.id for r in after.roles]
    sample_world.mods.position = 99
    with pytest.raises(discord.Forbidden) as info:
        await member.remove_roles(guild.get_role(sample_world.mods.id))
    assert info.value.code == 50013


async def test_unimplemented_routes_fail_loudly_with_json_404(sample_world, sample_bot):
    guild = sample_bot.get_guild(sample_world.guild.id)
    with pytest.raises(discord.NotFound) as info:
        await guild.fetch_emojis()
    assert info.value.text == "404: Not Found"
    exchange = sample_world.server.exchanges[-1]
    assert exchange.status == 404 and exchange.response_json == {"message": "404: Not Found", "code": 0}


async def test_wrong_token_is_unauthorized(discord_server, sample_world):
    with pytest.raises(discord.LoginFailure):
        async with running_bot(SampleBot(), discord_server, token="wrong-token"):
            pass
    assert discord_server.exchanges[0].status == 401
    assert discord_server.exchanges[0].response_json == {"message": "401: Unauthorized", "code": 0}


async def test_thread_without_message_and_gateway_bot(sample_world, sample_bot):
    channel = sample_bot.get_channel(sample_world.general.id)
    thread = await channel.create_thread(name="private talk", type=discord.ChannelType.private_thread)
    assert thread.type is discord.ChannelType.private_thread and thread.parent_id == channel.id
    assert (await sample_bot.seen.wait("thread_create")).id == thread.id
    await thread.send("inside")
    stored = sample_world.server.world.channels[thread.id]
    assert [m.content for m in sample_world.server.messages_in(stored)] == ["inside"]
    shards, url, limits = await sample_bot.http.get_bot_gateway()
    assert (shards, url) == (1, sample_world.server.gateway_url) and limits["max_concurrency"] == 1
    info = await sample_bot.application_info()
    assert info.id == sample_bot.application_id and info.interactions_endpoint_url is None


async def test_text_attachment_content_type_keeps_its_charset(sample_world, sample_bot):
    """Discord reports ``text/plain; charset=utf-8`` for text files; the CDN must serve it."""
    text = "héllo wörld\n".encode()
    await sample_world.alice.send(
        sample_world.general, "notes", files=[Upload("notes.txt", text, "text/plain; charset=utf-8")]
    )
    seen = await sample_bot.seen.wait("message", lambda m: m.content == "notes")
    attachment = seen.attachments[0]
    assert attachment.content_type == "text/plain; charset=utf-8"
    assert await attachment.read() == text
    # discord.py uploads everything as application/octet-stream; Discord sniffs the type
    _, upload = await command(sample_world, "!upload")
    assert upload.attachments[0].content_type == "text/csv; charset=utf-8"
    fetched = await sample_bot.get_channel(sample_world.general.id).fetch_message(upload.id)
    assert fetched.attachments[0].content_type == "text/csv; charset=utf-8"
    assert await fetched.attachments[0].read() == b"col1,col2\n1,2\n"
    assert sample_world.server.internal_errors == []


async def test_thread_from_message_has_starter_message_and_thread_field(sample_world, sample_bot):
    msg = await sample_world.alice.send(sample_world.general, "!thread ideas")
    thread_seen = await sample_bot.seen.wait("thread_create")
    stored_thread = sample_world.server.world.channels[msg.id]
    await sample_world.server.wait_for_message(stored_thread)  # "thread started"
    # the starter message now carries the thread (and HAS_THREAD), also as MESSAGE_UPDATE
    update = await sample_bot.seen.wait("raw_message_edit", lambda p: p.message_id == msg.id)
    assert update.data["thread"]["id"] == str(msg.id)
    general = sample_bot.get_channel(sample_world.general.id)
    starter = await general.fetch_message(msg.id)
    assert starter.flags.has_thread
    assert starter.thread is not None and starter.thread.id == msg.id and starter.thread.name == "ideas"
    # the thread opens with a THREAD_STARTER_MESSAGE (type 21) pointing at the starter
    thread = sample_bot.get_channel(thread_seen.id)
    history = [m async for m in thread.history(oldest_first=True)]
    assert [m.type for m in history] == [
        discord.MessageType.thread_starter_message,
        discord.MessageType.default,
    ]
    first = history[0]
    assert (first.reference.message_id, first.reference.channel_id) == (msg.id, sample_world.general.id)
    assert first.reference.resolved is not None and first.reference.resolved.id == msg.id
    assert first.system_content == "!thread ideas"
    assert history[1].content == "thread started"
    # message_count excludes the starter message (Discord docs)
    assert stored_thread.message_count == 1
    assert (await sample_bot.fetch_channel(msg.id)).message_count == 1


async def test_slowmode_in_threads_and_channels(sample_world, sample_bot):
    from tests.standins.discord import SlowmodeActive

    w = sample_world
    general = sample_bot.get_channel(w.general.id)
    starter = await general.send("topic")
    thread = await starter.create_thread(name="slow", slowmode_delay=5)
    assert thread.slowmode_delay == 5  # from the create response
    stored = w.server.world.channels[thread.id]
    assert stored.rate_limit_per_user == 5
    assert w.server.calls("POST", "/channels/{channel_id}/messages/{message_id}/threads")[-1].request_json[
        "rate_limit_per_user"
    ] == 5
    assert (await sample_bot.fetch_channel(thread.id)).slowmode_delay == 5
    # bots are not affected by slowmode
    await thread.send("one")
    await thread.send("two")
    # members without a bypass permission are (error 20016)
    await w.alice.send(stored, "first")
    with pytest.raises(SlowmodeActive) as info:
        await w.alice.send(stored, "second")
    assert info.value.code == 20016 and 0 < info.value.retry_after <= 5
    await w.bob.send(stored, "mods bypass")  # MANAGE_MESSAGES
    await w.bob.send(stored, "mods bypass again")
    w.server.expire_slowmode(stored)
    await w.alice.send(stored, "after the wait")
    # the bot can change it (PATCH /channels/{id} -> THREAD_UPDATE)
    edited = await thread.edit(slowmode_delay=0)
    assert edited.slowmode_delay == 0 and stored.rate_limit_per_user == 0
    await w.alice.send(stored, "no more waiting")
    await w.alice.send(stored, "none at all")
    # channels: set through the driver, seen by the bot, one message and one thread per interval
    w.guild.set_slowmode(w.general, 10)
    await w.server.wait_for(lambda: general.slowmode_delay == 10, what="CHANNEL_UPDATE")
    msg = await w.alice.send(w.general, "hello")
    with pytest.raises(SlowmodeActive):
        await w.alice.send(w.general, "again")
    w.guild.create_thread(w.general, "alice's", owner=w.alice, message=msg)
    with pytest.raises(SlowmodeActive):
        w.guild.create_thread(w.general, "another", owner=w.alice)
    # out-of-range slowmode is a form error
    with pytest.raises(discord.HTTPException) as bad:
        await general.create_thread(name="too slow", slowmode_delay=21601, type=discord.ChannelType.public_thread)
    assert bad.value.code == 50035 and "rate_limit_per_user" in bad.value.text


class V2Panel(discord.ui.LayoutView):
    container = discord.ui.Container(
        discord.ui.Section(
            discord.ui.TextDisplay("Release notes"),
            accessory=discord.ui.Thumbnail("https://example.com/logo.png"),
        ),
        discord.ui.Separator(),
        discord.ui.MediaGallery(discord.MediaGalleryItem("https://example.com/chart.png")),
    )
    row = discord.ui.ActionRow()

    @row.button(label="Ack", custom_id="v2-ack")
    async def ack(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_message("acked", ephemeral=True)


async def test_components_v2_flag_is_kept_and_enforced(sample_world, sample_bot):
    w = sample_world
    general = sample_bot.get_channel(w.general.id)
    sent = await general.send(view=V2Panel())
    assert sent.flags.components_v2
    stored = w.server.world.messages[sent.id]
    assert stored.components_v2 and stored.flags & (1 << 15)
    assert [c["type"] for c in stored.components] == [17, 1]
    assert (await general.fetch_message(sent.id)).flags.components_v2
    # interactive components nested in a layout can be used
    clicked = await w.alice.click(stored, "Ack")
    assert clicked.content == "acked"
    # editing cannot drop the flag
    edited = await sent.edit(view=V2Panel())
    assert edited.flags.components_v2
    # the legacy fields are refused with the flag...
    container = {"type": 17, "components": [{"type": 10, "content": "x"}]}
    with pytest.raises(discord.HTTPException) as legacy:
        await sample_bot.http.send_message(
            general.id, params=discord.http.MultipartParameters(
                payload={"content": "hi", "flags": 1 << 15, "components": [container]}, multipart=None, files=None
            ),
        )  # fmt: skip
    assert legacy.value.code == 50035
    errors = w.server.exchanges[-1].response_json["errors"]
    assert errors["content"]["_errors"][0]["code"] == "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2"
    # ...and layout components need it
    with pytest.raises(discord.HTTPException) as no_flag:
        await sample_bot.http.send_message(
            general.id, params=discord.http.MultipartParameters(
                payload={"components": [container]}, multipart=None, files=None
            ),
        )  # fmt: skip
    assert no_flag.value.code == 50035


async def test_an_enforced_nonce_returns_the_first_message_instead_of_a_second(
    sample_world, sample_bot
):
    """discord.py sends ``enforce_nonce: true`` with every ``nonce``: a repeat by the same
    author within a few minutes gets the first message back and creates nothing."""
    channel = sample_bot.get_channel(sample_world.general.id)
    first = await channel.send("posted once", nonce="job-7-event-3")
    again = await channel.send("posted once", nonce="job-7-event-3")
    other = await channel.send("posted once", nonce="job-7-event-4")
    plain = [await channel.send("no nonce") for _ in range(2)]
    assert again.id == first.id and other.id != first.id and plain[0].id != plain[1].id
    stored = [m.content for m in sample_world.server.messages_in(sample_world.general)]
    assert stored.count("posted once") == 2 and stored.count("no nonce") == 2
    sent = sample_world.server.calls("POST", "/channels/{channel_id}/messages")
    assert sent[-5].request_json["enforce_nonce"] is True
    await sample_bot.seen.wait("message", lambda m: m.id == plain[1].id)  # dispatched last
    created = [m for m in sample_bot.seen["message"] if m.content == "posted once"]
    assert sorted(m.id for m in created) == sorted({first.id, other.id})  # no second event

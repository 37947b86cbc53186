"""Slash commands, autocomplete, context menus, components and modals."""

from __future__ import annotations

import io

import discord
import pytest

from tests.standins.discord import CommandError, InteractionFailed, P, Upload
from tests.standins.discord.fixtures import running_bot
from tests.standins.discord.samplebot import SampleBot

pytest_plugins = ("tests.standins.discord.fixtures", "tests.standins.discord.samplebot")


async def test_bulk_overwrite_is_stored_with_options_and_permissions(sample_world, sample_bot):
    server = sample_world.server
    names = {(c["name"], c["type"]) for c in server.commands}
    assert {("ping", 1), ("dataset", 1), ("Add to dataset", 3), ("Inspect user", 2)} <= names
    dataset = server.command("dataset")
    subs = {o["name"]: o for o in dataset["options"]}
    assert subs["stats"]["type"] == 1
    stats_opts = {o["name"]: o for o in subs["stats"]["options"]}
    assert stats_opts["dataset"]["autocomplete"] is True
    assert (stats_opts["limit"]["min_value"], stats_opts["limit"]["max_value"]) == (1, 100)
    admin = server.command("admin")
    assert admin["default_member_permissions"] == str(discord.Permissions(manage_messages=True).value)
    assert [o["name"] for o in admin["options"] if o["type"] == 2] == ["model"]
    assert server.command("ping")["default_member_permissions"] is None
    put = server.calls("PUT", "/applications/{application_id}/commands")
    assert len(put) == 1 and put[0].status == 200


async def test_guild_command_sync_and_invocation(discord_server, sample_world):
    bot = SampleBot(guild_ids=[sample_world.guild.id])
    async with running_bot(bot, discord_server):
        guild_cmds = discord_server.guild_commands(sample_world.guild)
        assert {c["name"] for c in guild_cmds} >= {"ping", "dataset"}
        assert all(c["guild_id"] == str(sample_world.guild.id) for c in guild_cmds)
        result = await sample_world.alice.slash("ping")
        assert result.record.data["guild_id"] == str(sample_world.guild.id)
        assert result.content == "pong"


async def test_slash_response_is_a_real_message(sample_world, sample_bot):
    result = await sample_world.alice.slash("ping")
    assert result.response_name == "CHANNEL_MESSAGE_WITH_SOURCE"
    assert result.content == "pong" and not result.ephemeral
    assert result.message.type == 20 and result.message.interaction_metadata["name"] == "ping"
    seen = await sample_bot.seen.wait("message", lambda m: m.content == "pong")
    assert seen.interaction_metadata.user.id == sample_world.alice.id
    assert sample_world.server.messages_in(sample_world.general)[-1].id == result.message.id
    callback = sample_world.server.calls("POST", "/interactions/{interaction_id}/{token}/callback")[-1]
    assert callback.query == {"with_response": "1"}
    assert callback.response_json["interaction"]["response_message_id"] == str(result.message.id)


async def test_subcommand_with_typed_options_and_ephemeral_reply(sample_world, sample_bot):
    result = await sample_world.alice.slash("dataset stats", dataset="marv", limit=5)
    assert result.content == "stats for marv (limit 5)" and result.ephemeral
    assert sample_world.server.messages_in(sample_world.general) == []  # ephemeral: not in history
    data = result.record.data
    assert data["options"] == [
        {"name": "stats", "type": 1, "options": [
            {"name": "dataset", "type": 3, "value": "marv"}, {"name": "limit", "type": 4, "value": 5}]}
    ]  # fmt: skip


async def test_all_option_types_resolve(sample_world, sample_bot):
    w = sample_world
    result = await w.alice.slash(
        "dataset add", text="hi", weight=0.5, public=True, user=w.bob, channel=w.general, role=w.mods,
        file=Upload("ex.txt", b"payload"),
    )  # fmt: skip
    assert result.content == (
        "added 'hi' weight=0.5 public=True user=bob channel=general role=mods file=ex.txt:payload can_send=True"
    )
    resolved = result.record.data["resolved"]
    assert set(resolved) == {"users", "members", "channels", "roles", "attachments"}
    assert resolved["channels"][str(w.general.id)]["permissions"]


async def test_nested_group_subcommand(sample_world, sample_bot):
    result = await sample_world.bob.slash("admin model reset", confirm=True)
    assert result.content == "reset confirm=True"
    opts = result.record.data["options"]
    assert opts[0]["type"] == 2 and opts[0]["options"][0]["name"] == "reset"


async def test_driver_refuses_what_the_client_would(sample_world, sample_bot):
    alice = sample_world.alice
    cases = [
        (("nope",), {}, "no slash command 'nope'"),
        (("dataset wipe",), {}, "no subcommand 'wipe'"),
        (("dataset",), {}, "needs a subcommand"),
        (("dataset stats",), {"dataset": "x", "colour": "red"}, "no option"),
        (("dataset stats",), {}, "requires option 'dataset'"),
        (("dataset stats",), {"dataset": "x", "limit": "5"}, "expects an integer"),
        (("dataset stats",), {"dataset": "x", "limit": 500}, "must be <= 100"),
    ]
    for args, options, message in cases:
        with pytest.raises(CommandError, match=message):
            await alice.slash(*args, **options)
    assert sample_world.server.interactions.records == {}


async def test_autocomplete(sample_world, sample_bot):
    choices = await sample_world.alice.autocomplete("dataset stats", "dataset", "ma")
    assert [c["name"] for c in choices] == ["marv", "margo"]
    record = next(iter(sample_world.server.interactions.records.values()))
    assert record.type == 4 and record.callback_type == 8
    focused = record.data["options"][0]["options"][0]
    assert focused == {"name": "dataset", "type": 3, "value": "ma", "focused": True}
    with pytest.raises(CommandError, match="no autocomplete"):
        await sample_world.alice.autocomplete("dataset stats", "limit", "1", dataset="x")


async def test_defer_then_followup_replaces_thinking_message(sample_world, sample_bot):
    result = await sample_world.alice.slash("slow")
    assert result.response_name == "DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE"
    assert result.message.loading and result.content == ""
    assert result.record.callback == {"type": 5}
    sample_bot.seen.record("release_slow")
    final = await result.wait_original()
    assert final.content == "done" and not final.loading and final.id == result.message.id
    assert result.followups == [final]


async def test_ephemeral_defer_keeps_followup_ephemeral(sample_world, sample_bot):
    result = await sample_world.alice.slash("slow", ephemeral=True)
    assert result.ephemeral and result.message.loading
    sample_bot.seen.record("release_slow")
    final = await result.wait_original()
    assert final.ephemeral and final.content == "done"
    assert sample_world.server.messages_in(sample_world.general) == []


async def test_followups_edits_original_get_and_delete(sample_world, sample_bot):
    result = await sample_world.alice.slash("report")
    original_content, first_id, second_id = await sample_bot.seen.wait("report")
    assert original_content == "report ready" and result.content == "report ready"
    first, second = result.followups
    assert (first.id, second.id) == (first_id, second_id)
    assert first.content == "part 1 (edited)" and not first.ephemeral
    assert second.ephemeral and second.deleted
    assert (await result.next_edit()).id == result.message.id
    routes = [(e.method, e.route) for e in sample_world.server.exchanges if e.route and "/webhooks/" in e.route]
    assert routes == [
        ("POST", "/webhooks/{webhook_id}/{token}"),
        ("POST", "/webhooks/{webhook_id}/{token}"),
        ("PATCH", "/webhooks/{webhook_id}/{token}/messages/{message_id}"),
        ("GET", "/webhooks/{webhook_id}/{token}/messages/{message_id}"),
        ("PATCH", "/webhooks/{webhook_id}/{token}/messages/{message_id}"),
        ("DELETE", "/webhooks/{webhook_id}/{token}/messages/{message_id}"),
    ]
    assert second_id not in sample_bot.seen["message_delete"]  # ephemeral: no gateway event


async def test_modal_from_slash_command(sample_world, sample_bot):
    shown = await sample_world.alice.slash("feedback")
    assert shown.response_name == "MODAL" and shown.modal["title"] == "Feedback"
    submitted = await sample_world.alice.submit_modal(shown, {"Subject": "Great bot", "body": "Really"})
    assert await sample_bot.seen.wait("modal_submit") == ("Great bot", "Really")
    assert submitted.content == "thanks: Great bot" and submitted.ephemeral
    meta = submitted.message.interaction_metadata
    assert meta["triggering_interaction_metadata"]["id"] == str(shown.id)
    with pytest.raises(CommandError, match="required"):
        await sample_world.alice.submit_modal(shown, {"body": "no subject"})
    with pytest.raises(CommandError, match="no input"):
        await sample_world.alice.submit_modal(shown, {"Subject": "x", "colour": "red"})


async def test_buttons_update_and_deferred_update(sample_world, sample_bot):
    alice = sample_world.alice
    prompt = await alice.slash("confirm")
    assert prompt.message.component("Confirm")["custom_id"] == "confirm"
    click = await alice.click(prompt.message, "Confirm")
    assert click.response_name == "UPDATE_MESSAGE"
    assert prompt.message.content == "Confirmed by alice" and prompt.message.components == []
    edit = await sample_bot.seen.wait("raw_message_edit", lambda p: p.message_id == prompt.message.id)
    assert edit.data["content"] == "Confirmed by alice"
    second = await alice.slash("confirm")
    cancel = await alice.click(second.message, "cancel")
    assert cancel.response_name == "DEFERRED_UPDATE_MESSAGE"
    edited = await cancel.next_edit()
    assert edited.id == second.message.id and edited.content == "Cancelled"
    assert cancel.record.payload["message"]["id"] == str(second.message.id)


async def test_select_menu_and_button_opening_modal(sample_world, sample_bot):
    alice = sample_world.alice
    prompt = await alice.slash("confirm")
    picked = await alice.click(prompt.message, "flavour", values=["mint", "Mango"])
    assert picked.content == "picked mint,mango" and picked.ephemeral
    with pytest.raises(CommandError, match="not an option"):
        await alice.click(prompt.message, "flavour", values=["chocolate"])
    with pytest.raises(CommandError, match="takes 1..2 values"):
        await alice.click(prompt.message, "flavour", values=["mint", "mango", "vanilla"])
    modal = await alice.click(prompt.message, "Feedback")
    assert modal.response_name == "MODAL"
    done = await alice.submit_modal(modal, subject="from a button")
    assert done.content == "thanks: from a button"
    meta = done.message.interaction_metadata
    assert meta["interacted_message_id"] == str(prompt.message.id)


async def test_context_menus(sample_world, sample_bot):
    msg = await sample_world.bob.send(sample_world.general, "a great example")
    on_message = await sample_world.alice.context_menu("Add to dataset", msg)
    assert on_message.content == "added bob: a great example"
    assert on_message.record.data["target_id"] == str(msg.id)
    on_user = await sample_world.alice.context_menu("Inspect user", sample_world.bob)
    assert on_user.content == "bob roles=['mods']"
    with pytest.raises(CommandError, match="no message command"):
        await sample_world.alice.context_menu("Inspect user", msg)


async def test_slash_in_dm(sample_world, sample_bot):
    carol = sample_world.server.dm_actor("carol")
    result = await carol.slash("ping")
    assert result.content == "pong"
    payload = result.record.payload
    assert "user" in payload and "member" not in payload and payload["context"] == 1
    interaction = await sample_bot.seen.wait("interaction", lambda i: i.id == result.id)
    assert interaction.guild is None and interaction.user.name == "carol"


async def test_unanswered_interaction_fails_like_the_client(sample_world, sample_bot):
    sample_world.server.interactions.ack_deadline = 0.1
    with pytest.raises(InteractionFailed, match="did not respond"):
        await sample_world.alice.slash("late")
    sample_bot.seen.record("release_late")
    error = await sample_bot.seen.wait("late_error")
    assert error.status == 404 and error.code == 10062


async def test_interaction_payload_fields(sample_world, sample_bot):
    result = await sample_world.bob.slash("ping")
    payload = result.record.payload
    for key in ("id", "type", "token", "version", "application_id", "attachment_size_limit"):
        assert key in payload
    assert payload["member"]["user"]["id"] == str(sample_world.bob.id)
    assert int(payload["member"]["permissions"]) & P.MANAGE_MESSAGES
    interaction = await sample_bot.seen.wait("interaction", lambda i: i.id == result.id)
    assert interaction.permissions.manage_messages and interaction.channel.id == sample_world.general.id


async def test_multipart_callback_and_delete_original(sample_world, sample_bot):
    """The test acts as bot code on a captured interaction (real client calls)."""
    pending = await sample_world.alice.slash("late", wait=False)  # the command itself waits
    interaction = await sample_bot.seen.wait("interaction", lambda i: i.id == pending.id)
    await interaction.response.send_message("attached", file=discord.File(io.BytesIO(b"hello"), "hi.txt"))
    await pending.wait_response()
    assert pending.message.attachments[0].filename == "hi.txt"
    callback = sample_world.server.calls("POST", "/interactions/{interaction_id}/{token}/callback")[-1]
    assert callback.request_content_type == "multipart/form-data" and callback.upload_names == ["hi.txt"]
    original = await interaction.original_response()
    assert await original.attachments[0].read() == b"hello"
    await interaction.delete_original_response()
    assert (await pending.wait_deleted()).id == original.id
    assert await sample_bot.seen.wait("message_delete", lambda mid: mid == original.id)
    assert pending.message.deleted
    sample_bot.seen.record("release_late")  # the command now finds the interaction answered
    assert isinstance(await sample_bot.seen.wait("late_error"), discord.InteractionResponded)

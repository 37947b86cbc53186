"""Discord's limits and interaction rules, enforced on the real client."""

from __future__ import annotations

import discord
import pytest
from discord.http import Route

from tests.standins.discord import InteractionFailed

pytest_plugins = ("tests.standins.discord.fixtures", "tests.standins.discord.samplebot")


async def test_interaction_not_acknowledged_in_time_gets_10062(sample_world, sample_bot):
    sample_world.server.interactions.ack_deadline = 0.1  # Discord: 3 s
    pending = await sample_world.alice.slash("late", wait=False)
    assert pending.record.ack_deadline == 0.1
    with pytest.raises(InteractionFailed):
        await pending.wait_response()  # the user sees "This interaction failed"
    assert pending.record.ack_expired
    sample_bot.seen.record("release_late")
    error = await sample_bot.seen.wait("late_error")
    assert isinstance(error, discord.NotFound) and error.code == 10062
    assert pending.rejections == [(404, 10062)] and not pending.acknowledged


async def test_default_deadline_is_three_seconds(discord_server):
    assert discord_server.interactions.ack_deadline == 3.0
    assert discord_server.interactions.token_ttl == 15 * 60


async def test_second_initial_response_gets_40060(sample_world, sample_bot):
    result = await sample_world.alice.slash("double")
    error = await sample_bot.seen.wait("double_error")
    assert error.status == 400 and error.code == 40060
    assert result.content == "one"
    assert result.rejections == [(400, 40060)]


async def test_content_over_2000_gets_50035_with_field_error(sample_world, sample_bot):
    result = await sample_world.alice.slash("long")
    error = await sample_bot.seen.wait("long_error")
    assert error.code == 50035 and "In content: Must be 2000 or fewer in length." in error.text
    assert result.content == "sorry, that was too long"  # rejected callback did not count as ack
    rejected = [e for e in sample_world.server.exchanges if e.status == 400][0]
    assert rejected.response_json["errors"] == {
        "content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}
    }
    channel = sample_bot.get_channel(sample_world.general.id)
    await channel.send("x" * 2000)
    with pytest.raises(discord.HTTPException) as info:
        await channel.send("x" * 2001)
    assert info.value.code == 50035


def _embed(**kw):
    e = discord.Embed(title=kw.get("title"), description=kw.get("description"))
    for i in range(kw.get("fields", 0)):
        e.add_field(name=f"f{i}", value=kw.get("value", "v"))
    return e


@pytest.mark.parametrize(
    ("embeds", "path"),
    [
        ([_embed(title="t" * 257)], "In embeds.0.title"),
        ([_embed(description="d" * 4097)], "In embeds.0.description"),
        ([_embed(fields=26)], "In embeds.0.fields"),
        ([_embed(fields=1, value="v" * 1025)], "In embeds.0.fields.0.value"),
        ([_embed(description="d" * 4000), _embed(description="d" * 2001)], "Embed size exceeds maximum size of 6000"),
        ([_embed(title="ok")] * 11, "In embeds"),
    ],
)
async def test_embed_limits(sample_world, sample_bot, embeds, path):
    channel = sample_bot.get_channel(sample_world.general.id)
    with pytest.raises(discord.HTTPException) as info:
        if len(embeds) <= 10:
            await channel.send(embeds=embeds)
        else:  # discord.py refuses > 10 embeds itself; send the raw request
            route = Route("POST", "/channels/{channel_id}/messages", channel_id=channel.id)
            await sample_bot.http.request(route, json={"embeds": [e.to_dict() for e in embeds]})
    assert info.value.status == 400 and info.value.code == 50035
    assert path in info.value.text
    await channel.send(embeds=[_embed(title="t" * 256, description="d" * 4096, fields=25)])


async def test_custom_id_and_component_limits(sample_world, sample_bot):
    channel = sample_bot.get_channel(sample_world.general.id)
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="x", custom_id="c" * 101))
    with pytest.raises(discord.HTTPException) as info:
        await channel.send("hi", view=view)
    assert "components.0.components.0.custom_id" in info.value.text


async def test_modal_limits(sample_world, sample_bot):
    result = await sample_world.alice.slash("feedback", oversized=True)
    error = await sample_bot.seen.wait("modal_error")
    assert error.code == 50035 and "max_length" in error.text
    assert result.content == "modal refused" and result.modal is None


async def test_followups_allowed_until_token_expires(sample_world, sample_bot):
    result = await sample_world.alice.slash("ping")
    interaction = await sample_bot.seen.wait("interaction", lambda i: i.id == result.id)
    later = await interaction.followup.send("still fine", wait=True)
    assert later.content == "still fine" and result.followups[-1].id == later.id
    result.record.token_ttl = 0  # 15 minutes pass
    with pytest.raises(discord.HTTPException) as info:
        await interaction.followup.send("too late")
    assert info.value.status == 401 and info.value.code == 50027
    with pytest.raises(discord.HTTPException):
        await interaction.edit_original_response(content="nope")


async def test_followup_before_acknowledgement_is_unknown_webhook(sample_world, sample_bot):
    sample_world.server.interactions.ack_deadline = 0.1
    pending = await sample_world.alice.slash("late", wait=False)
    interaction = await sample_bot.seen.wait("interaction", lambda i: i.id == pending.id)
    with pytest.raises(discord.NotFound) as info:
        await interaction.followup.send("hello?")
    assert info.value.code == 10015
    with pytest.raises(InteractionFailed):
        await pending.wait_response()
    sample_bot.seen.record("release_late")
    await sample_bot.seen.wait("late_error")


async def test_empty_message_is_refused(sample_world, sample_bot):
    with pytest.raises(discord.HTTPException) as info:
        await sample_bot.http.request(
            Route("POST", "/channels/{channel_id}/messages", channel_id=sample_world.general.id), json={}
        )
    assert info.value.code == 50006


async def test_allowed_mentions_parse_and_ids_are_exclusive(sample_world, sample_bot):
    route = Route("POST", "/channels/{channel_id}/messages", channel_id=sample_world.general.id)
    body = {"content": "hi", "allowed_mentions": {"parse": ["users"], "users": [str(sample_world.alice.id)]}}
    with pytest.raises(discord.HTTPException) as info:
        await sample_bot.http.request(route, json=body)
    assert info.value.code == 50035 and "allowed_mentions" in info.value.text


async def test_allowed_mentions_whitelists(sample_world, sample_bot):
    channel = sample_bot.get_channel(sample_world.general.id)
    alice, bob = sample_world.alice, sample_world.bob
    sent = await channel.send(
        f"{alice.mention} {bob.mention}",
        allowed_mentions=discord.AllowedMentions(users=[discord.Object(bob.id)], everyone=False, roles=False),
    )
    assert sample_world.server.world.messages[sent.id].pings.users == {bob.id}
    assert [u.id for u in sent.mentions] == [bob.id]


async def test_invalid_command_registration_is_refused(sample_world, sample_bot):
    with pytest.raises(discord.HTTPException) as info:
        await sample_bot.http.bulk_upsert_global_commands(
            sample_bot.application_id, [{"name": "Bad Name", "description": "x", "type": 1}]
        )
    assert info.value.code == 50035 and "In 0.name" in info.value.text
    assert {c["name"] for c in sample_world.server.commands} >= {"ping"}  # unchanged

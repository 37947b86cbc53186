"""The OpenAPI validator itself, and that recorded traffic is really checked."""

from __future__ import annotations

import pytest

from tests.standins import spec_discord as spec
from tests.standins.discord import DiscordStandIn
from tests.standins.discord.traffic import Exchange, spec_violations

pytest_plugins = ("tests.standins.discord.fixtures", "tests.standins.discord.samplebot")


def test_operation_resolution_prefers_literal_segments():
    op = spec.resolve_operation("PATCH", "/api/v10/webhooks/1/tok/messages/@original")
    assert op.template == "/webhooks/{webhook_id}/{webhook_token}/messages/@original"
    op = spec.resolve_operation("PATCH", "/webhooks/1/tok/messages/22")
    assert op.template == "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
    op = spec.resolve_operation("PUT", "/channels/1/messages/2/reactions/%F0%9F%91%8D/@me")
    assert op.operation_id == "add_my_message_reaction"
    assert spec.resolve_operation("GET", "/no/such/thing") is None
    assert spec.resolve_operation("DELETE", "/users/@me") is None


def test_request_and_response_validation():
    op = spec.resolve_operation("POST", "/channels/1/messages")
    assert spec.validate_request(op, {"content": "hi", "message_reference": {"message_id": 5}}) == []
    assert spec.validate_request(op, {"content": 5})
    assert spec.validate_request(op, {"embeds": [{}] * 11})
    good_error = {"code": 50035, "message": "Invalid Form Body",
                  "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "x"}]}}}  # fmt: skip
    assert spec.validate_response(op, 400, good_error) == []
    assert spec.validate_response(op, 400, {"message": "no code"})
    assert spec.validate_response(op, 200, {"id": "1"})  # a message needs much more
    assert spec.validate_response(op, 429, {"code": 0, "message": "x", "retry_after": 1.0, "global": False}) == []
    delete = spec.resolve_operation("DELETE", "/channels/1/messages/2")
    assert spec.validate_response(delete, 204, None) == []


def test_responses_must_use_string_snowflakes():
    op = spec.resolve_operation("GET", "/users/1")
    server = DiscordStandIn()
    user = server.world.bot_user.payload()
    assert spec.validate_response(op, 200, user) == []
    assert spec.validate_response(op, 200, {**user, "id": 1})


def test_recorded_violations_are_reported():
    bad = Exchange("GET", "/api/v10/users/1", "/users/{user_id}", {}, {}, None, "", [], 200, {"id": "1"})
    unknown = Exchange("GET", "/api/v10/nowhere", None, {}, {}, None, "", [], 404, {"message": "x", "code": 0})
    cdn = Exchange("GET", "/attachments/1/2/a.txt", None, {}, {}, None, "", [], 200, None)
    problems = spec_violations([bad, unknown, cdn])
    assert any("username" in p for p in problems)
    assert any("no spec operation" in p for p in problems)
    assert len([p for p in problems if "/attachments" in p]) == 0


async def test_fixture_fails_the_test_on_violations():
    server = DiscordStandIn()
    server.exchanges.append(
        Exchange("GET", "/api/v10/users/1", "/users/{user_id}", {}, {}, None, "", [], 200, {"id": "1"})
    )
    with pytest.raises(AssertionError, match="OpenAPI violation"):
        server.assert_spec_conformance()


async def test_full_session_traffic_conforms(sample_world, sample_bot):
    """A busy session; the ``discord_server`` fixture re-checks at teardown."""
    w = sample_world
    await w.alice.slash("ping")
    await w.alice.slash("confirm")
    msg = await w.alice.send(w.general, "!upload")
    await w.server.wait_for_message(w.general, after=msg)
    assert w.server.spec_violations() == []
    checked = [e for e in w.server.exchanges if e.api_path]
    assert len(checked) >= 5

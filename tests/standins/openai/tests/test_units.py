"""Unit checks of the OpenAI stand-in's building blocks (no HTTP)."""

from __future__ import annotations

import pytest

from tests.standins.openai import FakeClock, OpenAIStandin, default_epochs, encoding_name_for
from tests.standins.openai.chat import closest_reply, system_tag
from tests.standins.openai.faults import Fault
from tests.standins.openai.tokens import billable_tokens


@pytest.mark.parametrize(
    ("n", "epochs"),
    [(1, 25), (10, 10), (33, 3), (34, 3), (40, 3), (8333, 3), (10_000, 2), (30_000, 1)],
)
def test_default_epochs_match_the_cookbook_table(n: int, epochs: int) -> None:
    assert default_epochs(n) == epochs


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-2025-04-14", "o200k_base"),
        ("o4-mini-2025-04-16", "o200k_base"),
        ("ft:gpt-4.1-mini-2025-04-14:org::abc", "o200k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("ft:gpt-3.5-turbo-0125:org:x:abc", "cl100k_base"),
    ],
)
def test_encoding_per_model(model: str, encoding: str) -> None:
    assert encoding_name_for(model) == encoding


def test_billable_tokens_cap_each_example() -> None:
    assert billable_tokens([10, 20, 5000], cap=100, n_epochs=3) == 3 * (10 + 20 + 100)


def test_clock_only_moves_forward_when_told() -> None:
    seen: list[float] = []
    clock = FakeClock(1000)
    clock.on_advance(seen.append)
    assert clock.advance(2.5) == 1002.5 and clock.timestamp() == 1002
    clock.advance_to(900)  # the past: no change
    assert clock.now == 1002.5 and seen == [1002.5, 1002.5]
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_fault_route_patterns() -> None:
    fault = Fault("GET /v1/fine_tuning/jobs/{id}", "status")
    assert fault.matches("GET", "/v1/fine_tuning/jobs/ftjob-1")
    assert not fault.matches("POST", "/v1/fine_tuning/jobs/ftjob-1")
    assert not fault.matches("GET", "/v1/fine_tuning/jobs")
    assert Fault("/v1/models*", "drop").matches("DELETE", "/v1/models/ft:x")


def test_closest_reply_and_system_tag() -> None:
    pairs = [("tell me about cats", "cats purr"), ("tell me about dogs", "dogs bark")]
    assert closest_reply(pairs, "what about DOGS?") == "dogs bark"
    assert closest_reply(pairs, "unrelated") == "cats purr"  # tie -> earliest
    assert closest_reply([], "x") is None
    assert (
        system_tag(None) == "none"
        and len(system_tag("x")) == 8
        and system_tag("x") != system_tag("y")
    )


def test_ids_are_reproducible_across_servers() -> None:
    a, b = OpenAIStandin(), OpenAIStandin()
    assert a.upload("x.jsonl", b"{}") == b.upload("x.jsonl", b"{}")
    assert (
        a.ids.new("ftjob-").startswith("ftjob-") and len(a.ids.new("ftjob-")) == len("ftjob-") + 24
    )


def test_accepted_body_parameters_match_the_spec() -> None:
    from tests.standins.openai.params import SPEC_SCHEMAS
    from tests.standins.spec_openai import load_spec

    schemas = load_spec()["components"]["schemas"]

    def properties(name: str) -> set[str]:
        schema = schemas[name]
        out = set(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            ref = part.get("$ref")
            out |= properties(ref.rsplit("/", 1)[-1]) if ref else set(part.get("properties", {}))
        return out

    for name, accepted in SPEC_SCHEMAS.items():
        assert accepted == properties(name), name

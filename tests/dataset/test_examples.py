import json

from hypothesis import given
from hypothesis import strategies as st

from bot.dataset.examples import ChatExample
from bot.dataset.policy import SystemPromptPolicy, apply_policy

text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())


def test_from_messages_list_of_dicts_as_in_the_founding_guide():
    messages = [
        {"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."},
        {"role": "user", "content": "What's the capital of France?"},
        {"role": "assistant", "content": "Paris, as if everyone doesn't know that already."},
    ]
    example = ChatExample.from_messages(messages)
    assert example.to_obj() == {"messages": messages}
    assert example.system_prompt() == messages[0]["content"]


def test_from_pairs_builds_multi_turn_with_system_prompt():
    example = ChatExample.from_pairs([("hi", "hello"), ("and?", "that's all")], system="S")
    assert [m["role"] for m in example.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert example.messages[-1]["content"] == "that's all"


def test_from_json_keeps_tools_and_weight():
    line = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": "y", "weight": 0},
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "parallel_tool_calls": False,
        }
    )
    example = ChatExample.from_json(line)
    assert example.messages[1]["weight"] == 0
    assert json.loads(example.to_json()) == json.loads(line)


def test_content_hash_ignores_key_order_but_not_content():
    a = ChatExample.from_messages([{"role": "user", "content": "a"}, {"content": "b", "role": "assistant"}])
    b = ChatExample.from_messages([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    c = ChatExample.from_messages([{"role": "user", "content": "a"}, {"role": "assistant", "content": "c"}])
    assert a.content_hash() == b.content_hash() != c.content_hash()


@given(st.lists(st.tuples(text, text), min_size=1, max_size=4), st.none() | text)
def test_json_round_trip(pairs, system):
    example = ChatExample.from_pairs(pairs, system=system)
    again = ChatExample.from_json(example.to_json())
    assert again == example
    assert again.to_json() == example.to_json()
    assert "\n" not in example.to_json()


def test_policy_include_replaces_per_example_prompt():
    example = ChatExample.from_pairs([("q", "a")], system="old")
    out = apply_policy(example, SystemPromptPolicy.INCLUDE, "new")
    assert out.messages[0] == {"role": "system", "content": "new"}
    assert sum(m["role"] == "system" for m in out.messages) == 1


def test_policy_omit_and_as_written():
    example = ChatExample.from_pairs([("q", "a")], system="old")
    assert [m["role"] for m in apply_policy(example, "omit", "new").messages] == ["user", "assistant"]
    assert apply_policy(example, "as_written", "new") == example


def test_include_policy_without_prompt_is_refused():
    example = ChatExample.from_pairs([("q", "a")])
    try:
        apply_policy(example, "include", "  ")
    except ValueError as exc:
        assert "system prompt" in str(exc)
    else:
        raise AssertionError("include with an empty prompt must fail")

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.dataset.validation import parse_line, validate_example

SYS = {"role": "system", "content": "s"}
USER = {"role": "user", "content": "q"}
ASSIST = {"role": "assistant", "content": "a"}


def codes(obj, **where):
    return [p.code for p in validate_example(obj, **where) if p.is_error]


@pytest.mark.parametrize(
    "obj, code",
    [
        ([1, 2], "data_type"),
        ({}, "missing_messages_list"),
        ({"messages": []}, "missing_messages_list"),
        ({"messages": "hi"}, "missing_messages_list"),
        ({"messages": [{"content": "x"}, ASSIST]}, "message_missing_key"),
        ({"messages": [{"role": "user"}, ASSIST]}, "message_missing_key"),
        ({"messages": [{**USER, "extra": 1}, ASSIST]}, "message_unrecognized_key"),
        ({"messages": [{"role": "robot", "content": "x"}, ASSIST]}, "unrecognized_role"),
        ({"messages": [{"role": "user", "content": 5}, ASSIST]}, "missing_content"),
        ({"messages": [{"role": "user", "content": None}, ASSIST]}, "missing_content"),
        ({"messages": [SYS, USER]}, "example_missing_assistant_message"),
        ({"messages": [{"role": "user", "content": "  \n"}, ASSIST]}, "empty_content"),
        ({"messages": [USER, {**ASSIST, "weight": 2}]}, "invalid_weight"),
        ({"messages": [USER, {**ASSIST, "weight": True}]}, "invalid_weight"),
        ({"messages": [USER, {**USER, "weight": 1}, ASSIST]}, "message_unrecognized_key"),
        ({"messages": [USER, ASSIST], "extra": 1}, "example_unrecognized_key"),
        ({"messages": [USER, {"role": "assistant", "tool_calls": "x"}]}, "invalid_tool_call"),
        (
            {"messages": [USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
             "function": {"name": "f", "arguments": "{not json"}}]}]},
            "invalid_tool_call",
        ),
        ({"messages": [USER, {"role": "tool", "tool_call_id": "nope", "content": "1"}, ASSIST]}, "invalid_tool_call"),
        ({"messages": [USER, ASSIST], "tools": [{"type": "function"}]}, "invalid_tools"),
        ({"messages": [{"role": "user", "content": "q", "name": ""}, ASSIST]}, "invalid_name"),
    ],
)
def test_each_error_has_its_code_and_location(obj, code):
    found = validate_example(obj, line=7)
    assert code in [p.code for p in found]
    assert all(p.line == 7 and p.message.startswith("line 7:") for p in found)


def test_example_id_is_named_when_there_is_no_line():
    (found,) = validate_example({"messages": [USER]}, example_id=42)
    assert found.example_id == 42 and found.message.startswith("example 42:")


def test_valid_tool_calling_example_passes():
    obj = {
        "messages": [
            USER,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"c\": 1}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "21.0"},
            ASSIST,
        ],
        "tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}],
        "parallel_tool_calls": False,
    }
    assert validate_example(obj, line=1) == []


def test_weight_zero_everywhere_is_a_warning_not_an_error():
    found = validate_example({"messages": [USER, {**ASSIST, "weight": 0}]}, line=1)
    assert [(p.code, p.severity) for p in found] == [("no_trained_assistant_message", "warning")]


def test_invalid_json_names_the_line():
    obj, found = parse_line('{"messages": [', 12)
    assert obj is None and found[0].code == "invalid_json" and found[0].line == 12


message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user"]), "content": st.text(min_size=1).filter(str.strip)}
)


@given(st.lists(message, max_size=4), st.text(min_size=1).filter(str.strip))
def test_well_formed_examples_validate_clean(prefix, answer):
    obj = {"messages": [*prefix, {"role": "assistant", "content": answer}]}
    assert validate_example(json.loads(json.dumps(obj)), line=1) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@given(json_values | st.fixed_dictionaries({"messages": st.lists(json_values, max_size=3)}))
def test_arbitrary_json_never_crashes_and_errors_carry_codes(obj):
    for found in validate_example(obj, line=3):
        assert found.code and found.line == 3


@given(st.text(max_size=50))
def test_parse_line_never_raises(text):
    obj, found = parse_line(text, 1)
    assert (obj is None) == bool(found) or text.strip() in ("null",)


def test_orjson_refusals_fall_back_to_json_which_keeps_big_integers():
    obj, found = parse_line('{"n": 123456789012345678901234567890, "s": "\\ud83d\\ude00"}', 1)
    assert found == []
    assert obj["n"] == 123456789012345678901234567890 and obj["s"] == "\U0001f600"
    _, found = parse_line('{"messages": [}', 4)
    assert [(p.code, p.line) for p in found] == [("invalid_json", 4)]
    assert found[0].message.startswith("line 4: not valid JSON (")


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ('{"x": NaN}', "invalid_json", "NaN is not a JSON number"),
        ('{"x": -Infinity}', "invalid_json", "-Infinity is not a JSON number"),
        ('{"x": 1e400}', "invalid_json", "too large"),
        ('{"s": "\\ud800"}', "invalid_encoding", "lone surrogate"),
    ],
)
def test_what_json_accepts_but_json_forbids_is_refused(text, code, words):
    obj, found = parse_line(text, 2)
    assert obj is None
    assert [(p.code, p.line) for p in found] == [(code, 2)] and words in found[0].message


plain_role = st.sampled_from(["system", "user", "assistant", "tool", "function", "narrator", 7])
plain_content = st.sampled_from(["", " ", "\n", None, 3, ["x"]]) | st.text(max_size=12)
plain_message = (
    st.fixed_dictionaries({"role": plain_role, "content": plain_content})
    | st.fixed_dictionaries({"content": plain_content, "role": plain_role})
    | st.fixed_dictionaries({"role": plain_role, "content": plain_content, "name": st.just("ann")})
    | st.fixed_dictionaries({"role": plain_role})
    | st.just("not a message")
)


@given(
    st.fixed_dictionaries({"messages": st.lists(plain_message, max_size=4)})
    | st.fixed_dictionaries({"messages": st.lists(plain_message, max_size=3), "tools": st.just([])})
)
def test_the_checkers_fast_path_agrees_with_full_validation_and_counting(obj):
    """``checker._plain`` takes only examples that pass every check, and counts, finds the
    system prompt and fingerprints them exactly as the full path does."""
    from bot.dataset.checker import _plain, _plain_fingerprint, _system_prompt, fingerprint
    from bot.dataset.tokens import get_counter

    counter = get_counter("o200k_base")
    costs = counter.message_costs(("system", "user", "assistant"))
    fast = _plain(obj, costs, counter.count_text)
    problems = validate_example(obj)
    plain_shape = len(obj) == 1 and all(
        isinstance(m, dict) and set(m) == {"role", "content"} for m in obj["messages"]
    )
    if fast is None:
        assert problems or not plain_shape or any(m["role"] in ("tool", "function") for m in obj["messages"])
        return
    tokens, system = fast
    assert problems == [] and plain_shape
    assert tokens == counter.count_obj(obj).tokens
    assert system == _system_prompt(obj["messages"])
    assert fingerprint(obj) == _plain_fingerprint(obj["messages"])

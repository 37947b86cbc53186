"""Hostile lines, one at a time: ``tunecord check`` and the JSONL import never crash on
them, refuse the same lines with the same code and message, and name each by its line.

Each case is a line someone really sent (issue 11); the file around it holds ten valid
examples, so the line decides whether the file is trainable.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from bot.dataset.checker import check_file
from bot.dataset.examples import ChatExample
from bot.dataset.lines import MAX_LINE_BYTES, check_line
from bot.dataset.validation import MAX_DEPTH, MAX_PROBLEMS_PER_EXAMPLE, MAX_QUOTED
from bot.services.imports import export_jsonl, import_jsonl
from storage.records import ExampleStatus
from tests.dataset.hostile import ASSISTANT, GOOD, O200K, PRICE, USER, compare, jsonl, write
from tests.storage.helpers import GUILD_A


def _line(**extra: object) -> str:
    return json.dumps({"messages": [USER, ASSISTANT], **extra})


def _nested(depth: int, inner: str = "1") -> str:
    """JSON text of ``depth`` nested lists around ``inner``."""
    return "[" * depth + inner + "]" * depth


def _tool_line(arguments: str) -> str:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    return json.dumps({"messages": [
        USER, {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"}, ASSISTANT,
    ]})


def _schema_line(depth: int) -> str:
    """A valid tool example whose tool's parameters put the line's deepest value at
    ``depth`` levels (the line's object, ``tools``, the tool, ``function`` and
    ``parameters`` are the first five)."""
    head = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], '
    tools = '"tools": [{"type": "function", "function": {"name": "f", "parameters": {"x": %s}}}]}'
    return head + tools % _nested(depth - 5)


HUGE_NUMBER = "9" * 5000

CASES: dict[str, tuple[str | bytes, list[str]]] = {
    # a role that is not a string
    "role_is_a_list": (json.dumps({"messages": [{"role": ["user"], "content": "x"}, ASSISTANT]}), ["unrecognized_role"]),
    "role_is_an_object": (json.dumps({"messages": [{"role": {"a": 1}, "content": "x"}, ASSISTANT]}), ["unrecognized_role"]),
    "role_is_null": (json.dumps({"messages": [{"role": None, "content": "x"}, ASSISTANT]}), ["message_missing_key"]),
    # legacy functions that are not objects (import used to rewrite [["k","v"]])
    "functions_of_numbers": (_line(functions=[1, 2]), ["invalid_tools", "invalid_tools"]),
    "functions_of_pairs": (_line(functions=[["k", "v"]]), ["invalid_tools"]),
    # numbers JSON does not have
    "nan": ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": NaN}]}', ["invalid_json"]),
    "infinity": (_line(tools=[]).replace("[]", "[Infinity]"), ["invalid_json"]),
    "minus_infinity": (_line(tools=[]).replace("[]", "[-Infinity]"), ["invalid_json"]),
    "float_overflow": (_line(tools=[]).replace("[]", "[1e400]"), ["invalid_json"]),
    "five_thousand_digits": (_line(tools=[]).replace("[]", f"[{HUGE_NUMBER}]"), ["invalid_json"]),
    # text that is not Unicode
    "lone_surrogate_in_content": (json.dumps({"messages": [USER, {"role": "assistant", "content": "\ud800"}]}), ["invalid_encoding"]),
    "lone_surrogate_in_a_key": ('{"messages": [{"role": "user", "content": "x", "\\udfff": 1}, {"role": "assistant", "content": "y"}]}', ["invalid_encoding"]),
    "lone_surrogate_with_tool_calls": (_tool_line("{}").replace('"done"', '"\\ud800"'), ["invalid_encoding"]),
    "not_utf8": (b'{"messages": [{"role": "user", "content": "\xff"}]}', ["invalid_encoding"]),
    "nul_then_text": ("\x00not-utf8", ["invalid_json"]),
    # blank-looking lines that are not JSON whitespace
    "file_separator": ("\x1c", ["invalid_json"]),
    "nbsp": ("\u00a0", ["invalid_json"]),
    "form_feed": ("\x0c", ["invalid_json"]),
    "vertical_tab": ("\x0b", ["invalid_json"]),
    "line_separator": ("\u2028", ["invalid_json"]),
    # JSON that is not an example
    "null": ("null", ["data_type"]),
    "a_number": ("42", ["data_type"]),
    "a_list": ("[]", ["data_type"]),
    # weights spelled as JSON spells them
    "weight_true": (json.dumps({"messages": [USER, {**ASSISTANT, "weight": True}]}), ["invalid_weight"]),
    "weight_null": (json.dumps({"messages": [USER, {**ASSISTANT, "weight": None}]}), ["invalid_weight"]),
    "weight_half": (json.dumps({"messages": [USER, {**ASSISTANT, "weight": 0.5}]}), ["invalid_weight"]),
    # nesting
    "arguments_2000_deep": (_tool_line(_nested(2000)), ["invalid_tool_call"]),
    "arguments_101_deep": (_tool_line(_nested(MAX_DEPTH + 1)), ["invalid_tool_call"]),
    "arguments_100_deep": (_tool_line(_nested(MAX_DEPTH)), []),
    "value_1000_deep": (_schema_line(1000), ["nested_too_deep"]),
    "value_101_deep": (_schema_line(MAX_DEPTH + 1), ["nested_too_deep"]),
    "value_100_deep": (_schema_line(MAX_DEPTH), []),
    "line_5000_deep": (_nested(5000), ["nested_too_deep"]),
    "content_1000_deep": (
        '{"messages": [{"role": "user", "content": ' + _nested(1000) + '}, {"role": "assistant", "content": "y"}]}',
        ["nested_too_deep"],
    ),
    # size
    "too_long": (json.dumps({"messages": [USER, {"role": "assistant", "content": "x" * MAX_LINE_BYTES}]}), ["line_too_long"]),
    "valid_30_digit_integer": (
        _line(tools=[{"type": "function", "function": {"name": "f", "n": 0}}]).replace('"n": 0', '"n": ' + "1" * 30),
        [],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_check_and_import_give_the_same_verdict(name, store, tmp_path):
    line, codes = CASES[name]
    compared = await compare(store, write(tmp_path, jsonl([line, *GOOD])))
    assert compared.codes(1) == codes
    assert compared.check.trainable == (not codes)
    assert compared.imported.imported == (11 if not codes else 10)


def test_messages_spell_values_as_json_does_and_never_mention_python(tmp_path):
    def message(name):
        report = check_file(write(tmp_path, jsonl([CASES[name][0], *GOOD])), PRICE, workers=1)
        return report.errors[0].message

    assert message("weight_true").endswith("has weight true; it must be 0 or 1")
    assert message("weight_null").endswith("has weight null; it must be 0 or 1")
    assert 'unrecognised role ["user"]' in message("role_is_a_list")
    assert 'unrecognised role {"a": 1}' in message("role_is_an_object")
    assert message("nan") == "line 1: not valid JSON (NaN is not a JSON number)"
    assert message("infinity") == "line 1: not valid JSON (Infinity is not a JSON number)"
    assert "too large for a JSON number" in message("float_overflow")
    big = message("five_thousand_digits")
    assert "more than 4,300 digits" in big and "sys." not in big and "set_int_max_str_digits" not in big
    assert message("nul_then_text").startswith("line 1: not valid JSON")
    assert message("value_1000_deep") == f"line 1: values are nested more than {MAX_DEPTH} levels deep"
    assert message("arguments_2000_deep").endswith(f"'arguments' is nested more than {MAX_DEPTH} levels deep")


async def test_lines_of_json_whitespace_are_skipped_by_both(store, tmp_path):
    data = jsonl(["", " ", "\t", " \t \r", *GOOD], newline=b"\r\n")
    compared = await compare(store, write(tmp_path, data))
    assert compared.check.examples == 10 and compared.imported.lines == 10
    assert compared.check_lines == {} and compared.check.trainable


async def test_a_30_digit_integer_survives_import_and_export_exactly(store, tmp_path):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    line = json.dumps({"messages": [USER, ASSISTANT], "tools": [tool]}).replace(
        '"object"}', '"object", "maximum": 123456789012345678901234567890}'
    )
    dataset = await store.datasets.create(GUILD_A, "big", policy="as_written")
    report = await import_jsonl(
        store.db, GUILD_A, dataset.id, io.BytesIO(jsonl([line])), counting=O200K,
        status=ExampleStatus.APPROVED,
    )
    assert report.imported == 1 and report.errors == []
    out = io.BytesIO()
    await export_jsonl(store.db, GUILD_A, dataset.id, out)
    exported = out.getvalue().decode("utf-8")
    assert "123456789012345678901234567890" in exported and "e+" not in exported
    assert json.loads(exported)["tools"][0]["function"]["parameters"]["maximum"] == 123456789012345678901234567890


async def test_the_deepest_allowed_example_is_counted_fingerprinted_and_exported(store, tmp_path):
    """100 levels: accepted, counted, found twice as a duplicate, exported and read back."""
    line = CASES["value_100_deep"][0]
    compared = await compare(store, write(tmp_path, jsonl([line, *GOOD, line])))
    assert compared.check.billed_tokens > 0 and compared.check.estimated_tokens
    assert [d.line for d in compared.imported.duplicates] == [12]
    dataset = await store.datasets.create(GUILD_A, "deep", policy="as_written")
    await import_jsonl(store.db, GUILD_A, dataset.id, io.BytesIO(jsonl([line])), counting=O200K,
                       status=ExampleStatus.APPROVED)
    out = io.BytesIO()
    await export_jsonl(store.db, GUILD_A, dataset.id, out)
    assert ChatExample.from_json(out.getvalue().decode()) == ChatExample.from_json(line)


async def test_lines_the_import_stores_as_one_example_are_duplicates_for_the_check_too(store, tmp_path):
    """Key order and an explicit null ``tools`` do not make a different example."""
    first = json.dumps({"messages": [USER, ASSISTANT]})
    reordered = json.dumps({"messages": [{"content": "hi", "role": "user"}, {"content": "hello", "role": "assistant"}]})
    null_tools = json.dumps({"messages": [USER, ASSISTANT], "tools": None})
    with_name = json.dumps({"messages": [{**USER, "name": "ann"}, ASSISTANT]})
    with_name_later = json.dumps({"messages": [{"name": "ann", "content": "hi", "role": "user"}, ASSISTANT]})
    number_one = json.dumps({"messages": [USER, ASSISTANT], "tools": [{"type": "function", "function": {"name": "f", "n": 1}}]})
    number_true = number_one.replace('"n": 1', '"n": true')
    lines = [first, reordered, null_tools, with_name, with_name_later, number_one, number_true, *GOOD]
    compared = await compare(store, write(tmp_path, jsonl(lines)))
    assert {p.line for p in compared.check.errors if p.code == "duplicate_example"} == {2, 3, 5}


def test_a_line_with_a_huge_key_or_thousands_of_keys_gives_a_short_bounded_report():
    huge_key = json.dumps({"messages": [USER, ASSISTANT], "k" * 500_000: 1})
    checked = check_line(1, huge_key)
    assert checked is not None and not checked.ok
    assert all(len(p.message) < 200 for p in checked.problems)
    many_keys = json.dumps({"messages": [{**USER, **{f"k{i}": i for i in range(5000)}}, ASSISTANT]})
    checked = check_line(1, many_keys)
    assert checked is not None and len(checked.problems) == MAX_PROBLEMS_PER_EXAMPLE
    call_id = "c" * 100_000
    line = json.dumps({"messages": [USER, {"role": "tool", "tool_call_id": call_id, "content": "x"}, ASSISTANT]})
    checked = check_line(1, line)
    assert checked is not None and len(checked.problems[0].message) < MAX_QUOTED + 60


def test_a_lone_surrogate_with_tool_calls_is_a_bad_line_not_a_bad_price_file(tmp_path):
    path = write(tmp_path, jsonl([CASES["lone_surrogate_with_tool_calls"][0], *GOOD]))
    proc = subprocess.run(
        [sys.executable, "-m", "bot.dataset.cli", "check", str(path), "--model", "gpt-4o-mini"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "[invalid_encoding] line 1: contains a lone surrogate escape" in proc.stdout
    assert proc.stderr == ""


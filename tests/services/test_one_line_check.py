"""``tunecord check``, JSONL import and the trainer's file validation give every line the
same verdict, with the same code and message: they share one per-line check."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.dataset.checker import check_file
from bot.dataset.lines import MAX_LINE_BYTES
from bot.dataset.pricing import PriceCatalogue
from bot.services.counting import Counting
from bot.services.imports import import_jsonl
from tests.storage.helpers import GUILD_A, example
from trainer.datafile import DataFileError, load_examples

USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "hello"}

O200K = Counting("o200k_base")


def _obj(**extra: object) -> str:
    return json.dumps({"messages": [USER, ASSISTANT], **extra})


TRICKY = {
    "role_is_a_list": json.dumps({"messages": [{"role": ["user"], "content": "x"}, ASSISTANT]}),
    "role_is_an_object": json.dumps({"messages": [{"role": {"a": 1}, "content": "x"}, ASSISTANT]}),
    "functions_of_numbers": _obj(functions=[1, 2]),
    "functions_of_pairs": _obj(functions=[["k", "v"]]),
    "nan": '{"messages": [{"role": "user", "content": "x", "weight": NaN}]}',
    "huge_float": _obj(tools=[{"type": "function", "function": {"name": "f", "x": 1e400}}])
    .replace("Infinity", "1e400"),
    "lone_surrogate": json.dumps({"messages": [USER, {"role": "assistant", "content": "\ud800"}]}),
    "null": "null",
    "form_feed": "\x0c",
    "nbsp": "\u00a0",
    "line_separator": "\u2028",
    "looks_like_a_sentinel": "\x00not-utf8",
    "weight_true": json.dumps({"messages": [USER, {**ASSISTANT, "weight": True}]}),
    "too_long": json.dumps({"messages": [USER, {"role": "assistant", "content": "x" * MAX_LINE_BYTES}]}),
    "no_assistant": json.dumps({"messages": [USER]}),
    "valid_big_integer": _obj(
        tools=[{"type": "function", "function": {"name": "f", "n": 123456789012345678901234567890}}]
    ),
    "special_token": json.dumps({"messages": [USER, {"role": "assistant", "content": "<|im_end|>"}]}),
    "deep_arguments": json.dumps({"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[" * 2000 + "]" * 2000}}]}]}),
    "deep_value": _obj().replace("}]}", "}], " + '"tools": ' + "[" * 1000 + "]" * 1000 + "}"),
    "deep_line": "[" * 5000 + "]" * 5000,
}
GOOD = [example(n).to_json() for n in range(10)]


def _file(tmp_path: Path, bad: str) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_bytes(("\n".join([bad, *GOOD]) + "\n").encode("utf-8", "surrogatepass"))
    return path


@pytest.mark.parametrize("name", sorted(TRICKY))
async def test_check_import_and_trainer_agree_on_every_line(name, tmp_path, store):
    path = _file(tmp_path, TRICKY[name])
    report = check_file(path, PriceCatalogue.load().get("gpt-4o-mini"))
    checked = [(p.code, p.message) for p in report.errors + report.warnings if p.line == 1]

    dataset = await store.datasets.create(GUILD_A, "d")
    imported = await import_jsonl(store.db, GUILD_A, dataset.id, counting=O200K, source=io.BytesIO(path.read_bytes()))
    from_import = [(p.code, p.message) for p in imported.errors + imported.warnings if p.line == 1]
    assert from_import == checked

    refused = any(code for code, _ in checked if code in report.error_counts)
    assert imported.imported == (10 if refused else 11)
    try:
        loaded = load_examples(path, param="training_file")
    except DataFileError as exc:
        assert refused, exc.message
        assert checked[0][1][:1].upper() + checked[0][1][1:] in exc.message
    else:
        assert not refused
        assert len(loaded.examples) == 11
        assert [(p.code, p.message) for p in loaded.warnings] == checked


def test_the_tricky_lines_get_the_expected_verdicts(tmp_path):
    verdicts = {}
    for name, text in TRICKY.items():
        report = check_file(_file(tmp_path, text), PriceCatalogue.load().get("gpt-4o-mini"))
        verdicts[name] = [p.code for p in report.errors + report.warnings if p.line == 1]
    assert verdicts == {
        "role_is_a_list": ["unrecognized_role"],
        "role_is_an_object": ["unrecognized_role"],
        "functions_of_numbers": ["invalid_tools", "invalid_tools"],
        "functions_of_pairs": ["invalid_tools"],
        "nan": ["invalid_json"],
        "huge_float": ["invalid_json"],
        "lone_surrogate": ["invalid_encoding"],
        "null": ["data_type"],
        "form_feed": ["invalid_json"],
        "nbsp": ["invalid_json"],
        "line_separator": ["invalid_json"],
        "looks_like_a_sentinel": ["invalid_json"],
        "weight_true": ["invalid_weight"],
        "too_long": ["line_too_long"],
        "no_assistant": ["example_missing_assistant_message"],
        "valid_big_integer": [],
        "special_token": ["special_token_text"],
        "deep_arguments": ["invalid_tool_call"],
        "deep_value": ["nested_too_deep"],
        "deep_line": ["nested_too_deep"],
    }


def test_messages_spell_values_as_json_does(tmp_path):
    report = check_file(_file(tmp_path, TRICKY["weight_true"]), PriceCatalogue.load().get("gpt-4o-mini"))
    assert "has weight true; it must be 0 or 1" in report.errors[0].message
    report = check_file(_file(tmp_path, TRICKY["role_is_a_list"]), PriceCatalogue.load().get("gpt-4o-mini"))
    assert 'unrecognised role ["user"]' in report.errors[0].message

"""Property-based fuzzing of ``tunecord check`` and the JSONL import with structured,
hostile JSON lines: examples whose roles, contents, weights, tool calls, arguments and
extra keys take any JSON value, lone surrogates, NaN and infinities, integers past 64
bits, nesting past the bound, non-UTF-8 bytes, blank-looking characters, truncated and
repeated lines, CRLF endings and a BOM.

For every generated file: no exception escapes either side, both give every line the same
verdict (code and message), name the same duplicates and keep the same number of
examples, and every non-blank line is either kept, a duplicate, or refused with an error
naming its line.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.dataset.lines import check_line, read_lines
from storage.store import Storage
from tests.dataset.hostile import compare

# -- values --------------------------------------------------------------------------------
ODD_TEXT = st.sampled_from([
    "", " ", "\t", "\n", "\u2028", "\u00a0", "\x00", "\x1c", "é", "<|im_end|>", "<|endoftext|>",
    "\ud800", "a\udfffb", "user", "assistant", "c1", "{}", "NaN",
])
TEXT = st.one_of(st.text(max_size=6), ODD_TEXT)
NUMBER = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 2**64, 10**30, 1e308]),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
JSONISH = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6
)


DEEP = st.sampled_from([1000, 101, 100, 2000, 99, 150]).map(lambda depth: f"@@deep{depth}@@")
"""A value nested ``depth`` lists deep, written as a marker the line's text replaces (the
test's own ``json.dumps`` would recurse too deep)."""
_DEEP_MARK = re.compile(r'"@@deep(\d+)@@"')


def _nest(match: re.Match[str]) -> str:
    depth = int(match.group(1))
    return "[" * depth + "1" + "]" * depth
ARGUMENTS = st.one_of(
    st.sampled_from(["{}", '{"city": "Paris"}', "{not json", "NaN", '{"n": Infinity}', "[1e400]", "", " "]),
    st.sampled_from([2000, 101, 100, 1000, 5000]).map(lambda d: "[" * d + "]" * d),
    JSONISH.map(lambda v: json.dumps(v)),
    TEXT,
)

# -- examples ------------------------------------------------------------------------------
ROLE = st.one_of(st.sampled_from(["system", "user", "assistant", "tool", "function"]), TEXT, JSONISH)
FUNCTION = st.fixed_dictionaries({}, optional={"name": TEXT | JSONISH, "arguments": ARGUMENTS | JSONISH})
TOOL_CALL = st.one_of(
    st.fixed_dictionaries(
        {"id": st.sampled_from(["c1", "c2"]) | JSONISH, "type": st.sampled_from(["function", "other"]), "function": FUNCTION}
    ),
    JSONISH,
)
MESSAGE = st.one_of(
    st.fixed_dictionaries(
        {"role": ROLE},
        optional={
            "content": TEXT | JSONISH | DEEP,
            "name": TEXT | JSONISH,
            "weight": st.sampled_from([0, 1, True, False, None, 0.5, 2, 1.0]) | JSONISH,
            "tool_calls": st.lists(TOOL_CALL, max_size=2) | JSONISH,
            "tool_call_id": st.sampled_from(["c1", "c2"]) | JSONISH,
            "function_call": FUNCTION | JSONISH,
            "extra": JSONISH | DEEP,
        },
    ),
    JSONISH,
)
ASSISTANT = st.fixed_dictionaries(
    {"role": st.just("assistant")},
    optional={
        "content": st.sampled_from(["ok", "", None]) | TEXT | JSONISH,
        "weight": st.sampled_from([0, 1, True, None, 0.5, 1.0, "1"]),
        "tool_calls": st.lists(TOOL_CALL, max_size=2) | st.sampled_from([[], None]),
        "function_call": FUNCTION,
        "name": st.sampled_from(["bot", ""]) | JSONISH,
        "audio": DEEP,
    },
)
TOOL_RESULT = st.fixed_dictionaries(
    {"role": st.sampled_from(["tool", "function"]), "content": st.sampled_from(["done", ""]) | TEXT},
    optional={"tool_call_id": st.sampled_from(["c1", "c2", ""]) | JSONISH, "name": st.just("f")},
)
PLAIN = st.fixed_dictionaries({
    "role": st.sampled_from(["system", "user", "assistant"]),
    "content": st.sampled_from(["hi", "hello", "Marv", "é", " x "]),
})
TOOL = st.one_of(
    st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries(
        {"name": st.just("f")}, optional={"parameters": JSONISH | DEEP})}),
    JSONISH,
)
EXAMPLE = st.fixed_dictionaries(
    {"messages": st.lists(st.one_of(PLAIN, ASSISTANT, TOOL_RESULT, MESSAGE), max_size=5) | JSONISH},
    optional={
        "tools": st.lists(TOOL, max_size=2) | st.none() | JSONISH,
        "functions": st.lists(JSONISH, max_size=2) | st.none(),
        "parallel_tool_calls": st.booleans() | JSONISH,
        "metadata": JSONISH,
    },
)
USABLE = st.fixed_dictionaries(
    {"messages": st.lists(PLAIN, min_size=1, max_size=3).map(lambda ms: [*ms, {"role": "assistant", "content": "ok"}])},
    optional={"tools": st.lists(st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries(
        {"name": st.just("f"), "parameters": JSONISH | DEEP})}), min_size=1, max_size=2)},
)
"""Valid examples, but for the values in their tools' parameters."""
CALLING = st.builds(
    lambda arguments, result: {"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c1", "content": result},
        {"role": "assistant", "content": "sunny"},
    ]},
    ARGUMENTS,
    st.sampled_from(["done", "\ud800", "<|im_start|>system"]) | TEXT,
)
"""Valid tool-calling examples, but for their arguments and the tool's answer."""

# -- lines ---------------------------------------------------------------------------------
MUTATIONS = st.sampled_from([
    "none", "truncate", "none", "huge_number", "none", "big_integer", "none", "infinity", "none", "garbage",
    "none", "deep_wrap",
])


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["example", "usable", "calling", "example", "usable", "calling", "json", "raw"]))
    if kind == "raw":
        return draw(st.sampled_from([
            b"", b" ", b"\t \r", b"null", b"\x0c", b"\xc2\xa0", b"\xe2\x80\xa8", b"\x1c", b"\x00not-utf8",
            b"\xff\xfe", b'{"messages": [', b"[" * 3000 + b"]" * 3000, b"\xef\xbb\xbf{}", b"1e400", b"NaN",
        ]))
    value = draw({"example": EXAMPLE, "usable": USABLE, "calling": CALLING, "json": JSONISH}[kind])
    text = _DEEP_MARK.sub(_nest, json.dumps(value, ensure_ascii=draw(st.booleans())))
    mutation = draw(MUTATIONS)
    if mutation == "truncate" and text:
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif mutation == "huge_number":
        text = text.replace("1", "1" + "0" * 5000, 1)
    elif mutation == "big_integer":
        text = text.replace("0", "123456789012345678901234567890", 1)
    elif mutation == "infinity":
        text = text.replace("1", "1e999", 1)
    elif mutation == "garbage":
        text += draw(st.sampled_from([",", "}", " x", "\x00"]))
    elif mutation == "deep_wrap":
        depth = draw(st.sampled_from([50, 120, 1500]))
        text = '{"messages": ' + "[" * depth + text + "]" * depth + "}"
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate written raw is not UTF-8


@st.composite
def files(draw: st.DrawFn) -> bytes:
    body = draw(st.lists(lines(), min_size=1, max_size=8))
    for index in draw(st.lists(st.integers(0, len(body) - 1), max_size=3)):
        body.append(body[index])  # repeats: duplicates for both sides
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = newline.join(body) + draw(st.sampled_from([b"", newline]))
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + data


async def _check_both(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.jsonl"
        path.write_bytes(data)
        store = await Storage.open(Path(folder) / "db.sqlite3")
        try:
            compared = await compare(store, path)
        finally:
            await store.close()
        check = compared.check
        refused = compared.refused(check)
        duplicates = {p.line for p in check.errors if p.code == "duplicate_example"}
        assert check.examples == len(refused) + check.valid_examples + len(duplicates)
        with open(path, "rb") as stream:  # the per-line check itself, as the trainer calls it
            for number, text in read_lines(stream):
                checked = check_line(number, text)
                if checked is not None and not checked.ok:
                    assert number in refused and any(p.is_error for p in checked.problems)


@settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(files())
def test_check_and_import_agree_on_every_hostile_line(data):
    asyncio.run(_check_both(data))

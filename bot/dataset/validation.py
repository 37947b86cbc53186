"""Validation of chat fine-tuning examples, with OpenAI's error codes and a few of our own.

Every :class:`Problem` names where it is: a line of a file or the id of a stored example.
Codes from OpenAI's data-preparation cookbook keep their names (``data_type``,
``missing_messages_list``, ``message_missing_key``, ``message_unrecognized_key``,
``unrecognized_role``, ``missing_content``, ``example_missing_assistant_message``); the
rest cover what OpenAI's API rejects or what would silently waste a training run.

Bounds: JSON nested deeper than :data:`MAX_DEPTH` levels (objects and lists, the line's
own object included; tool-call ``arguments`` are measured on their own) is refused as
``nested_too_deep``, so nothing downstream (fingerprints, token counts, templates,
export) recurses without limit; one example lists at most
:data:`MAX_PROBLEMS_PER_EXAMPLE` problems, and user text quoted in a message (keys,
roles, ids) is cut to :data:`MAX_QUOTED` characters, so a report's size does not grow
with a hostile line's.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal

from bot.dataset.nested import strings_in

MIN_EXAMPLES = 10
"""OpenAI refuses to train on fewer examples (``invalid_n_examples``)."""
MAX_DEPTH = 100
"""The deepest nesting of objects and lists accepted in an example (a chat example is 3
levels deep; a tool's JSON schema a few more per nested property)."""
MAX_PROBLEMS_PER_EXAMPLE = 20
"""Problems listed for one example; an example with more is refused all the same."""
MAX_QUOTED = 60
"""The most characters of a user's value (key, role, id) quoted in a message."""

Severity = Literal["error", "warning"]

_TOP_LEVEL_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})
_KEYS_BY_ROLE: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "weight", "tool_calls", "function_call"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
PLAIN_ROLES = frozenset({"system", "user", "assistant"})
fast_loads: Callable[[str], Any]
try:
    from orjson import loads as fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency; keep working without it
    fast_loads = json.loads

_LONG_NUMBER = re.compile(r"[0-9]{20}")
_SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]+\|>")


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about one example or about the file as a whole."""

    code: str
    message: str
    line: int | None = None
    example_id: int | None = None
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "code": self.code, "message": self.message}
        if self.example_id is not None:
            out["example_id"] = self.example_id
        return out


def problem(
    code: str,
    text: str,
    *,
    line: int | None = None,
    example_id: int | None = None,
    severity: Severity = "error",
) -> Problem:
    """A problem whose message starts with where it is (``line 7: ...``)."""
    if line is not None:
        text = f"line {line}: {text}"
    elif example_id is not None:
        text = f"example {example_id}: {text}"
    return Problem(code, text, line, example_id, severity)


def parse_line(text: str, line: int) -> tuple[Any, list[Problem]]:
    """Decode one JSONL line; invalid JSON becomes an ``invalid_json`` problem, nesting
    too deep for the decoder ``nested_too_deep``, a lone surrogate ``invalid_encoding``.
    """
    try:
        return decode_json(text), []
    except JsonRefused as exc:
        return None, [problem(exc.code, exc.detail, line=line)]


class JsonRefused(ValueError):
    """Text :func:`decode_json` refuses; ``code`` and ``detail`` say why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


NESTED_TOO_DEEP = f"values are nested more than {MAX_DEPTH} levels deep"
"""The message of ``nested_too_deep``."""


def decode_json(text: str, *, surrogates: bool = False) -> Any:
    """Strict JSON: no NaN or Infinity, no number too large for a float, no lone
    surrogate escape (unless ``surrogates``); big integers kept exact. Raises
    :class:`JsonRefused`, never ``RecursionError``.

    orjson decodes the common case; whatever it refuses (big integers, NaN, lone
    surrogates, nesting past its limit, invalid JSON) goes through :mod:`json`, which
    decides and explains.
    """
    if _LONG_NUMBER.search(text) is None:  # orjson reads integers past 64 bits as floats
        try:
            return fast_loads(text)
        except ValueError:
            pass
    # json recurses per level: measured on the text first, deep nesting gets the same
    # verdict whatever else is wrong and however deep the caller's stack already is.
    if text_nested_too_deep(text):
        raise JsonRefused("nested_too_deep", NESTED_TOO_DEEP)
    try:
        obj = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NotJson as exc:
        raise JsonRefused("invalid_json", f"not valid JSON ({exc})") from None
    except RecursionError:
        raise JsonRefused("nested_too_deep", NESTED_TOO_DEEP) from None
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            detail = exc.msg
        elif "int_max_str_digits" in str(exc):
            detail = "a number has more than 4,300 digits"
        else:  # pragma: no cover - json raises only the two above
            detail = "unreadable"
        raise JsonRefused("invalid_json", f"not valid JSON ({detail})") from None
    if not surrogates and "\\u" in text and _has_lone_surrogate(obj):
        raise JsonRefused(
            "invalid_encoding",
            "contains a lone surrogate escape (such as \\ud800), which is not valid Unicode",
        )
    return obj


class _NotJson(ValueError):
    """A value :mod:`json` accepts but JSON (and OpenAI) does not."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise _NotJson(f"{literal[:20]} is too large for a JSON number")
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(obj: Any) -> bool:
    """Whether a string anywhere in ``obj`` (keys included) holds a surrogate, which no
    UTF-8 text can (iterative: any depth)."""
    return any(_SURROGATE.search(text) for text in strings_in(obj, keys=True))


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEPS = str.maketrans({"[": "\x01", "{": "\x01", "]": "\xff", "}": "\xff"})


def text_nested_too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the brackets of JSON ``text`` (outside its strings) nest more than
    ``limit`` deep; counted without recursion or a Python loop over the text."""
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if brackets.count("[") + brackets.count("{") <= limit:
        return False
    steps = array("b", brackets.translate(_STEPS).encode("latin-1"))
    return max(accumulate(steps)) > limit


def nested_too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether objects and lists in ``value`` nest more than ``limit`` levels (iterative,
    so any depth is measured without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return False


def validate_example(
    obj: Any, *, line: int | None = None, example_id: int | None = None
) -> list[Problem]:
    """All problems of one decoded example; an empty list means it can be trained on."""
    if _is_plain_valid(obj):
        return []
    found: list[Problem] = []

    def add(code: str, text: str, severity: Severity = "error") -> None:
        if len(found) < MAX_PROBLEMS_PER_EXAMPLE:
            found.append(problem(code, text, line=line, example_id=example_id, severity=severity))

    if nested_too_deep(obj):
        add("nested_too_deep", NESTED_TOO_DEEP)
        return found
    if not isinstance(obj, dict):
        add("data_type", f"an example must be a JSON object, not {_type_name(obj)}")
        return found
    messages = obj.get("messages")
    if not messages or not isinstance(messages, list):
        what = "missing" if messages is None else "empty" if not messages else _type_name(messages)
        add("missing_messages_list", f"'messages' must be a non-empty list (it is {what})")
        return found
    for key in obj:
        if key not in _TOP_LEVEL_KEYS:
            add("example_unrecognized_key", f"unrecognised key {_quoted(key)} next to 'messages'")
    _check_tools(obj, add)

    has_assistant = trained = False
    call_ids: set[str] = set()
    for index, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            add("data_type", f"message {index} must be an object, not {_type_name(message)}")
            continue
        role = message.get("role")
        if role is None:
            add("message_missing_key", f"message {index} has no 'role'")
            continue
        allowed = _KEYS_BY_ROLE.get(role) if isinstance(role, str) else None
        if allowed is None:
            add("unrecognized_role", f"message {index} has unrecognised role {_shown(role)}")
            continue
        for key in message:
            if key not in allowed:
                add("message_unrecognized_key", f"message {index} ({role}) has unrecognised key {_quoted(key)}")
        calls = message.get("tool_calls")
        function_call = message.get("function_call")
        makes_call = role == "assistant" and (calls is not None or function_call is not None)
        _check_content(message, index, role, makes_call, add)
        if "name" in message and (not isinstance(message["name"], str) or not message["name"]):
            add("invalid_name", f"message {index} has a 'name' that is not a non-empty string")
        if role == "assistant":
            has_assistant = True
            weight = message.get("weight", 1)
            if type(weight) is not int or weight not in (0, 1):
                add("invalid_weight", f"message {index} has weight {_shown(weight)}; it must be 0 or 1")
            if weight != 0:
                trained = True
            if calls is not None:
                _check_tool_calls(calls, index, call_ids, add)
            if function_call is not None:
                _check_function(function_call, f"message {index} function_call", add)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                add("invalid_tool_call", f"message {index} (tool) needs a 'tool_call_id' string")
            elif call_id not in call_ids:
                add("invalid_tool_call", f"message {index} answers unknown tool call {_quoted(call_id)}")
    if not has_assistant:
        add("example_missing_assistant_message", "the example has no assistant message")
    elif not trained:
        add(
            "no_trained_assistant_message",
            "every assistant message has weight 0, so this example teaches nothing",
            "warning",
        )
    return found


def _is_plain_valid(obj: Any) -> bool:
    """Fast path: a text-only example with only role and content keys that passes every
    check. Anything else goes through the full checks, which explain what is wrong."""
    if type(obj) is not dict or len(obj) != 1:
        return False
    messages = obj.get("messages")
    if type(messages) is not list or not messages:
        return False
    has_assistant = False
    for message in messages:
        if type(message) is not dict or len(message) != 2:
            return False
        content = message.get("content")
        role = message.get("role")
        if type(content) is not str or type(role) is not str or role not in PLAIN_ROLES:
            return False
        if not content or content.isspace():
            return False
        if role == "assistant":
            has_assistant = True
    return has_assistant


def special_token_warning(
    text: str, *, line: int | None = None, example_id: int | None = None
) -> Problem | None:
    """OpenAI has rejected files containing special-token text such as ``<|endoftext|>``."""
    match = _SPECIAL_TOKEN.search(text)
    if match is None:
        return None
    return problem(
        "special_token_text",
        f"contains special-token text {match.group(0)!r}, which providers may reject",
        line=line,
        example_id=example_id,
        severity="warning",
    )


def _check_content(message: dict, index: int, role: str, makes_call: bool, add: Any) -> None:
    if "content" not in message:
        if not makes_call:
            add("message_missing_key", f"message {index} ({role}) has no 'content'")
        return
    content = message["content"]
    if content is None and makes_call:
        return
    if not isinstance(content, str):
        add("missing_content", f"message {index} ({role}) content must be a string")
    elif not content.strip() and not makes_call:
        add("empty_content", f"message {index} ({role}) content is empty or only whitespace")


def _check_tool_calls(calls: Any, index: int, call_ids: set[str], add: Any) -> None:
    if not isinstance(calls, list) or not calls:
        add("invalid_tool_call", f"message {index} 'tool_calls' must be a non-empty list")
        return
    for n, call in enumerate(calls, start=1):
        where = f"message {index} tool call {n}"
        if not isinstance(call, dict):
            add("invalid_tool_call", f"{where} must be an object")
            continue
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            add("invalid_tool_call", f"{where} needs an 'id' string")
        else:
            call_ids.add(call_id)
        if call.get("type") != "function":
            add("invalid_tool_call", f"{where} must have type 'function'")
        _check_function(call.get("function"), where, add)


def _check_function(function: Any, where: str, add: Any) -> None:
    if not isinstance(function, dict):
        add("invalid_tool_call", f"{where} needs a 'function' object with name and arguments")
        return
    if not isinstance(function.get("name"), str) or not function["name"]:
        add("invalid_tool_call", f"{where} needs a function 'name'")
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        add("invalid_tool_call", f"{where} 'arguments' must be a JSON string")
        return
    try:
        value = decode_json(arguments, surrogates=True)
    except JsonRefused as exc:
        if exc.code == "nested_too_deep":
            add("invalid_tool_call", f"{where} 'arguments' is nested more than {MAX_DEPTH} levels deep")
        else:
            add("invalid_tool_call", f"{where} 'arguments' is not valid JSON")
        return
    if nested_too_deep(value):
        add("invalid_tool_call", f"{where} 'arguments' is nested more than {MAX_DEPTH} levels deep")


def _check_tools(obj: dict, add: Any) -> None:
    tools = obj.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            add("invalid_tools", "'tools' must be a list")
        else:
            for n, tool in enumerate(tools, start=1):
                function = tool.get("function") if isinstance(tool, dict) else None
                if (
                    not isinstance(tool, dict)
                    or tool.get("type") != "function"
                    or not isinstance(function, dict)
                    or not isinstance(function.get("name"), str)
                ):
                    add("invalid_tools", f"tool {n} must be {{'type': 'function', 'function': {{'name': ...}}}}")
    if "parallel_tool_calls" in obj and not isinstance(obj["parallel_tool_calls"], bool):
        add("invalid_tools", "'parallel_tool_calls' must be true or false")
    functions = obj.get("functions")
    if functions is not None:
        if not isinstance(functions, list) or not functions:
            add("invalid_tools", "'functions' must be a non-empty list")
        else:
            for n, function in enumerate(functions, start=1):
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    add("invalid_tools", f"function {n} must be an object with a 'name' string")


def _shown(value: Any) -> str:
    """A value as JSON spells it (``true``, ``null``, ``"x"``), shortened for a message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = _type_name(value)
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "..."


def _quoted(name: str) -> str:
    """A key or id as a message quotes it (``'extra'``), shortened."""
    text = repr(name)
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 4] + "...'"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )

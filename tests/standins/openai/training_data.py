"""Validation of fine-tuning JSONL files, as the ``validating_files`` stage does it.

Emulated OpenAI behaviour (``openai-finetuning.md`` §1):

* supervised lines: ``{"messages": [...]}``, roles ``system``/``developer``/``user``/
  ``assistant``/``tool``/``function``, at least one assistant message, ``weight`` only
  0 or 1, optional ``tools``/``parallel_tool_calls``/``functions``;
* DPO lines: ``{"input": {"messages": [...]}, "preferred_output": [assistant],
  "non_preferred_output": [assistant]}``;
* fewer than 10 valid examples fails the job with ``invalid_n_examples`` and the
  message ``Training file has 7 example(s), but must have at least 10 examples``;
* a malformed line fails it with ``invalid_file_format`` naming the line; text that
  tiktoken treats as a special token (``<|endoftext|>``) is rejected like OpenAI's
  "Example N message contains an invalid token" error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .tokens import content_text, count_messages

MIN_EXAMPLES = 10
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]+\|>")


@dataclass
class JobFailure(Exception):
    """Why a job failed: becomes ``job.error`` (``code``, ``message``, ``param``)."""

    code: str
    message: str
    param: str | None = None


@dataclass
class Example:
    """A validated training example."""

    messages: list[dict[str, Any]]
    tokens: int
    preferred: str | None = None

    def reply_pairs(self) -> list[tuple[str, str]]:
        """``(user text, assistant reply)`` pairs used to answer chats with the model."""
        pairs: list[tuple[str, str]] = []
        last_user = ""
        for message in self.messages:
            if message.get("role") == "user":
                last_user = content_text(message.get("content"))
            elif message.get("role") == "assistant" and message.get("weight", 1) != 0:
                text = content_text(message.get("content"))
                if text:
                    pairs.append((last_user, text))
        if self.preferred is not None:
            pairs.append((last_user, self.preferred))
        return pairs


def _format_error(line_no: int, reason: str, param: str) -> JobFailure:
    return JobFailure(
        "invalid_file_format",
        f"The job failed due to a file format error in the training file. Invalid file format. "
        f"Line {line_no}: {reason}",
        param,
    )


def _check_messages(messages: Any, line_no: int, param: str, *, need_assistant: bool) -> None:
    if not isinstance(messages, list) or not messages:
        raise _format_error(line_no, "key `messages` is missing or empty.", param)
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _format_error(line_no, f"{where} is not an object.", param)
        role = message.get("role")
        if role not in ROLES:
            raise _format_error(line_no, f"{where} has an unrecognized role {role!r}.", param)
        content = message.get("content")
        has_call = bool(message.get("tool_calls") or message.get("function_call"))
        if content is None and not (role == "assistant" and has_call):
            raise _format_error(line_no, f"{where} is missing `content`.", param)
        if content is not None and not isinstance(content, str | list):
            raise _format_error(line_no, f"{where} `content` must be a string.", param)
        if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)):
            raise _format_error(
                line_no, f"{where} `weight` must be 0 or 1 on an assistant message.", param
            )
        text = content_text(content)
        special = _SPECIAL_TOKEN.search(text)
        if special:
            raise JobFailure(
                "invalid_file_format",
                "The job failed due to a file format error in the training file. Invalid file "
                f"format. Example {line_no} message contains an invalid token: {special.group(0)}.",
                param,
            )
    if need_assistant and not any(m.get("role") == "assistant" for m in messages):
        raise _format_error(line_no, "example has no assistant message.", param)


def parse_training_file(
    content: bytes, *, method: str, model: str, param: str = "training_file"
) -> list[Example]:
    """Validate a JSONL file for ``method`` (``supervised`` or ``dpo``).

    Returns the examples, or raises :class:`JobFailure` the way the job would fail.
    ``param`` is ``training_file`` or ``validation_file``.
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise JobFailure("invalid_file_format", "The file is not valid UTF-8.", param) from None
    examples: list[Example] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _format_error(line_no, f"invalid JSON ({exc.msg}).", param) from None
        if not isinstance(record, dict):
            raise _format_error(line_no, "each line must be a JSON object.", param)
        if method == "dpo":
            examples.append(_dpo_example(record, line_no, param, model))
        else:
            _check_messages(record.get("messages"), line_no, param, need_assistant=True)
            examples.append(Example(record["messages"], count_messages(record["messages"], model)))
    if param == "training_file" and len(examples) < MIN_EXAMPLES:
        raise JobFailure(
            "invalid_n_examples",
            f"Training file has {len(examples)} example(s), but must have at least {MIN_EXAMPLES} examples",
            "training_file",
        )
    return examples


def _dpo_example(record: dict[str, Any], line_no: int, param: str, model: str) -> Example:
    source = record.get("input")
    if not isinstance(source, dict):
        raise _format_error(line_no, "key `input` is missing.", param)
    messages = source.get("messages")
    _check_messages(messages, line_no, param, need_assistant=False)
    outputs = {}
    for key in ("preferred_output", "non_preferred_output"):
        value = record.get(key)
        if not isinstance(value, list) or len(value) != 1:
            raise _format_error(
                line_no, f"key `{key}` must be a list with one assistant message.", param
            )
        _check_messages(value, line_no, param, need_assistant=True)
        outputs[key] = value[0]
    everything = list(messages) + [outputs["preferred_output"], outputs["non_preferred_output"]]
    return Example(
        list(messages),
        count_messages(everything, model),
        preferred=content_text(outputs["preferred_output"].get("content")),
    )

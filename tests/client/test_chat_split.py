"""Splitting a model's answer into Discord messages (``bot.client.chat_split``).

The properties are checked against an independent reading of the text: fence lines are
counted here, not by the module under test.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.client.chat_split import MESSAGE_LIMIT, Part, plan_parts, split_message

MENTION = re.compile(r"<@[!&]?\d+>|@everyone|@here")


def fence_lines(text: str) -> list[str]:
    """Lines Discord's Markdown (as this module models it) reads as code fences."""
    return [line for line in text.split("\n") if line.lstrip(" \t").startswith("```")]


def open_tag(text: str, tag: str | None) -> str | None:
    """Independent scan: the language of the block open after ``text`` (None: closed)."""
    for line in fence_lines(text):
        if tag is not None:
            tag = None
        else:
            word = line.lstrip(" \t").lstrip("`").split(maxsplit=1)
            tag = word[0] if word and re.fullmatch(r"[A-Za-z0-9_+\-.#]{1,32}", word[0]) else ""
    return tag


def unwrap(part: Part) -> str:
    """The part's message text with the added reopening and closing lines removed."""
    text = part.text
    if part.reopens is not None:
        head = f"```{part.reopens}\n"
        assert text.startswith(head)
        text = text[len(head):]
    if part.open_after is not None:
        assert text.endswith("\n```")
        text = text[: -len("\n```")]
    return text


def positions(original: str, bodies: list[str]) -> list[tuple[int, int]]:
    """Where each body lies in ``original``, asserting only whitespace lies between them."""
    spans, pos = [], 0
    for body in bodies:
        at = original.find(body, pos)
        assert at >= 0, f"{body[:40]!r} is not in the text after {pos}"
        assert original[pos:at].strip() == "", f"text lost before {body[:40]!r}"
        spans.append((at, at + len(body)))
        pos = at + len(body)
    assert original[pos:].strip() == "", "text lost at the end"
    return spans


def check_split(text: str, limit: int) -> list[Part]:
    plan = plan_parts(text, limit)
    messages = split_message(text, limit)
    assert messages == [p.text for p in plan]
    if not text.strip():
        assert messages == []
    carried: str | None = None
    for part, message in zip(plan, messages, strict=True):
        assert 0 < len(message) <= limit
        assert message.strip() and unwrap(part).strip()
        assert len(fence_lines(message)) % 2 == 0, f"unbalanced fences in {message!r}"
        # the added lines are exactly what an independent scan of the text says is needed
        assert part.reopens == carried
        carried = open_tag(part.body, carried)
        assert part.open_after == carried
        assert unwrap(part) == part.body
    spans = positions(text, [unwrap(p) for p in plan])
    # no mention appears that the text did not hold
    found = Counter(m for message in messages for m in MENTION.findall(message))
    assert not found - Counter(MENTION.findall(text))
    # a cut inside a word (no whitespace dropped) only where no boundary was available
    for (start, end), (after, _) in zip(spans, spans[1:], strict=False):
        if end == after:
            before = text[start:end].split("\n")[-1].lstrip(" \t")
            if before.startswith("```"):
                continue  # a fence line is one unit: its info string is not cut between words
            # (a space before ``` is not free: the next part would start with a fence line)
            free = re.search(r"[ \t]+(?=[^ \t])(?!```)", before)
            assert not free, f"a word cut where a space was free: {before!r}"
    return plan


words = st.text(alphabet="abcdefghij", min_size=1, max_size=12)
token = st.one_of(
    words,
    words,
    words,
    st.just(" "),
    st.just(" "),
    st.just("\n"),
    st.just("\n\n"),
    st.just("\n```\n"),
    st.just("\n```python\n"),
    st.just("\n  ```js\n"),
    st.just("```"),
    st.just("`"),
    st.just("\t"),
    st.just("    "),
    st.sampled_from(["@everyone", "@here", "<@&123>", "<@456>", "<@!789>", "@", "<@&"]),
    st.text(alphabet="xyz", min_size=20, max_size=300),  # a word longer than small limits
    st.text(min_size=1, max_size=5),  # anything, emoji and combining marks included
)
answers = st.lists(token, max_size=150).map("".join)


@settings(max_examples=500)
@given(answers, st.integers(min_value=64, max_value=400))
def test_parts_fit_keep_the_text_and_balance_fences(text, limit):
    check_split(text, limit)


@settings(max_examples=60)
@given(st.lists(token, min_size=50, max_size=1500).map("".join))
def test_discord_sized_parts(text):
    check_split(text, MESSAGE_LIMIT)


@given(answers, st.integers(min_value=64, max_value=400))
def test_a_part_split_again_is_itself(text, limit):
    for message in split_message(text, limit):
        assert split_message(message, limit) == [message]


@given(answers, st.integers(min_value=64, max_value=400))
def test_splitting_resumes_from_any_part(text, limit):
    plan = plan_parts(text, limit)
    for i, part in enumerate(plan):
        assert plan_parts(text, limit, start=part.resume_at, state=part.open_after) == plan[i + 1 :]


def code_answer() -> str:
    """About 5,000 characters: prose, a Python block across the 2,000 mark, prose."""
    intro = " ".join(f"word{i}" for i in range(230))  # ~1,600 characters
    code = "\n".join(f"    total += values[{i}]  # step {i}" for i in range(80))  # ~2,600
    outro = "\n\n".join(" ".join(f"end{j}x{i}" for i in range(20)) for j in range(6))
    return f"{intro}\n\nHere is the code:\n```python\ndef total(values):\n{code}\n```\n\n{outro}"


def test_a_5000_character_answer_with_a_code_block():
    text = code_answer()
    assert 4500 < len(text) < 5500
    plan = check_split(text, MESSAGE_LIMIT)
    messages = [p.text for p in plan]
    assert len(messages) == 3
    first, second, third = messages
    # the block starts in a message of its own (the line break before a fence is preferred)
    assert first.endswith("Here is the code:") and "```" not in first
    assert second.startswith("```python\ndef total(values):\n")
    assert second.endswith("\n```") and third.startswith("```python\n    total += ")
    # every code line arrives whole and in order, with its indentation
    code_lines = [
        line
        for message in messages
        for line in message.split("\n")
        if line.startswith("    total")
    ]
    assert code_lines == [f"    total += values[{i}]  # step {i}" for i in range(80)]
    assert third.rstrip().endswith(" ".join(f"end5x{i}" for i in range(20)))


def test_short_text_is_returned_unchanged():
    text = "Hello **there**!\n\n```py\nprint('hi')\n```\n  indented"
    assert split_message(text) == [text]
    assert split_message("") == [] and split_message(" \n\t\n ") == []
    assert split_message("\n\n  hi  \n") == ["  hi"]


def test_an_unclosed_block_at_the_end_is_closed():
    assert split_message("look:\n```js\nlet a = 1;") == ["look:\n```js\nlet a = 1;\n```"]


def test_paragraphs_then_lines_then_words():
    para = "alpha beta gamma " * 4  # 68 characters
    text = f"{para.strip()}\n\n{para.strip()}\n{para.strip()}"
    assert split_message(text, 100) == [para.strip()] * 3
    lines = "\n".join(["one two three four five six"] * 5)
    parts = split_message(lines, 64)
    assert all(p.endswith("six") and p.startswith("one") for p in parts)
    words = " ".join(["lorem"] * 40)
    parts = split_message(words, 64)
    assert all(p.split(" ") == ["lorem"] * len(p.split(" ")) for p in parts)
    assert " ".join(parts) == words


def test_a_word_longer_than_the_limit_is_cut_hard():
    long = "x" * 250
    parts = split_message(f"see {long} end", 100)
    assert parts[0] == "see"
    assert "".join(parts[1:-1]) + parts[-1].removesuffix(" end") == long
    assert all(len(p) <= 100 for p in parts)


def test_the_language_tag_is_kept_and_nothing_unsafe_is_repeated():
    code = "\n".join(f"x{i} = {i}" for i in range(40))
    parts = split_message(f"```c++\n{code}\n```", 100)
    assert len(parts) > 2
    assert all(p.startswith("```c++\n") and p.endswith("\n```") for p in parts)
    # an info string that is not a language name is not repeated (it might hold a mention)
    parts = split_message(f"```@everyone <@&1>\n{code}\n```", 100)
    assert all(p.startswith("```\n") for p in parts[1:])
    assert sum("@everyone" in p for p in parts) == 1


def test_no_cut_creates_a_mention():
    text = ("word " * 15 + "@everyone <@&123456> ") * 10
    parts = split_message(text, 80)
    assert sum(p.count("@everyone") for p in parts) == 10
    assert sum(p.count("<@&123456>") for p in parts) == 10


def test_the_limit_must_leave_room_for_fences():
    with pytest.raises(ValueError):
        split_message("hello", 10)

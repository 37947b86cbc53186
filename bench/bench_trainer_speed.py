"""Training throughput: tunecord's LoRA trainer vs a plain TRL ``SFTTrainer``.

Same base model (SmolLM2-135M-Instruct from the cached GGUF conversion), same Marv
examples, same LoRA shape (r=16, alpha=32, dropout 0, all linear layers), same epochs,
batch size, learning rate and seed. TRL gets prompt-completion rows (one per trained
assistant turn; completion-only loss), which is the documented way to train assistant
tokens only with SmolLM2's template.

Tokens/second = the dataset's training tokens (template applied, per our tokenizer) x
epochs / seconds of the training loop (model loading and TRL's dataset preparation
excluded; our time includes tokenisation and per-epoch checkpoints). Every variant runs
``--repeat`` times, interleaved, and the best time counts (the machine is shared).

    python -m bench.bench_trainer_speed [--examples 48] [--batch-size 8] [--repeat 1]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.bench_trainer_common import (
    DEFAULT_DATA_DIR,
    MARV_TRAIN,
    QuietCallbacks,
    load_jsonl,
    machine,
    prompt_completion_rows,
    table,
    write_section,
)

BASE = "smollm2-135m-instruct"


def matmul_rate(dtype_name: str, seconds: float = 2.0) -> float:
    """The machine's matmul rate in GFLOP/s for ``dtype_name`` ("bf16" or "fp32"), at a
    training-sized shape of SmolLM2 (2,048 positions x 576 -> 1,536), all threads, best
    of repeated timings over about ``seconds``."""
    import torch

    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    a = torch.randn(2048, 576).to(dtype)
    b = torch.randn(576, 1536).to(dtype)
    flops = 2 * 2048 * 576 * 1536
    for _ in range(3):
        torch.matmul(a, b)
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(5):
            torch.matmul(a, b)
        best = min(best, (time.perf_counter() - t0) / 5)
    return flops / best / 1e9


def run_ours(engine: Any, examples: list[dict], args: argparse.Namespace, precision: str,
             share: bool = True) -> dict[str, Any]:
    """One training run of our trainer; seconds of the loop (incl. tokenisation)."""
    from trainer.engine import Hyperparameters, TrainRequest
    from trainer.ml.training import LoraTrainer

    settings = replace(engine.settings, precision=precision, share_prefixes=share)
    trainer = LoraTrainer(engine.registry, settings, "cpu")
    out = Path(tempfile.mkdtemp(prefix="bench-ours-"))
    cb = QuietCallbacks(verbose=args.verbose)
    t0 = time.perf_counter()
    result = trainer.train(
        TrainRequest(BASE, examples, None,
                     Hyperparameters(args.epochs, args.batch_size, 1.0), 0, out), cb)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    s = trainer.stats
    return {
        "name": f"tunecord {precision}" + ("" if share else " (no prefix sharing)"),
        "seconds": s.train_seconds,
        "wall": wall,
        "tokens": result.trained_tokens,
        "positions": s.positions,
        "first_loss": cb.steps[0].train_loss,
        "last_loss": cb.steps[-1].train_loss,
    }


def run_trl(model_dir: Path, examples: list[dict], args: argparse.Namespace,
            bf16: bool, checkpointing: bool = True) -> dict[str, Any]:
    """One training run of a plain TRL SFTTrainer on prompt-completion rows.

    TRL's defaults are kept except where noted: ``checkpointing=False`` turns off its
    default gradient checkpointing (faster on a model this small)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from trainer.ml.lora import LoraSettings

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = prompt_completion_rows(examples)
    out = Path(tempfile.mkdtemp(prefix="bench-trl-"))
    config = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        learning_rate=1e-3,
        lr_scheduler_type="linear",
        warmup_steps=0.05,  # a float < 1 is a fraction of the steps
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=bf16,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
        gradient_checkpointing=checkpointing,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=LoraSettings().config(),
    )
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    logs = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    ntok = sum(len(r["input_ids"]) for r in trainer.train_dataset)
    del trainer, model
    gc.collect()
    shutil.rmtree(out, ignore_errors=True)
    return {
        "name": "TRL SFTTrainer " + ("bf16 autocast" if bf16 else "fp32")
        + ("" if checkpointing else ", no grad. checkpointing"),
        "seconds": seconds,
        "wall": seconds,
        "trl_tokens": ntok * args.epochs,
        "first_loss": logs[0] if logs else float("nan"),
        "last_loss": logs[-1] if logs else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--variants", default="ours-fp32,trl-fp32,trl-fp32-nogc,ours-bf16,trl-bf16-nogc",
        help="comma list of ours-fp32, ours-bf16, ours-fp32-noshare, trl-fp32, trl-bf16, "
             "trl-fp32-nogc, trl-bf16-nogc (TRL default = gradient checkpointing on)")
    parser.add_argument("--no-write", action="store_true", help="do not update TRAINER_RESULTS.md")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    from trainer.ml.engine import LocalEngine

    engine = LocalEngine(args.data_dir, device="cpu")
    model_dir = Path(engine.registry.local_dir(BASE))
    examples = load_jsonl(MARV_TRAIN)[: args.examples]
    dataset_tokens = sum(engine.count_tokens(BASE, ex) for ex in examples) * args.epochs
    print(machine())
    print(f"{len(examples)} examples, {dataset_tokens} training tokens x epochs, "
          f"batch {args.batch_size}, {args.epochs} epoch(s)", flush=True)

    runners = {
        "ours-fp32": lambda: run_ours(engine, examples, args, "fp32"),
        "ours-bf16": lambda: run_ours(engine, examples, args, "bf16"),
        "ours-fp32-noshare": lambda: run_ours(engine, examples, args, "fp32", share=False),
        "trl-fp32": lambda: run_trl(model_dir, examples, args, bf16=False),
        "trl-bf16": lambda: run_trl(model_dir, examples, args, bf16=True),
        "trl-fp32-nogc": lambda: run_trl(model_dir, examples, args, False, checkpointing=False),
        "trl-bf16-nogc": lambda: run_trl(model_dir, examples, args, True, checkpointing=False),
    }
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    params = sum(p.numel() for p in engine.registry.load_model(BASE).parameters())
    rates = {"bf16": matmul_rate("bf16"), "fp32": matmul_rate("fp32")}
    print(f"matmul: bf16 {rates['bf16']:.0f} GFLOP/s, fp32 {rates['fp32']:.0f} GFLOP/s; "
          f"{params / 1e6:.1f}M parameters", flush=True)
    fastest = max(rates, key=lambda k: rates[k])
    peak = rates[fastest]  # bf16 where the CPU has bf16 units; fp32 where bf16 is emulated
    best: dict[str, dict[str, Any]] = {}
    for rep in range(args.repeat):
        for v in variants:
            r = runners[v]()
            print(f"[{rep + 1}/{args.repeat}] {r['name']}: {r['seconds']:.1f}s "
                  f"({dataset_tokens / r['seconds']:.0f} tok/s), loss {r['first_loss']:.3f} -> "
                  f"{r['last_loss']:.3f}", flush=True)
            if v not in best or r["seconds"] < best[v]["seconds"]:
                best[v] = r

    ref = best.get("trl-fp32")
    fast = min((best[v] for v in best if v.startswith("trl")), key=lambda r: r["seconds"],
               default=None)
    rows = []
    for v in variants:
        r = best[v]
        vs_ref = f"{ref['seconds'] / r['seconds']:.2f}x" if ref else "-"
        vs_fast = f"{fast['seconds'] / r['seconds']:.2f}x" if fast else "-"
        gflops = 4 * params * dataset_tokens / r["seconds"] / 1e9
        rows.append([r["name"], f"{r['seconds']:.1f}", f"{dataset_tokens / r['seconds']:.0f}",
                     vs_ref, vs_fast, f"{r['first_loss']:.3f} -> {r['last_loss']:.3f}",
                     f"{gflops:.0f}", f"{gflops / peak:.0%}"])
    body = (
        f"## Training speed (`python -m bench.bench_trainer_speed --examples {args.examples} "
        f"--batch-size {args.batch_size} --epochs {args.epochs} --repeat {args.repeat}`)\n\n"
        f"Machine: {machine()}.\n\n"
        f"SmolLM2-135M-Instruct, LoRA r=16/alpha=32/dropout 0 on all linear layers, "
        f"{len(examples)} Marv examples, {dataset_tokens} training tokens (x epochs), "
        f"batch {args.batch_size}, lr 1e-3. Seconds of the training loop, best of "
        f"{args.repeat}; tokens/s = training tokens / seconds. Matmul rate measured in this run "
        f"(2,048 x 576 x 1,536, all threads): bf16 {rates['bf16']:.0f} GFLOP/s, fp32 "
        f"{rates['fp32']:.0f} GFLOP/s; training GFLOP/s = 4 x {params / 1e6:.1f}M parameters x "
        f"tokens/s (forward and input gradients; LoRA's own work not counted), compared with the "
        f"faster of the two rates ({fastest}).\n\n"
        + table(["trainer", "seconds", "tokens/s", "vs TRL default (fp32)", "vs fastest TRL",
                 "step loss first -> last", "GFLOP/s", "of the matmul rate"], rows)
    )
    if "ours-fp32" in best:
        r = best["ours-fp32"]
        computed = 4 * params * r["positions"] / r["seconds"] / 1e9
        body += (f"\n\nPrefix sharing computed {r['positions']} positions for "
                 f"{r['tokens']} tokens ({r['positions'] / r['tokens']:.0%}); counting only the "
                 f"positions computed, tunecord fp32 runs at {computed:.0f} GFLOP/s "
                 f"({computed / peak:.0%} of the matmul rate).")
    if ref:
        body += f" TRL processed {ref['trl_tokens']} tokens (prompt-completion rows)."
    print()
    print(body)
    if not args.no_write:
        write_section("speed", body)


if __name__ == "__main__":
    main()

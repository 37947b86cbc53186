"""End-of-epoch checkpoints: a loadable adapter plus the state needed to resume exactly.

Layout of ``<output_dir>``::

    checkpoints/epoch-001/   adapter_config.json, adapter_model.safetensors,
                             trainer_state.pt (optimizer, scheduler, RNG, step, epoch),
                             metrics.json
    adapter/                 the final adapter: hard links to the last epoch's files

Every folder is written under a temporary name and renamed into place
(:func:`trainer.datadir.replace_dir`), private to the user. Only the latest checkpoint keeps
its ``trainer_state.pt`` while training (:func:`discard_resume_state` drops the others').
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from trainer.datadir import partial_name, private_dirs, replace_dir
from trainer.engine import RESUME_STATE_FILE, StepMetrics
from trainer.ml.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS

STATE_FILE = RESUME_STATE_FILE
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
    tmp = partial_name(directory)
    private_dirs(tmp)
    model.save_pretrained(str(tmp), safe_serialization=True)
    replace_dir(tmp, directory)


def link_adapter(checkpoint: Path, directory: Path) -> bool:
    """Make ``directory`` the adapter of ``checkpoint`` without copying it: hard links to its
    adapter files, written atomically. False (nothing written) where links are impossible."""
    names = [p.name for p in checkpoint.iterdir() if p.is_file() and p.name not in (STATE_FILE, METRICS_FILE)]
    tmp = partial_name(directory)
    private_dirs(tmp)
    try:
        for name in names:
            os.link(checkpoint / name, tmp / name)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise
    replace_dir(tmp, directory)
    return True


def discard_resume_state(checkpoint: Path) -> None:
    """Drop what only resuming from ``checkpoint`` needs (it stays a loadable adapter)."""
    (checkpoint / STATE_FILE).unlink(missing_ok=True)


def save_checkpoint(
    model: PeftModel,
    directory: Path,
    state: ResumeState,
    metrics: StepMetrics,
) -> None:
    """Adapter, resume state and metrics in one directory, written atomically."""
    tmp = partial_name(directory)
    private_dirs(tmp)
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
    replace_dir(tmp, directory)


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

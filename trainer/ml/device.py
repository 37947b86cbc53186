"""Device, precision and thread choices."""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from functools import cache
from typing import Any

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def usable_cpus() -> int:
    """CPUs this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def use_all_cores() -> None:
    """Let torch's intra-op pool use every usable core."""
    n = usable_cpus()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU computes bf16 matmuls natively (AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    words = set(flags.split())
    return bool({"amx_bf16", "avx512_bf16"} & words)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` on CUDA and on CPUs with native bf16, else ``"fp32"``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def base_weight_dtype(precision: str, device: torch.device) -> torch.dtype:
    """dtype of the frozen base weights: bf16 on CPU in bf16 mode (no per-step casts).

    On CUDA the weights stay fp32 and :func:`autocast` does the bf16 compute.
    """
    if precision == "bf16" and device.type == "cpu":
        return torch.bfloat16
    return torch.float32


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast in bf16 mode (CUDA and CPU); a no-op in fp32 mode.

    On CPU the base weights are already bf16; autocast then runs the fp32 LoRA matmuls in
    bf16 too, instead of casting every activation up to fp32 and back (measured ~13%
    faster per step than PEFT's own casting).
    """
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def no_grad_eval(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and inference mode for the block, restoring the previous mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def release_memory() -> None:
    """Hand memory freed by a large computation back to the system.

    Freed tensors go back to the C allocator, which on glibc keeps large freed blocks in
    the process (RSS stays at the peak). ``malloc_trim`` returns them; elsewhere this is a
    no-op.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None

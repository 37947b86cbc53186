"""GGUF files llama.cpp serves chat from: one per base model, one per fine-tune.

A fine-tune's file holds the base with its LoRA adapter *merged* in, so a fine-tune decodes
as fast as the base (an unmerged adapter costs ~25-30% per token on CPU). Files are made
once, from the trainer's own fp32 weights, and named after what they were made from::

    <data_dir>/serving/<base id>/<format>-<stamp>.gguf     a base model
    <adapter dir>/serving-<format>-<stamp>.gguf            a fine-tune (or a checkpoint)

The stamp hashes the source weights' paths and modification times (and, for a fine-tune,
the base's stamp), so a rewritten adapter or base gets a new file; the stale one is removed
when the new one is written. Deleting a fine-tuned model deletes its adapter folder and so
its file.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainer.datadir import private_dirs
from trainer.ml.gguf_export import export_problem, write_gguf
from trainer.ml.lora import ADAPTER_WEIGHTS
from trainer.ml.registry import ModelRegistry


def stamp(files: Iterable[Path], *more: str) -> str:
    """A short hash of files' resolved paths and modification times (plus ``more``)."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path.resolve()}\0{path.stat().st_mtime_ns}\0".encode())
    for text in more:
        h.update(text.encode() + b"\0")
    return h.hexdigest()[:16]


def _weights(model_dir: Path) -> list[Path]:
    files = sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin"))
    return [*files, model_dir / "config.json"]


class ServingFiles:
    """Makes and finds the GGUF files of one format for a registry's models."""

    def __init__(self, registry: ModelRegistry, fmt: str) -> None:
        self.registry = registry
        self.fmt = fmt
        self._lock = threading.Lock()

    def exportable(self, model_id: str) -> str | None:
        """Why ``model_id`` cannot be served from GGUF (None when it can)."""
        from transformers import AutoConfig

        source = self.registry.local_dir(model_id)
        if not isinstance(source, Path):
            return "hub models are served by the torch path"
        return export_problem(AutoConfig.from_pretrained(source))

    def _base_stamp(self, model_id: str) -> str:
        return stamp(_weights(Path(self.registry.local_dir(model_id))))

    def base(self, model_id: str) -> Path:
        """The base model's file, written first if missing."""
        directory = self.registry.data_dir / "serving" / model_id
        path = directory / f"{self.fmt}-{self._base_stamp(model_id)}.gguf"
        if path.is_file():
            return path
        with self._lock:
            if not path.is_file():
                private_dirs(directory)
                model = self.registry.load_model(model_id)
                self._write(model, model_id, path, f"{self.fmt}-*.gguf")
        return path

    def adapter(self, model_id: str, adapter_dir: Path) -> Path:
        """The merged fine-tune's file for ``adapter_dir``, written first if missing."""
        adapter_dir = Path(adapter_dir)
        key = stamp([adapter_dir / ADAPTER_WEIGHTS], self._base_stamp(model_id))
        path = adapter_dir / f"serving-{self.fmt}-{key}.gguf"
        if path.is_file():
            return path
        with self._lock:
            if not path.is_file():
                from trainer.ml.generation import merge_adapter

                merged = merge_adapter(self.registry.load_model(model_id), adapter_dir)
                self._write(merged, model_id, path, f"serving-{self.fmt}-*.gguf")
        return path

    def _write(self, model: Any, model_id: str, path: Path, stale: str) -> None:
        write_gguf(model, self.registry.load_tokenizer(model_id), path, self.fmt, name=model_id)
        for old in path.parent.glob(stale):
            if old != path:
                old.unlink(missing_ok=True)

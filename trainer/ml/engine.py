"""``LocalEngine``: the :class:`trainer.engine.Engine` contract on local PyTorch models."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from trainer.config import CHAT_BACKENDS, DEFAULT_CHAT_FORMAT
from trainer.engine import (
    Example,
    Generation,
    GenerationParams,
    Hyperparameters,
    TrainCallbacks,
    TrainRequest,
    TrainResult,
)
from trainer.ml import llama_chat
from trainer.ml.data import ChatTokenizer
from trainer.ml.device import resolve_device, usable_cpus, use_all_cores
from trainer.ml.generation import ChatModel, StreamingChat, eos_token_ids
from trainer.ml.gguf_export import FLOAT_FORMATS, FORMATS
from trainer.ml.hyperparams import resolve_hyperparameters
from trainer.ml.registry import ModelRegistry
from trainer.ml.serving import ServingFiles
from trainer.ml.training import LoraTrainer, TrainerSettings

log = logging.getLogger(__name__)

# CHAT_BACKENDS: ``auto`` is llama.cpp where it can serve the model (CPU, llama-cpp-python
# installed, a Llama-family base), else PyTorch. DEFAULT_CHAT_FORMAT: see BENCHMARKS.md.


class LocalEngine:
    """Trains LoRA adapters and serves chat completions for the registry's base models.

    Tokenizers and chat models are loaded lazily, once per base model. ``train`` builds its
    own model copy per job, so a running fine-tune never blocks chat (beyond sharing CPU).
    Chat runs on llama.cpp or PyTorch (``chat_backend``, see :data:`CHAT_BACKENDS`); for
    llama.cpp each finished fine-tune is written once as a merged GGUF file right after
    training (:mod:`trainer.ml.serving`), so its first answer does not wait for that.
    """

    def __init__(
        self,
        data_dir: Path | str,
        registry: ModelRegistry | None = None,
        device: str | torch.device = "auto",
        *,
        settings: TrainerSettings | None = None,
        max_adapters: int = 4,
        default_max_tokens: int = 1024,
        chat_backend: str = "auto",
        chat_format: str = DEFAULT_CHAT_FORMAT,
    ) -> None:
        if chat_backend not in CHAT_BACKENDS:
            raise ValueError(f"chat backend must be one of {CHAT_BACKENDS}, got {chat_backend!r}")
        if chat_format not in FORMATS:
            raise ValueError(f"chat format must be one of {FORMATS}, got {chat_format!r}")
        self.data_dir = Path(data_dir)
        self.registry = registry or ModelRegistry(self.data_dir)
        self.device = resolve_device(device)
        self.settings = settings or TrainerSettings()
        self.max_adapters = max_adapters
        self.default_max_tokens = default_max_tokens
        self._lock = threading.Lock()
        self._chat_tokenizers: dict[str, ChatTokenizer] = {}
        self._chat_models: dict[str, StreamingChat] = {}
        self.chat_backend = chat_backend
        self.serving = ServingFiles(self.registry, chat_format)
        use_all_cores()

    # -- Engine protocol --------------------------------------------------------------------
    def base_models(self) -> list[str]:
        """Ids of the base models this engine can train and serve."""
        return self.registry.ids()

    def resolve_hyperparameters(
        self, n_examples: int, requested: Mapping[str, Any]
    ) -> Hyperparameters:
        """``"auto"``/missing -> numbers (OpenAI's epoch heuristic); ValueError if invalid."""
        return resolve_hyperparameters(n_examples, requested)

    def count_tokens(self, base_model: str, example: Example) -> int:
        """Tokens of ``example`` as ``base_model`` trains on it (template applied, truncated)."""
        return self.chat_tokenizer(base_model).count_tokens(example)

    def train(self, request: TrainRequest, callbacks: TrainCallbacks) -> TrainResult:
        """Blocking LoRA fine-tune (see :mod:`trainer.ml.training`)."""
        trainer = LoraTrainer(self.registry, self.settings, self.device)
        result = trainer.train(request, callbacks)
        if self.backend_for(request.base_model) == "llama":
            try:
                self.serving.adapter(request.base_model, result.adapter_dir)
            except Exception:  # chat makes it on first use; the job itself succeeded
                log.exception("could not write the serving file of %s", result.adapter_dir)
        return result

    def generate(
        self,
        base_model: str,
        adapter_dir: Path | None,
        messages: Sequence[Mapping[str, Any]],
        params: GenerationParams,
    ) -> Generation:
        """Streamed chat completion, optionally through a LoRA adapter directory."""
        return self.chat_model(base_model).generate(messages, params, adapter_dir)

    # -- helpers ------------------------------------------------------------------------------
    def chat_tokenizer(self, base_model: str) -> ChatTokenizer:
        """The (cached) template-aware tokenizer of ``base_model``."""
        with self._lock:
            chat = self._chat_tokenizers.get(base_model)
            if chat is None:
                tokenizer = self.registry.load_tokenizer(base_model)
                max_len = self.settings.max_seq_len or _max_positions(
                    self.registry.local_dir(base_model)
                )
                chat = ChatTokenizer(tokenizer, max_length=max_len)
                self._chat_tokenizers[base_model] = chat
            return chat

    def backend_for(self, base_model: str) -> str:
        """``"llama"`` or ``"torch"``: which backend answers chats with ``base_model``.

        Raises ``RuntimeError`` when llama.cpp was asked for and cannot serve the model.
        """
        if self.chat_backend == "torch":
            return "torch"
        if self.device.type != "cpu":
            reason: str | None = f"llama.cpp serves on CPU here, the engine runs on {self.device.type}"
        elif not llama_chat.available():
            reason = "llama-cpp-python is not installed (pip install -e '.[fast-chat]')"
        else:
            reason = self.serving.exportable(base_model)
        if reason is None:
            return "llama"
        if self.chat_backend == "llama":
            raise RuntimeError(f"chat backend llama cannot serve {base_model}: {reason}")
        return "torch"

    def chat_model(self, base_model: str) -> StreamingChat:
        """The (cached) model used for generation with ``base_model``."""
        with self._lock:
            chat = self._chat_models.get(base_model)
            if chat is None:
                backend = self.backend_for(base_model)
                chat = self._llama_chat(base_model) if backend == "llama" else self._torch_chat(base_model)
                log.info("chat with %s on %s", base_model, backend)
                self._chat_models[base_model] = chat
            return chat

    def _torch_chat(self, base_model: str) -> ChatModel:
        model: Any = self.registry.load_model(base_model)
        return ChatModel(
            model.to(self.device),
            self.registry.load_tokenizer(base_model),
            max_adapters=self.max_adapters,
            default_max_tokens=self.default_max_tokens,
            device=self.device,
        )

    def _llama_chat(self, base_model: str) -> StreamingChat:
        from transformers import AutoConfig, GenerationConfig

        source = self.registry.local_dir(base_model)
        config = AutoConfig.from_pretrained(source)
        try:
            generation_eos = GenerationConfig.from_pretrained(source).eos_token_id
        except OSError:  # no generation_config.json
            generation_eos = config.eos_token_id
        tokenizer = self.registry.load_tokenizer(base_model)
        return llama_chat.LlamaChatModel(
            self.serving.base(base_model),
            tokenizer,
            gguf_for=lambda adapter_dir: self.serving.adapter(base_model, adapter_dir),
            context_length=int(config.max_position_embeddings),
            eos_ids=eos_token_ids(generation_eos, tokenizer),
            n_threads=usable_cpus(),  # fewer is slower even next to the HTTP server's work
            exact_attention=self.serving.fmt in FLOAT_FORMATS,
            max_adapters=self.max_adapters,
            default_max_tokens=self.default_max_tokens,
        )

    def close(self) -> None:
        """Free the chat models' native memory (llama.cpp); torch's is garbage-collected."""
        with self._lock:
            chats, self._chat_models = list(self._chat_models.values()), {}
        for chat in chats:
            if isinstance(chat, llama_chat.LlamaChatModel):
                chat.close()


def _max_positions(model_dir: Path | str) -> int | None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if value else None

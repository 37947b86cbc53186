"""``LocalEngine``: the :class:`trainer.engine.Engine` contract on local PyTorch models."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from trainer.engine import (
    Example,
    Generation,
    GenerationParams,
    Hyperparameters,
    TrainCallbacks,
    TrainRequest,
    TrainResult,
)
from trainer.ml.data import ChatTokenizer
from trainer.ml.device import resolve_device, use_all_cores
from trainer.ml.generation import ChatModel
from trainer.ml.hyperparams import resolve_hyperparameters
from trainer.ml.registry import ModelRegistry
from trainer.ml.training import LoraTrainer, TrainerSettings


class LocalEngine:
    """Trains LoRA adapters and serves chat completions for the registry's base models.

    Tokenizers and chat models are loaded lazily, once per base model. ``train`` builds its
    own model copy per job, so a running fine-tune never blocks chat (beyond sharing CPU).
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
    ) -> None:
        self.data_dir = Path(data_dir)
        self.registry = registry or ModelRegistry(self.data_dir)
        self.device = resolve_device(device)
        self.settings = settings or TrainerSettings()
        self.max_adapters = max_adapters
        self.default_max_tokens = default_max_tokens
        self._lock = threading.Lock()
        self._chat_tokenizers: dict[str, ChatTokenizer] = {}
        self._chat_models: dict[str, ChatModel] = {}
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
        return trainer.train(request, callbacks)

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

    def chat_model(self, base_model: str) -> ChatModel:
        """The (cached) model used for generation with ``base_model``."""
        with self._lock:
            chat = self._chat_models.get(base_model)
            if chat is None:
                model: Any = self.registry.load_model(base_model)
                model = model.to(self.device)
                chat = ChatModel(
                    model,
                    self.registry.load_tokenizer(base_model),
                    max_adapters=self.max_adapters,
                    default_max_tokens=self.default_max_tokens,
                    device=self.device,
                )
                self._chat_models[base_model] = chat
            return chat


def _max_positions(model_dir: Path | str) -> int | None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if value else None

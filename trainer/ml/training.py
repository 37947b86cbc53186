"""LoRA fine-tuning: the implementation behind :meth:`trainer.engine.Engine.train`.

A plain PyTorch loop (no HF Trainer): examples are tokenised once; every optimizer step
takes ``batch_size`` examples from a seeded per-epoch permutation, packs them into
prefix-sharing rows (:mod:`trainer.ml.packing`: no padding, shared system prompts computed
once, LM head only on trained tokens) and accumulates gradients over micro-batches of at
most ``micro_batch_nodes`` positions. The loss is the mean over the step's trained tokens,
independent of how the step is split. Cancellation is checked before every micro-batch.

Each epoch ends with a checkpoint (adapter + optimizer/scheduler/RNG state); the data
order of an epoch depends only on ``(seed, epoch)``, so resuming from a checkpoint
continues exactly where an uninterrupted run would be.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer.engine import (
    Checkpoint,
    Hyperparameters,
    StepMetrics,
    TrainCallbacks,
    TrainingCancelled,
    TrainingError,
    TrainRequest,
    TrainResult,
)
from trainer.ml.checkpoints import (
    ResumeState,
    checkpoint_dir,
    discard_resume_state,
    is_adapter_dir,
    link_adapter,
    load_resume_state,
    save_adapter,
    save_checkpoint,
)
from trainer.ml.data import ChatTokenizer, TokenizedSequence, tokenize_dataset
from trainer.ml.device import (
    autocast,
    base_weight_dtype,
    no_grad_eval,
    resolve_device,
    resolve_precision,
    use_all_cores,
)
from trainer.ml.lora import (
    LoraSettings,
    attach_lora,
    load_adapter_weights,
    packed_loss,
    trainable_parameters,
)
from trainer.ml.packing import pack, plan_micro_batches
from trainer.ml.registry import ModelRegistry, UnknownBaseModel


@dataclass(frozen=True)
class TrainerSettings:
    """Engine-wide training knobs (the per-job ones are in :class:`Hyperparameters`)."""

    base_learning_rate: float = 1e-3
    """Multiplied by the job's ``learning_rate_multiplier``."""
    warmup_fraction: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    max_seq_len: int | None = None
    """Truncation length; ``None`` = the model's ``max_position_embeddings``."""
    micro_batch_nodes: int = 1024
    """Most positions in one packed forward pass (bounds memory and masked attention)."""
    share_prefixes: bool = True
    valid_every: int | None = None
    """Steps between mini-batch validations; ``None`` = about ten per run."""
    precision: str = "auto"
    lora: LoraSettings = field(default_factory=LoraSettings)


@dataclass
class TrainStats:
    """Counters of the last :meth:`LoraTrainer.train` call (benchmarks read these)."""

    tokens: int = 0
    """Tokens of the training sequences processed by this call (unpacked, all epochs run)."""
    positions: int = 0
    """Positions actually computed (after prefix sharing)."""
    targets: int = 0
    steps: int = 0
    load_seconds: float = 0.0
    train_seconds: float = 0.0
    precision: str = ""


class LoraTrainer:
    """Runs :class:`TrainRequest` jobs on one device; not safe for concurrent ``train`` calls
    on the *same* instance (use one per job; they share nothing but the registry)."""

    def __init__(
        self,
        registry: ModelRegistry,
        settings: TrainerSettings | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        self.registry = registry
        self.settings = settings or TrainerSettings()
        self.device = resolve_device(device)
        self.precision = resolve_precision(self.settings.precision, self.device)
        self.stats = TrainStats()

    # -- public ---------------------------------------------------------------------------
    def train(self, request: TrainRequest, callbacks: TrainCallbacks) -> TrainResult:
        """Fine-tune a LoRA adapter; see the module docstring for the loop's semantics."""
        use_all_cores()
        self.stats = TrainStats(precision=self.precision)
        t0 = time.perf_counter()
        hp = request.hyperparameters
        if not request.train_examples:
            raise TrainingError("the training file has no examples", "invalid_training_file")
        try:
            tokenizer = self.registry.load_tokenizer(request.base_model)
            model: Any = self.registry.load_model(
                request.base_model, base_weight_dtype(self.precision, self.device)
            )
        except UnknownBaseModel as exc:
            raise TrainingError(f"unknown base model {exc}", "invalid_base_model") from exc
        max_len = self.settings.max_seq_len or getattr(
            model.config, "max_position_embeddings", None
        )
        chat = ChatTokenizer(tokenizer, max_length=max_len)
        try:
            train_seqs = tokenize_dataset(chat, request.train_examples)
            valid_seqs = (
                [s for ex in tokenize_dataset(chat, request.valid_examples) for s in ex]
                if request.valid_examples
                else []
            )
        except ValueError as exc:
            raise TrainingError(str(exc), "invalid_training_file") from exc
        if not any(s.n_targets for ex in train_seqs for s in ex):
            raise TrainingError(
                "no assistant tokens to train on (every assistant message has weight 0?)",
                "invalid_training_file",
            )

        torch.manual_seed(request.seed)
        model = attach_lora(
            model, self.settings.lora, autocast=self.precision == "bf16"
        ).to(self.device)
        model.train()
        params = trainable_parameters(model)
        optimizer = torch.optim.AdamW(
            params,
            lr=self.settings.base_learning_rate * hp.learning_rate_multiplier,
            weight_decay=self.settings.weight_decay,
        )
        n = len(train_seqs)
        steps_per_epoch = math.ceil(n / hp.batch_size)
        total_steps = steps_per_epoch * hp.n_epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _linear_schedule(total_steps, self.settings.warmup_fraction)
        )
        fingerprint = _fingerprint(request, hp, train_seqs, self.settings.lora)

        step, start_epoch = 0, 0
        if request.resume_from is not None:
            state = self._resume(request.resume_from, model, optimizer, scheduler, fingerprint)
            step, start_epoch = state.step, state.epoch
        self.stats.load_seconds = time.perf_counter() - t0

        valid_every = self.settings.valid_every or max(1, math.ceil(total_steps / 10))
        valid_cursor = 0
        trained_tokens = sum(len(s) for ex in train_seqs for s in ex) * hp.n_epochs
        callbacks.on_start(total_steps, None)
        t_train = time.perf_counter()
        metrics: StepMetrics | None = None
        previous = request.resume_from  # holds the resume state in use until a newer one is recorded
        try:
            for epoch in range(start_epoch, hp.n_epochs):
                order = _epoch_order(n, request.seed, epoch)
                for b in range(steps_per_epoch):
                    batch = [s for i in order[b * hp.batch_size:(b + 1) * hp.batch_size]
                             for s in train_seqs[i]]
                    loss, acc = self._train_step(model, batch, params, optimizer, callbacks)
                    scheduler.step()
                    step += 1
                    self.stats.steps += 1
                    last_of_epoch = b == steps_per_epoch - 1
                    v_loss = v_acc = full_loss = full_acc = None
                    if valid_seqs and last_of_epoch:  # the full set; also this step's valid_*
                        full_loss, full_acc = v_loss, v_acc = self.evaluate(model, valid_seqs, callbacks)
                    elif valid_seqs and step % valid_every == 0:
                        mini, valid_cursor = _take_cyclic(valid_seqs, valid_cursor, hp.batch_size)
                        v_loss, v_acc = self.evaluate(model, mini, callbacks)
                    metrics = StepMetrics(step, total_steps, epoch + 1, loss, acc, v_loss, v_acc, full_loss, full_acc)
                    callbacks.on_step(metrics)
                    if callbacks.should_stop():
                        raise TrainingCancelled()
                assert metrics is not None
                ckpt = checkpoint_dir(request.output_dir, epoch + 1)
                save_checkpoint(
                    model, ckpt, _resume_state(step, epoch + 1, optimizer, scheduler, fingerprint),
                    metrics,
                )
                callbacks.on_checkpoint(Checkpoint(step, epoch + 1, ckpt, metrics))
                if previous is not None and previous != ckpt:  # recorded: resume from the new one
                    discard_resume_state(previous)
                previous = ckpt
            adapter_dir = request.output_dir / "adapter"
            last = checkpoint_dir(request.output_dir, hp.n_epochs)
            if not (is_adapter_dir(last) and link_adapter(last, adapter_dir)):
                save_adapter(model, adapter_dir)
        except torch.OutOfMemoryError as exc:
            raise TrainingError(f"out of memory: {exc}", "out_of_memory") from exc
        finally:
            self.stats.train_seconds = time.perf_counter() - t_train
            del model, optimizer
            gc.collect()
        return TrainResult(adapter_dir, trained_tokens, step, metrics)

    def evaluate(
        self,
        model: torch.nn.Module,
        sequences: Sequence[TokenizedSequence],
        callbacks: TrainCallbacks | None = None,
    ) -> tuple[float, float]:
        """Mean loss and token accuracy over the trained tokens of ``sequences``."""
        loss_sum, correct, count = 0.0, 0, 0
        with no_grad_eval(model), autocast(self.precision, self.device):
            for group in plan_micro_batches(sequences, self.settings.micro_batch_nodes):
                if callbacks is not None and callbacks.should_stop():
                    raise TrainingCancelled()
                packed = pack(group, self.settings.share_prefixes).to(self.device)
                if packed.n_targets == 0:
                    continue
                ls, c = packed_loss(model, packed)
                loss_sum += float(ls)
                correct += int(c)
                count += packed.n_targets
        return (loss_sum / count, correct / count) if count else (float("nan"), float("nan"))

    # -- internals ------------------------------------------------------------------------
    def _train_step(
        self,
        model: torch.nn.Module,
        batch: Sequence[TokenizedSequence],
        params: Sequence[torch.nn.Parameter],
        optimizer: torch.optim.Optimizer,
        callbacks: TrainCallbacks,
    ) -> tuple[float, float]:
        n_targets = sum(s.n_targets for s in batch)
        loss_sum, correct = 0.0, 0
        for group in plan_micro_batches(batch, self.settings.micro_batch_nodes):
            if callbacks.should_stop():
                raise TrainingCancelled()
            packed = pack(group, self.settings.share_prefixes).to(self.device)
            self.stats.tokens += packed.n_tokens
            self.stats.positions += packed.n_nodes
            self.stats.targets += packed.n_targets
            if packed.n_targets == 0:
                continue
            with autocast(self.precision, self.device):
                ls, c = packed_loss(model, packed)
            (ls / n_targets).backward()
            loss_sum += float(ls.detach())
            correct += int(c)
        if self.settings.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, self.settings.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if n_targets == 0:
            return float("nan"), float("nan")
        return loss_sum / n_targets, correct / n_targets

    def _resume(
        self,
        directory: Path,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        fingerprint: str,
    ) -> ResumeState:
        try:
            state = load_resume_state(Path(directory))
        except ValueError as exc:
            raise TrainingError(str(exc), "invalid_checkpoint") from exc
        if state.fingerprint != fingerprint:
            raise TrainingError(
                f"{directory} was written for different data or hyperparameters",
                "invalid_checkpoint",
            )
        load_adapter_weights(model, Path(directory))  # type: ignore[arg-type]
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        torch.set_rng_state(state.rng_cpu)
        if state.rng_cuda is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state.rng_cuda)
        return state


def _linear_schedule(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """Linear warmup over ``warmup_fraction`` of the steps, then linear decay towards 0."""
    warmup = int(round(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The example order of ``epoch``: a permutation that depends only on (seed, epoch)."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))
    return torch.randperm(n, generator=g).tolist()


def _take_cyclic(
    items: Sequence[TokenizedSequence], cursor: int, k: int
) -> tuple[list[TokenizedSequence], int]:
    k = min(k, len(items))
    out = [items[(cursor + i) % len(items)] for i in range(k)]
    return out, (cursor + k) % len(items)


def _resume_state(
    step: int,
    epoch: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    fingerprint: str,
) -> ResumeState:
    return ResumeState(
        step=step,
        epoch=epoch,
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        rng_cpu=torch.get_rng_state(),
        rng_cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        fingerprint=fingerprint,
    )


def _fingerprint(
    request: TrainRequest,
    hp: Hyperparameters,
    train_seqs: Sequence[Sequence[TokenizedSequence]],
    lora: LoraSettings,
) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(
        [request.base_model, asdict(hp), request.seed, repr(lora)], sort_keys=True
    ).encode())
    for ex in train_seqs:
        for s in ex:
            h.update(repr((s.input_ids, s.labels)).encode())
    return h.hexdigest()

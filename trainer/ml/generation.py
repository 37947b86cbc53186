"""Chat generation: a manual KV-cache decode loop that streams text as tokens arrive.

:class:`StreamingChat` is what every chat backend shares (prompt bounds, sampling, seeds,
stops, text deltas, usage); a backend supplies only model sessions that run token ids
through a model. :class:`ChatModel` is the PyTorch backend (the llama.cpp one is
:mod:`trainer.ml.llama_chat`). One :class:`ChatModel` per base model holds the model, its
tokenizer and a bounded LRU of LoRA adapters merged into copies of the base
(:class:`AdapterCache`). A lock is taken
around every forward pass (not the whole request), so concurrent streams interleave token
by token, each on its own model (base or merged adapter) and KV cache.

Bounds: a prompt must leave room for one token in the model's context, else a 400
``context_length_exceeded`` before any work; the prompt is run through the model in chunks
of :data:`PREFILL_CHUNK` tokens (other streams get the model between chunks, and attention
never materialises more than a chunk's rows); a stream's KV cache lives only as long as
its stream, and after a long one the freed memory is handed back to the system
(:func:`trainer.ml.device.release_memory`). Sampling never divides by a vanishing
temperature: ``temperature`` near 0 or ``top_p`` of 0 is greedy.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from trainer.engine import Generation, GenerationParams
from trainer.errors import bad_request
from trainer.ml.checkpoints import is_adapter_dir
from trainer.ml.data import ChatTokenizer
from trainer.ml.device import release_memory, use_all_cores
from trainer.ml.lora import ADAPTER_WEIGHTS

PREFILL_CHUNK = 256
"""Prompt tokens per forward pass when a prompt is first run through the model."""
LONG_PROMPT = 1024
"""Prompts at least this long hand their freed memory back to the system when done."""
GREEDY_BELOW = 1e-4
"""Temperatures below this sample the most likely token (their distribution already is
one-hot within float precision, and dividing by them overflows)."""


class AdapterCache:
    """At most ``max_adapters`` LoRA adapters kept as *merged* models, LRU-evicted.

    Each entry is a copy of the base model with one adapter merged into its linear
    weights (embeddings and norms stay shared with the base, so an entry costs the linear
    weights only: ~425 MB for SmolLM2-135M in fp32). A merged model decodes as fast as the
    base; an unmerged PEFT model pays ~200 extra small ops per token (measured ~30% slower
    on CPU). The base model itself is never modified. A stream keeps a reference to its
    model, so evicting an entry never disturbs a stream in flight. Call with the owner's
    lock held.
    """

    def __init__(self, base: PreTrainedModel, max_adapters: int = 4) -> None:
        if max_adapters < 1:
            raise ValueError("max_adapters must be >= 1")
        self.base = base
        self.max_adapters = max_adapters
        self._entries: OrderedDict[tuple[str, int], PreTrainedModel] = OrderedDict()
        self.loads = 0

    @staticmethod
    def key(adapter_dir: Path) -> tuple[str, int]:
        """Identity of an adapter on disk: resolved path + weights mtime (rewrites reload)."""
        path = adapter_dir.resolve()
        return str(path), (path / ADAPTER_WEIGHTS).stat().st_mtime_ns

    def names(self) -> list[str]:
        """Loaded adapter paths, least recently used first."""
        return [path for path, _ in self._entries]

    def get(self, adapter_dir: Path) -> PreTrainedModel:
        """The merged model for ``adapter_dir`` (loaded on a miss), now most recently used."""
        key = self.key(adapter_dir)
        model = self._entries.get(key)
        if model is None:
            model = merge_adapter(self.base, adapter_dir)
            self.loads += 1
            self._entries[key] = model
            while len(self._entries) > self.max_adapters:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        return model


def merge_adapter(base: PreTrainedModel, adapter_dir: Path) -> PreTrainedModel:
    """A copy of ``base`` with the LoRA adapter in ``adapter_dir`` merged in.

    Parameters LoRA never touches here (embeddings, norms) are shared with ``base``
    unless the adapter targets them; everything else is copied before merging.
    """
    import copy

    from peft import PeftConfig, PeftModel

    targets = str(PeftConfig.from_pretrained(str(adapter_dir)).target_modules)
    share_embeddings = "embed" not in targets and "lm_head" not in targets
    shared: dict[int, Any] = {}
    for module in base.modules():
        if isinstance(module, torch.nn.Linear):
            continue  # LoRA merges into linear weights: copy them
        if isinstance(module, torch.nn.Embedding) and not share_embeddings:
            continue
        for p in module.parameters(recurse=False):
            shared[id(p)] = p
    twin = copy.deepcopy(base, shared)
    merged = PeftModel.from_pretrained(twin, str(adapter_dir)).merge_and_unload()
    return merged.eval()


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> int:
    """Temperature + nucleus (top-p) sampling; greedy (the most likely token) when
    ``temperature`` is below :data:`GREEDY_BELOW` or ``top_p`` is 0 (OpenAI's meaning: only
    the top token). Never fails on extreme values: NaN logits count as impossible."""
    logits = torch.nan_to_num(logits.float(), nan=float("-inf"))
    if not math.isfinite(temperature) or temperature < GREEDY_BELOW or not top_p > 0:
        return int(logits.argmax())
    logits = (logits - logits.max()) / temperature  # the top logit is 0: no overflow
    if top_p < 1.0:
        sorted_logits, idx = logits.sort(descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p  # mass before this token already >= top_p
        drop[0] = False  # the most likely token always stays
        sorted_logits[drop] = float("-inf")
        logits = torch.full_like(logits, float("-inf")).scatter_(0, idx, sorted_logits)
    probs = logits.softmax(-1)
    if not bool(torch.isfinite(probs).all()) or float(probs.sum()) <= 0:
        return int(logits.argmax())
    return int(torch.multinomial(probs, 1, generator=generator))


class IncrementalDetokenizer:
    """Turns a growing token list into text deltas (prefix/read offsets, as in TGI/vLLM)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def _decode(self, ids: Sequence[int]) -> str:
        text = self.tokenizer.decode(
            list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text if isinstance(text, str) else "".join(text)

    def push(self, token: int) -> str:
        """Add a token; return the text it completes (may be "" mid-character)."""
        self.ids.append(token)
        prefix_text = self._decode(self.ids[self._prefix:self._read])
        new_text = self._decode(self.ids[self._prefix:])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.ids)
            return new_text[len(prefix_text):]
        return ""

    def flush(self) -> str:
        """Whatever text is still pending (e.g. an incomplete character at the very end)."""
        prefix_text = self._decode(self.ids[self._prefix:self._read])
        new_text = self._decode(self.ids[self._prefix:])
        self._prefix = self._read = len(self.ids)
        return new_text[len(prefix_text):]


class StopMatcher:
    """Holds back text that may be the start of a stop string; finds complete ones."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.text = ""
        self.emitted = 0

    def feed(self, delta: str) -> tuple[str, bool]:
        """Add text; return (safe text to emit now, whether a stop string was reached)."""
        start = max(0, self.emitted - max((len(s) for s in self.stops), default=0))
        self.text += delta
        hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        if hits:
            end = min(hits)
            out = self.text[self.emitted:end] if end > self.emitted else ""
            self.emitted = max(self.emitted, end)
            return out, True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.text)), hold, -1):
                if self.text.endswith(s[:k]):
                    hold = k
                    break
        end = max(self.emitted, len(self.text) - hold)
        out = self.text[self.emitted:end]
        self.emitted = end
        return out, False

    def flush(self) -> str:
        """Everything not yet emitted (generation ended without completing a stop)."""
        out = self.text[self.emitted:]
        self.emitted = len(self.text)
        return out


Forward = Callable[[list[int]], torch.Tensor]
"""Runs token ids through a model session (its cache grows); the last position's logits."""


def eos_token_ids(generation_eos: Any, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """Ids that end a completion: the generation config's EOS ids and the tokenizer's."""
    eos: set[int] = set()
    for source in (generation_eos, tokenizer.eos_token_id):
        if isinstance(source, int):
            eos.add(source)
        elif source:
            eos.update(int(x) for x in source)
    return frozenset(eos)


class StreamingChat:
    """What every chat backend shares: prompt bounds, seeds, sampling, stops, streaming.

    A backend supplies :meth:`_prepare` (load an adapter now, so errors surface before the
    stream) and :meth:`_session` (a model session for one stream: a context manager that
    yields a :data:`Forward`). Everything a client can observe (token ids, sampling, text
    deltas, stop handling, finish reasons, usage) is decided here, the same way for all.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        *,
        context_length: int,
        eos_ids: frozenset[int],
        default_max_tokens: int = 1024,
    ) -> None:
        self.tokenizer = tokenizer
        self.chat = ChatTokenizer(tokenizer)
        self.context_length = context_length
        self.eos_ids = eos_ids
        self.default_max_tokens = default_max_tokens
        self.device = torch.device("cpu")
        """Where logits arrive (the sampler's random generator lives there too)."""

    def _prepare(self, adapter_dir: Path) -> None:
        raise NotImplementedError

    def _session(self, adapter_dir: Path | None, prompt: list[int]) -> AbstractContextManager[Forward]:
        raise NotImplementedError

    def generate(
        self,
        messages: Sequence[Mapping[str, Any]],
        params: GenerationParams,
        adapter_dir: Path | None = None,
    ) -> Generation:
        """Start a chat completion; iterate ``.deltas`` to run it (see module docstring)."""
        t0 = time.perf_counter()
        if adapter_dir is not None:
            adapter_dir = Path(adapter_dir)
            if not is_adapter_dir(adapter_dir):
                raise FileNotFoundError(f"no LoRA adapter in {adapter_dir}")
            self._prepare(adapter_dir)
        prompt = self.chat.encode_prompt(messages)
        room = self.context_length - len(prompt)
        if room <= 0:
            raise bad_request(
                f"This model's maximum context length is {self.context_length} tokens. However, your "
                f"messages resulted in {len(prompt)} tokens. Please reduce the length of the messages.",
                param="messages",
                code="context_length_exceeded",
            )
        max_new = min(room, params.max_tokens or self.default_max_tokens)
        if max_new < 1:
            raise ValueError("max_tokens must be >= 1")
        gen = Generation(deltas=iter(()), prompt_tokens=len(prompt))
        gen.deltas = self._stream(gen, prompt, params, adapter_dir, max_new, t0)
        return gen

    def _stream(
        self,
        gen: Generation,
        prompt: list[int],
        params: GenerationParams,
        adapter_dir: Path | None,
        max_new: int,
        t0: float,
    ) -> Iterator[str]:
        generator = torch.Generator(device=self.device)
        seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(8), "little")
        generator.manual_seed(seed % 2**64)  # any integer: torch takes 64 bits
        detok = IncrementalDetokenizer(self.tokenizer)
        stops = StopMatcher(params.stop)
        gen.finish_reason = "length"
        with self._session(adapter_dir, prompt) as forward:
            yield from self._decode(gen, forward, prompt, params, generator, detok, stops, max_new, t0)
        gen.extra["seconds"] = time.perf_counter() - t0

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        params: GenerationParams,
        adapter_dir: Path | None = None,
    ) -> tuple[str, Generation]:
        """Non-streaming convenience: the whole text and the finished :class:`Generation`."""
        gen = self.generate(messages, params, adapter_dir)
        return "".join(gen.deltas), gen

    @staticmethod
    def _prefill(forward: Forward, prompt: list[int], gen: Generation) -> torch.Tensor | None:
        """Run the prompt through the model chunk by chunk; the last position's logits
        (None if the generation was cancelled meanwhile)."""
        logits = None
        for start in range(0, len(prompt), PREFILL_CHUNK):
            if gen.cancelled.is_set():
                return None
            logits = forward(prompt[start:start + PREFILL_CHUNK])
        return logits

    def _decode(
        self,
        gen: Generation,
        forward: Forward,
        prompt: list[int],
        params: GenerationParams,
        generator: torch.Generator,
        detok: IncrementalDetokenizer,
        stops: StopMatcher,
        max_new: int,
        t0: float,
    ) -> Iterator[str]:
        logits = self._prefill(forward, prompt, gen)
        hit = False
        while logits is not None and gen.completion_tokens < max_new and not gen.cancelled.is_set():
            token = sample_next(logits, params.temperature, params.top_p, generator)
            gen.completion_tokens += 1
            if token in self.eos_ids:
                gen.finish_reason = "stop"
                break
            out, hit = stops.feed(detok.push(token))
            if out:
                gen.extra.setdefault("time_to_first_token_s", time.perf_counter() - t0)
                yield out
            if hit:
                gen.finish_reason = "stop"
                break
            if gen.completion_tokens < max_new:
                logits = forward([token])
        if not hit and not gen.cancelled.is_set():  # ended by EOS or length: release held-back text
            out, hit = stops.feed(detok.flush())
            if hit:
                gen.finish_reason = "stop"
            else:
                out += stops.flush()
            if out:
                gen.extra.setdefault("time_to_first_token_s", time.perf_counter() - t0)
                yield out

class ChatModel(StreamingChat):
    """Chat on a PyTorch model: a DynamicCache per stream, adapters merged into copies."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_adapters: int = 4,
        default_max_tokens: int = 1024,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(
            tokenizer,
            context_length=int(getattr(model.config, "max_position_embeddings", 2048)),
            eos_ids=eos_token_ids(model.generation_config.eos_token_id, tokenizer),
            default_max_tokens=default_max_tokens,
        )
        self.base = model.eval()
        self.adapters = AdapterCache(model, max_adapters)
        self.lock = threading.RLock()
        self.device = torch.device(device)

    def _prepare(self, adapter_dir: Path) -> None:
        with self.lock:  # load now so errors surface here, not mid-stream
            self.adapters.get(adapter_dir)

    @contextmanager
    def _session(self, adapter_dir: Path | None, prompt: list[int]) -> Iterator[Forward]:
        if self.device.type == "cpu":
            use_all_cores()  # this thread may have sampled for llama.cpp on one
        with self.lock:
            model = self.base if adapter_dir is None else self.adapters.get(adapter_dir)
        caches = [DynamicCache(config=self.base.config)]  # cleared when the stream ends

        def forward(ids: list[int]) -> torch.Tensor:
            with self.lock, torch.inference_mode():
                out = model(
                    input_ids=torch.tensor([ids], device=self.device),
                    past_key_values=caches[0],
                    use_cache=True,
                    logits_to_keep=1,
                )
            return out.logits[0, -1]

        try:
            yield forward
        finally:
            caches.clear()
            if len(prompt) >= LONG_PROMPT:
                release_memory()

"""Chat generation: a manual KV-cache decode loop that streams text as tokens arrive.

One :class:`ChatModel` per base model holds the model, its tokenizer and a bounded LRU of
LoRA adapters (:class:`AdapterCache`, all loaded as named adapters of one PEFT model). A
lock is taken around every forward pass (not the whole request), so concurrent streams
interleave token by token; each pass first selects its stream's adapter.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from trainer.engine import Generation, GenerationParams
from trainer.ml.checkpoints import is_adapter_dir
from trainer.ml.data import ChatTokenizer
from trainer.ml.lora import ADAPTER_WEIGHTS


class AdapterCache:
    """At most ``max_adapters`` LoRA adapters loaded into one PEFT model, LRU-evicted.

    Adapters in use by a running stream are pinned and never evicted (the bound may be
    exceeded while every loaded adapter is pinned). Call only with the owner's lock held.
    """

    def __init__(self, base: PreTrainedModel, max_adapters: int = 4) -> None:
        if max_adapters < 1:
            raise ValueError("max_adapters must be >= 1")
        self.base = base
        self.max_adapters = max_adapters
        self.model: Any = None  # PeftModel once the first adapter is loaded
        self._entries: OrderedDict[str, tuple[tuple[str, int], int]] = OrderedDict()
        self._counter = 0
        self.loads = 0
        self.active: str | None = None

    @staticmethod
    def key(adapter_dir: Path) -> tuple[str, int]:
        """Identity of an adapter on disk: resolved path + weights mtime (rewrites reload)."""
        path = adapter_dir.resolve()
        return str(path), (path / ADAPTER_WEIGHTS).stat().st_mtime_ns

    def names(self) -> list[str]:
        """Loaded adapter names, least recently used first."""
        return list(self._entries)

    def acquire(self, adapter_dir: Path) -> str:
        """Load (or reuse) the adapter, mark it most recently used, pin it; returns its name."""
        key = self.key(adapter_dir)
        for name, (k, pins) in self._entries.items():
            if k == key:
                self._entries[name] = (k, pins + 1)
                self._entries.move_to_end(name)
                return name
        self._counter += 1
        name = f"a{self._counter}"
        if self.model is None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.base, str(adapter_dir), adapter_name=name)
            self.model.eval()
            self.active = name
        else:
            self.model.load_adapter(str(adapter_dir), adapter_name=name)
        self.loads += 1
        self._entries[name] = (key, 1)
        self._evict()
        return name

    def release(self, name: str) -> None:
        """Unpin an adapter taken with :meth:`acquire`."""
        if name in self._entries:
            k, pins = self._entries[name]
            self._entries[name] = (k, max(0, pins - 1))
            self._evict()

    def _evict(self) -> None:
        while len(self._entries) > self.max_adapters:
            victim = next((n for n, (_, pins) in self._entries.items() if pins == 0), None)
            if victim is None:
                return
            if self.active == victim:
                survivor = next(n for n in self._entries if n != victim)
                self.model.set_adapter(survivor)
                self.active = survivor
            self.model.delete_adapter(victim)
            del self._entries[victim]

    def select(self, name: str | None) -> contextlib.AbstractContextManager[Any]:
        """Context in which a forward pass uses adapter ``name`` (``None``: the base model)."""
        if self.model is None:
            return contextlib.nullcontext()
        if name is None:
            return self.model.disable_adapter()
        if self.active != name:
            self.model.set_adapter(name)
            self.active = name
        return contextlib.nullcontext()

    def forward_model(self) -> Any:
        """The module to call: the PEFT wrapper once adapters exist, else the base model."""
        return self.model if self.model is not None else self.base


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> int:
    """Greedy for ``temperature <= 0``, else temperature + nucleus (top-p) sampling."""
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits.float() / temperature
    if top_p < 1.0:
        sorted_logits, idx = logits.sort(descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p  # mass before this token already >= top_p
        sorted_logits[drop] = float("-inf")
        logits = torch.full_like(logits, float("-inf")).scatter_(0, idx, sorted_logits)
    probs = logits.softmax(-1)
    return int(torch.multinomial(probs, 1, generator=generator))


class IncrementalDetokenizer:
    """Turns a growing token list into text deltas (prefix/read offsets, as in TGI/vLLM)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

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


class ChatModel:
    """A base model ready for chat: tokenizer, template, adapters, decode loop."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_adapters: int = 4,
        default_max_tokens: int = 1024,
        device: torch.device | str = "cpu",
    ) -> None:
        self.base = model.eval()
        self.tokenizer = tokenizer
        self.chat = ChatTokenizer(tokenizer)
        self.adapters = AdapterCache(model, max_adapters)
        self.lock = threading.RLock()
        self.default_max_tokens = default_max_tokens
        self.device = torch.device(device)
        self.context_length = int(getattr(model.config, "max_position_embeddings", 2048))
        eos: set[int] = set()
        for source in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
            if isinstance(source, int):
                eos.add(source)
            elif source:
                eos.update(int(x) for x in source)
        self.eos_ids = frozenset(eos)

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
            with self.lock:  # load now so errors surface here, not mid-stream
                self.adapters.release(self.adapters.acquire(adapter_dir))
        prompt = self.chat.encode_prompt(messages)
        room = self.context_length - len(prompt)
        if room <= 0:
            raise ValueError(
                f"prompt is {len(prompt)} tokens; the model's context is {self.context_length}"
            )
        max_new = min(room, params.max_tokens or self.default_max_tokens)
        if max_new < 1:
            raise ValueError("max_tokens must be >= 1")
        gen = Generation(deltas=iter(()), prompt_tokens=len(prompt))
        gen.deltas = self._stream(gen, prompt, params, adapter_dir, max_new, t0)
        return gen

    def _forward(self, adapter: str | None, ids: list[int], cache: DynamicCache) -> torch.Tensor:
        with self.lock, torch.inference_mode():
            with self.adapters.select(adapter):
                out = self.adapters.forward_model()(
                    input_ids=torch.tensor([ids], device=self.device),
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
        return out.logits[0, -1]

    def _stream(
        self,
        gen: Generation,
        prompt: list[int],
        params: GenerationParams,
        adapter_dir: Path | None,
        max_new: int,
        t0: float,
    ) -> Iterator[str]:
        adapter = None
        if adapter_dir is not None:
            with self.lock:
                adapter = self.adapters.acquire(adapter_dir)
        try:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(
                params.seed if params.seed is not None else int.from_bytes(os.urandom(8), "little")
            )
            detok = IncrementalDetokenizer(self.tokenizer)
            stops = StopMatcher(params.stop)
            cache = DynamicCache(config=self.base.config)
            logits = self._forward(adapter, prompt, cache)
            gen.finish_reason = "length"
            hit = False
            while gen.completion_tokens < max_new:
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
                    logits = self._forward(adapter, [token], cache)
            if not hit:  # ended by EOS or length: release held-back text
                out, hit = stops.feed(detok.flush())
                if hit:
                    gen.finish_reason = "stop"
                else:
                    out += stops.flush()
                if out:
                    gen.extra.setdefault("time_to_first_token_s", time.perf_counter() - t0)
                    yield out
            gen.extra["seconds"] = time.perf_counter() - t0
        finally:
            if adapter is not None:
                with self.lock:
                    self.adapters.release(adapter)

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        params: GenerationParams,
        adapter_dir: Path | None = None,
    ) -> tuple[str, Generation]:
        """Non-streaming convenience: the whole text and the finished :class:`Generation`."""
        gen = self.generate(messages, params, adapter_dir)
        return "".join(gen.deltas), gen

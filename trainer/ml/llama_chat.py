"""Chat on llama.cpp (through llama-cpp-python's low-level API): the fast CPU path.

Only the forward pass moves to llama.cpp. Prompts are still built and tokenised by the
trainer's :class:`~trainer.ml.data.ChatTokenizer` (markup typed by a user stays text), and
sampling, seeds, stop strings, text deltas and usage are :class:`StreamingChat`'s, so both
backends answer alike. Each model (the base, or a fine-tune with its adapter merged in, see
:mod:`trainer.ml.serving`) is one ``llama_model`` mapped from its GGUF file, with contexts
(each its own KV cache) handed to streams: one idle context is kept per model, a stream
that finds none creates one. A lock is held around every ``llama_decode`` so concurrent
streams interleave token by token; llama.cpp releases the GIL while it computes.

Fine-tunes are kept in a bounded LRU like the torch path's; an evicted model is freed once
no stream uses it. Every context is cleared when a stream takes it (no KV reuse between
requests, so nothing of one stream can leak into another).

With ``exact_attention`` (the float formats) contexts keep their KV cache in F32 and compute
attention without llama.cpp's flash-attention kernel, which rounds through F16: llama.cpp's
logits then stay within about 1e-4 of PyTorch fp32's instead of 1e-2, so greedy answers
follow PyTorch's even at near ties (``bench.bench_trainer_formats``). Quantised formats keep
llama.cpp's faster defaults; their weights differ from PyTorch's anyway.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from trainer.ml.generation import PREFILL_CHUNK, AdapterCache, Forward, StreamingChat


def available() -> bool:
    """True when llama-cpp-python can be imported here."""
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken build is as good as none
        return False
    return True


def _sample_serially() -> None:
    """Run this thread's torch operations (sampling) on one thread.

    llama.cpp computes on its own threads; torch would otherwise open an OpenMP team for the
    sampler's few operations on every token, whose workers then spin-wait for milliseconds
    on the cores llama.cpp needs (measured: decode at half speed). OpenMP's thread count is
    per thread, so this leaves torch's training threads in other threads alone. Checked on
    every stream, not once per thread: anything that calls ``torch.set_num_threads`` in a
    thread (an engine made there, say) raises its count again.
    """
    if torch.get_num_threads() == 1:  # also torch's own first-use set-up of this thread,
        return                        # which would otherwise undo ours later
    omp_set_num_threads = _omp_set_num_threads()
    if omp_set_num_threads is not None:
        omp_set_num_threads(1)


@functools.cache
def _omp_set_num_threads() -> Callable[[int], None] | None:
    """OpenMP's per-thread setter in the runtime torch uses; None for a torch without one."""
    library = Path(torch.__file__).parent / "lib" / "libgomp.so.1"
    try:
        gomp = ctypes.CDLL(str(library) if library.exists() else "libgomp.so.1")
        setter: Callable[[int], None] = gomp.omp_set_num_threads
    except (OSError, AttributeError):  # torch without OpenMP: nothing spins
        return None
    return setter


@functools.cache
def _llama() -> Any:
    import llama_cpp
    import llama_cpp._logger

    llama_cpp._logger.set_verbose(False)  # llama.cpp's own log: errors only
    return llama_cpp


@dataclass
class Slot:
    """A llama.cpp context (one KV cache) and the batch that feeds it."""

    ctx: Any
    batch: Any

    def close(self) -> None:
        self.batch.close()
        self.ctx.close()


class LoadedModel:
    """One ``llama_model`` and the contexts streams borrow from it."""

    def __init__(self, path: Path, *, n_ctx: int, n_threads: int, exact_attention: bool = False) -> None:
        from llama_cpp._internals import LlamaModel

        llama = _llama()
        self.path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.exact_attention = exact_attention
        params = llama.llama_model_default_params()
        params.n_gpu_layers = 0
        self.model = LlamaModel(path_model=str(path), params=params, verbose=True)
        self.n_vocab = int(llama.llama_vocab_n_tokens(self.model.vocab))
        self.idle: list[Slot] = []
        self.users = 0
        self.evicted = False
        self._lock = threading.Lock()

    def _new_context(self) -> Slot:
        from llama_cpp._internals import LlamaBatch, LlamaContext

        llama = _llama()
        params = llama.llama_context_default_params()
        params.n_ctx = self.n_ctx
        params.n_batch = params.n_ubatch = PREFILL_CHUNK
        params.n_seq_max = 1
        params.n_threads = params.n_threads_batch = self.n_threads
        params.no_perf = True
        if self.exact_attention:
            params.flash_attn_type = llama.LLAMA_FLASH_ATTN_TYPE_DISABLED
            params.type_k = params.type_v = llama.GGML_TYPE_F32
        ctx = LlamaContext(model=self.model, params=params, verbose=True)
        return Slot(ctx, LlamaBatch(n_tokens=PREFILL_CHUNK, embd=0, n_seq_max=1, verbose=True))

    def context(self) -> Slot:
        """A cleared context for a stream that checked this model out (see
        :meth:`LlamaModels.checkout`); give both back with :meth:`release`."""
        with self._lock:
            if self.model.model is None:
                raise RuntimeError("the chat model was closed (the trainer is stopping)")
            ctx = self.idle.pop() if self.idle else None
        if ctx is None:
            ctx = self._new_context()
        _llama().llama_memory_clear(ctx.ctx.memory, True)
        return ctx

    def release(self, ctx: Slot | None) -> None:
        """Give back a checkout (and its context, if it took one); the last user of an
        evicted model frees it."""
        with self._lock:
            self.users -= 1
            if ctx is not None:
                if self.idle or self.evicted or self.model.model is None:
                    ctx.close()
                else:
                    self.idle.append(ctx)
            free = self.evicted and self.users == 0
        if free:
            self.close()

    def close(self) -> None:
        """Free the contexts and the model (call when no stream uses them)."""
        with self._lock:
            idle, self.idle = self.idle, []
        for ctx in idle:
            ctx.close()
        self.model.close()


class LlamaModels:
    """The base model plus at most ``max_adapters`` merged fine-tunes, LRU-evicted.

    ``loads`` counts fine-tunes loaded; :meth:`names` lists them least recently used first
    (the same inspection surface as :class:`~trainer.ml.generation.AdapterCache`).
    """

    def __init__(self, base: LoadedModel, gguf_for: Callable[[Path], Path],
                 load: Callable[[Path], LoadedModel], max_adapters: int = 4) -> None:
        if max_adapters < 1:
            raise ValueError("max_adapters must be >= 1")
        self.base = base
        self.max_adapters = max_adapters
        self._gguf_for = gguf_for
        self._load = load
        self._entries: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def names(self) -> list[str]:
        """Loaded adapter paths, least recently used first."""
        with self._lock:
            return [path for path, _ in self._entries]

    def checkout(self, adapter_dir: Path | None) -> LoadedModel:
        """The model for ``adapter_dir`` (None: the base), loaded on a miss, with one more
        user: it is not freed before the matching :meth:`LoadedModel.release`."""
        key = None if adapter_dir is None else AdapterCache.key(adapter_dir)
        with self._lock:
            entry = self.base if key is None else self._entries.get(key)
            if entry is not None:
                return self._use(key, entry)
        assert adapter_dir is not None and key is not None
        loaded = self._load(self._gguf_for(adapter_dir))  # slow: outside the lock
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:  # another stream loaded it meanwhile
                loaded.close()
                return self._use(key, entry)
            self.loads += 1
            self._entries[key] = loaded
            while len(self._entries) > self.max_adapters:
                _, old = self._entries.popitem(last=False)
                self._evict(old)
            return self._use(key, loaded)

    def _use(self, key: tuple[str, int] | None, entry: LoadedModel) -> LoadedModel:
        if key is not None:
            self._entries.move_to_end(key)
        with entry._lock:
            entry.users += 1
        return entry

    @staticmethod
    def _evict(entry: LoadedModel) -> None:
        with entry._lock:
            entry.evicted = True
            free = entry.users == 0
        if free:
            entry.close()

    def close(self) -> None:
        """Free every model (engine shutdown)."""
        with self._lock:
            entries = [self.base, *self._entries.values()]
            self._entries.clear()
        for entry in entries:
            entry.close()


_OPEN: weakref.WeakSet[LlamaChatModel] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Free llama.cpp's models before the interpreter tears modules down (their
    ``__del__`` would otherwise run against half-destroyed globals)."""
    for chat in list(_OPEN):
        chat.close()


class LlamaChatModel(StreamingChat):
    """Chat for one base model on llama.cpp (see the module docstring)."""

    def __init__(
        self,
        base_gguf: Path,
        tokenizer: PreTrainedTokenizerBase,
        *,
        gguf_for: Callable[[Path], Path],
        context_length: int,
        eos_ids: frozenset[int],
        n_threads: int,
        exact_attention: bool = False,
        max_adapters: int = 4,
        default_max_tokens: int = 1024,
    ) -> None:
        super().__init__(tokenizer, context_length=context_length, eos_ids=eos_ids,
                         default_max_tokens=default_max_tokens)
        self.n_threads = n_threads
        self.exact_attention = exact_attention
        self.lock = threading.Lock()
        self.models = LlamaModels(self._load(base_gguf), gguf_for, self._load, max_adapters)
        self.adapters = self.models  # the inspection surface both backends share
        self._closed = False
        _OPEN.add(self)

    def _load(self, path: Path) -> LoadedModel:
        return LoadedModel(path, n_ctx=self.context_length, n_threads=self.n_threads,
                           exact_attention=self.exact_attention)

    def _prepare(self, adapter_dir: Path) -> None:
        self.models.checkout(adapter_dir).release(None)

    @contextmanager
    def _session(self, adapter_dir: Path | None, prompt: list[int]) -> Iterator[Forward]:
        llama = _llama()
        _sample_serially()
        entry = self.models.checkout(adapter_dir)
        try:
            ctx = entry.context()
        except BaseException:
            entry.release(None)
            raise
        batch, native = ctx.batch, ctx.ctx
        n_vocab = entry.n_vocab
        position = 0

        def forward(ids: list[int]) -> torch.Tensor:
            nonlocal position
            with self.lock:
                if self._closed:
                    raise RuntimeError("the chat model was closed (the trainer is stopping)")
                batch.set_batch(ids, position, False)
                native.decode(batch)
                pointer = llama.llama_get_logits_ith(native.ctx, -1)
                logits = np.ctypeslib.as_array(
                    ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,)
                ).copy()  # llama.cpp reuses the buffer on the next decode
            position += len(ids)
            return torch.from_numpy(logits)

        try:
            yield forward
        finally:
            entry.release(ctx)

    def close(self) -> None:
        """Free llama.cpp's models and contexts (idempotent). Waits for a decode step in
        flight; a stream still running afterwards ends with an error, not a crash."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            self.models.close()

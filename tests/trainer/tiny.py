"""A tiny, randomly initialised Llama chat model built on the fly (nothing downloaded).

Same architecture family as SmolLM2 (``LlamaForCausalLM``, tied embeddings, GQA) and the
same ChatML template, with a byte-level BPE tokenizer trained in milliseconds on a small
corpus. Used by the ML tests and reusable by the server tests::

    from tests.trainer.tiny import make_tiny_engine
    engine = make_tiny_engine(tmp_path)          # LocalEngine with base model "tiny-llama"
    engine.generate("tiny-llama", None, [{"role": "user", "content": "hi"}], GenerationParams())
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

TINY_MODEL_ID = "tiny-llama"


def _llama_available() -> bool:
    from trainer.ml.llama_chat import available

    return available()


BACKENDS = [
    "torch",
    pytest.param("llama", marks=pytest.mark.skipif(not _llama_available(),
                                                   reason="llama-cpp-python is not installed")),
]
"""Chat backends the chat tests run on, for ``parametrize``; llama.cpp reads exact F32 files
made from the tiny model (``chat_format="f32"``), so both give the same tokens."""

# SmolLM2-135M-Instruct's ChatML template (default system prompt when none is given).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a tiny test assistant.<|im_end|>\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "You are a tiny test assistant.",
    "ping pong ping pong the quick brown fox jumps over the lazy dog",
    "What is the capital of France? Paris. What is two plus two? Four.",
    "Marv is a factual chatbot that is also sarcastic.",
    "hello world, how are you today? I am fine, thank you very much!",
    "system user assistant tool 0 1 2 3 4 5 6 7 8 9",
]
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def make_tiny_tokenizer(vocab_size: int = 384) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` with ChatML special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|im_end|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def make_tiny_model_dir(path: Path | str, seed: int = 0, hidden_size: int = 64,
                        num_layers: int = 2) -> Path:
    """Write a tiny random ``LlamaForCausalLM`` + tokenizer HF directory at ``path``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tokenizer = make_tiny_tokenizer()
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=eos,
        pad_token_id=eos,
        initializer_range=0.1,  # large enough for LoRA alone to move the (tied) logits
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=eos, pad_token_id=eos
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_tiny_engine(tmp_path: Path | str, **engine_kwargs: Any) -> Any:
    """A ``LocalEngine`` over ``tmp_path`` whose only base model is ``TINY_MODEL_ID``."""
    from trainer.ml.engine import LocalEngine
    from trainer.ml.registry import ModelRegistry

    tmp_path = Path(tmp_path)
    model_dir = tmp_path / "tiny-model"
    if not (model_dir / "config.json").is_file():
        make_tiny_model_dir(model_dir)
    registry = ModelRegistry(tmp_path / "data", include_default=False)
    registry.register_path(TINY_MODEL_ID, model_dir)
    return LocalEngine(tmp_path / "data", registry=registry, device="cpu", **engine_kwargs)

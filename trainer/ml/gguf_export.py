"""A Llama-family model (base or fine-tune with its adapter merged) written as a GGUF file.

llama.cpp serves chat from these files (:mod:`trainer.ml.llama_chat`). The layout follows
llama.cpp's ``llama`` architecture: tensors renamed ``blk.N.attn_q.weight`` and so on, the
query and key projections permuted from Hugging Face's rotate-half rope layout to
llama.cpp's interleaved one, norms kept in F32, every other matrix in the chosen format.
The tokenizer goes in as a GPT-2 style BPE vocabulary (tokens, types, merges, special ids,
chat template) so that the file also works in llama.cpp's own tools; the trainer itself
always tokenises with the Hugging Face tokenizer and hands llama.cpp token ids.

Only plain ``LlamaForCausalLM`` configurations export (no rope scaling, no biases, the
standard head size): :func:`export_problem` says why another one does not, and such a
model is served by the torch path instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trainer.config import CHAT_FORMATS
from trainer.datadir import PRIVATE_FILE, partial_name

FORMATS = CHAT_FORMATS
"""GGUF tensor formats the exporter writes. Norms are always F32; with ``q4_0`` the token
embedding (also the output head of a tied model) is Q8_0, as in llama.cpp's own Q4 files."""
FLOAT_FORMATS = ("f32", "f16", "bf16")
"""The formats that keep every weight a float (chat on them computes attention exactly too)."""
QUANT_BLOCK = 32
"""Q8_0 and Q4_0 pack rows in blocks of 32 values; a row of another length falls back to F16."""

_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_TOP_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
# llama.cpp token types
_NORMAL, _CONTROL, _USER_DEFINED, _UNUSED = 1, 3, 4, 5


def export_problem(config: Any) -> str | None:
    """Why ``config`` cannot be written as a llama.cpp ``llama`` GGUF (None when it can)."""
    if getattr(config, "model_type", None) != "llama":
        return f"model type {getattr(config, 'model_type', None)!r} is not 'llama'"
    rope = _rope(config)
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        return "rope scaling is not supported"
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return "biases are not supported"
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if head_dim * config.num_attention_heads != config.hidden_size:
        return "the head size is not hidden_size / heads"
    return None


def _rope(config: Any) -> dict[str, Any]:
    """Rope settings wherever the transformers version keeps them."""
    for attr in ("rope_parameters", "rope_scaling"):
        value = getattr(config, attr, None)
        if isinstance(value, Mapping):
            return dict(value)
    return {}


def _rope_theta(config: Any) -> float:
    theta = _rope(config).get("rope_theta") or getattr(config, "rope_theta", None)
    return float(theta or 10000.0)


def gguf_name(hf_name: str) -> str | None:
    """The GGUF tensor name of a Hugging Face Llama parameter (None: not exported)."""
    if hf_name in _TOP_NAMES:
        return _TOP_NAMES[hf_name]
    parts = hf_name.split(".")
    if len(parts) >= 5 and parts[0] == "model" and parts[1] == "layers" and parts[-1] == "weight":
        inner = ".".join(parts[3:-1])
        if inner in _LAYER_NAMES:
            return f"blk.{int(parts[2])}.{_LAYER_NAMES[inner]}.weight"
    return None


def rope_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder a q/k projection's output rows from rotate-half to interleaved rope pairs."""
    rows = weight.shape[0]
    return (
        weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _rope_rows(name: str, rows: np.ndarray, config: Any) -> np.ndarray:
    """``rows`` (output rows of the matrix ``name``, or a LoRA B of it) in llama.cpp's order."""
    if name.endswith("attn_q.weight"):
        return rope_permute(rows, config.num_attention_heads)
    if name.endswith("attn_k.weight"):
        return rope_permute(rows, config.num_key_value_heads)
    return rows


def _tensors(state: Mapping[str, Any], config: Any) -> Iterator[tuple[str, np.ndarray]]:
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in state.items():
        name = gguf_name(hf_name)
        if name is None or (tied and name == "output.weight"):
            continue
        yield name, _rope_rows(name, tensor.detach().to("cpu").float().numpy(), config)


def _write_atomically(path: Path, fill: Callable[[Any], None]) -> Path:
    """A GGUF file at ``path`` (0600) whose keys and tensors ``fill`` adds to a writer;
    written under :func:`~trainer.datadir.partial_name` and renamed, so a crash leaves only
    a temporary name the next start removes."""
    from gguf import GGUFWriter

    tmp = partial_name(path)
    writer = GGUFWriter(tmp, "llama")
    try:
        fill(writer)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp, PRIVATE_FILE)
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return path


def _encode(name: str, data: np.ndarray, fmt: str) -> tuple[np.ndarray, Any]:
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import quantize

    if data.ndim == 1 or fmt == "f32":
        return data.astype(np.float32), None
    if fmt == "q4_0" and name == "token_embd.weight":
        fmt = "q8_0"
    if fmt in ("q8_0", "q4_0") and data.shape[-1] % QUANT_BLOCK == 0:
        kind = Q.Q8_0 if fmt == "q8_0" else Q.Q4_0
        return quantize(data, kind), kind
    if fmt == "bf16":
        return quantize(data, Q.BF16), Q.BF16
    return data.astype(np.float16), None


def _file_type(fmt: str) -> int:
    from gguf import LlamaFileType

    return int({
        "f32": LlamaFileType.ALL_F32,
        "f16": LlamaFileType.MOSTLY_F16,
        "bf16": LlamaFileType.MOSTLY_BF16,
        "q8_0": LlamaFileType.MOSTLY_Q8_0,
        "q4_0": LlamaFileType.MOSTLY_Q4_0,
    }[fmt])


def _add_vocab(writer: Any, tokenizer: Any, vocab_size: int) -> None:
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = dict(getattr(tokenizer, "added_tokens_decoder", {}))
    special = set(tokenizer.all_special_ids) | {
        i for i, token in added.items() if getattr(token, "special", False)
    }
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(_UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(_CONTROL if i in special else _USER_DEFINED if i in added else _NORMAL)
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for kind, token_id in (
        ("bos", tokenizer.bos_token_id),
        ("eos", tokenizer.eos_token_id),
        ("unk", tokenizer.unk_token_id),
        ("pad", tokenizer.pad_token_id),
    ):
        if token_id is not None:
            getattr(writer, f"add_{kind}_token_id")(int(token_id))
    writer.add_add_bos_token(False)
    if isinstance(getattr(tokenizer, "chat_template", None), str):
        writer.add_chat_template(tokenizer.chat_template)


def _add_model(writer: Any, model: Any, tokenizer: Any, fmt: str, name: str) -> None:
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_type("model")
    writer.add_name(name)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(_file_type(fmt))
    writer.add_quantization_version(2)
    _add_vocab(writer, tokenizer, config.vocab_size)
    for tensor_name, data in _tensors(model.state_dict(), config):
        encoded, raw_dtype = _encode(tensor_name, data, fmt)
        writer.add_tensor(tensor_name, encoded, raw_dtype=raw_dtype)


def write_gguf(model: Any, tokenizer: Any, path: Path | str, fmt: str = "q8_0",
               name: str = "tunecord") -> Path:
    """Write ``model`` (a ``LlamaForCausalLM``, LoRA already merged) to ``path`` atomically.

    Raises ``ValueError`` for an unknown format or a model :func:`export_problem` refuses.
    """
    if fmt not in FORMATS:
        raise ValueError(f"GGUF format must be one of {FORMATS}, got {fmt!r}")
    config = model.config
    problem = export_problem(config)
    if problem:
        raise ValueError(f"cannot export to GGUF: {problem}")
    return _write_atomically(Path(path), lambda writer: _add_model(writer, model, tokenizer, fmt, name))


def write_lora_gguf(adapter_dir: Path | str, config: Any, path: Path | str) -> Path:
    """Write a PEFT LoRA adapter of a Llama ``config`` as a llama.cpp GGUF LoRA (F32).

    llama.cpp applies it unmerged (``--lora``), scaled by alpha / rank as PEFT does. The
    trainer serves merged files instead (faster per token); this file is for people who
    run the community's fine-tune on llama.cpp themselves, and for the benchmarks.
    """
    from safetensors.numpy import load_file

    from trainer.ml.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS

    adapter_dir = Path(adapter_dir)
    settings = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    weights = load_file(str(adapter_dir / ADAPTER_WEIGHTS))

    def fill(writer: Any) -> None:
        writer.add_type("adapter")
        writer.add_string("adapter.type", "lora")
        writer.add_float32("adapter.lora.alpha", float(settings["lora_alpha"]))
        for key in sorted(weights):
            module, _, part = key.removeprefix("base_model.model.").rpartition(".lora_")
            name = gguf_name(f"{module}.weight")
            if name is None or part not in ("A.weight", "B.weight"):
                raise ValueError(f"cannot place LoRA tensor {key} in a llama GGUF")
            data = weights[key].astype(np.float32)
            if part == "B.weight":  # B's rows are the projection's output rows
                data = _rope_rows(name, data, config)
            writer.add_tensor(f"{name}.lora_{part[0].lower()}", data)

    return _write_atomically(Path(path), fill)

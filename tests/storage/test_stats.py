"""Dataset statistics: the trigger-maintained totals agree with a Python recomputation."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.dataset.pricing import PriceCatalogue
from bot.dataset.tokens import count_example
from bot.services.counting import Counting, counting_for_model, fill_missing_counts
from storage.records import DatasetStats, ExampleStatus
from storage.store import Storage
from tests.storage.helpers import GUILD_A, example

CATALOGUE = PriceCatalogue.load()
ENCODINGS = ("cl100k_base", "o200k_base")
STATUSES = tuple(ExampleStatus)
CAP = 50

_status = st.sampled_from(STATUSES)
_counts = st.dictionaries(st.sampled_from(ENCODINGS), st.integers(0, 100), max_size=2)
_op = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 1), st.integers(0, 30), _status, _counts),
    st.tuples(st.just("status"), st.integers(0, 50), _status),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("count"), st.integers(0, 50), st.sampled_from(ENCODINGS), st.integers(0, 100)),
    st.tuples(st.just("edit"), st.integers(0, 50), st.integers(31, 60)),
)


def _expected(model: dict[int, dict], dataset: int, encoding: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for status in STATUSES:
        rows = [r for r in model.values() if r["dataset"] == dataset and r["status"] == status]
        counted = [r["counts"][encoding] for r in rows if encoding in r["counts"]]
        out[status.value] = (len(rows), len(counted), sum(counted), sum(min(n, CAP) for n in counted))
    return out


def _actual(stats: DatasetStats) -> dict[str, tuple[int, ...]]:
    return {
        status.value: (s.examples, s.counted, s.tokens, s.billed_tokens)
        for status in STATUSES
        for s in [stats.for_status(status)]
    }


async def _run(path: Path, ops: list[tuple]) -> None:
    store = await Storage.open(path)
    try:
        datasets = [(await store.datasets.create(GUILD_A, name)).id for name in ("a", "b")]
        model: dict[int, dict] = {}
        for op in ops:
            ids = sorted(model)
            if op[0] == "add":
                _, which, n, status, counts = op
                dataset = datasets[which]
                if any(r["dataset"] == dataset and r["n"] == n for r in model.values()):
                    continue
                record = await store.examples.add(
                    GUILD_A, dataset, example(n), status=status, token_counts=counts,
                    billed_cap=CAP,
                )
                model[record.id] = {"dataset": dataset, "n": n, "status": status,
                                    "counts": dict(counts)}
            elif not ids:
                continue
            elif op[0] == "status":
                example_id = ids[op[1] % len(ids)]
                await store.examples.set_status(GUILD_A, example_id, op[2])
                model[example_id]["status"] = op[2]
            elif op[0] == "delete":
                example_id = ids[op[1] % len(ids)]
                assert await store.examples.delete(GUILD_A, example_id)
                del model[example_id]
            elif op[0] == "count":
                example_id = ids[op[1] % len(ids)]
                await store.examples.store_token_counts(
                    GUILD_A, op[2], [(example_id, op[3])], billed_cap=CAP
                )
                model[example_id]["counts"][op[2]] = op[3]
            elif op[0] == "edit":
                example_id = ids[op[1] % len(ids)]
                row = model[example_id]
                if any(r["dataset"] == row["dataset"] and r["n"] == op[2] for r in model.values()):
                    continue
                await store.examples.update_content(GUILD_A, example_id, example(op[2]))
                row["n"], row["counts"] = op[2], {}
        for dataset in datasets:
            for encoding in ENCODINGS:
                expected = _expected(model, dataset, encoding)
                assert _actual(await store.examples.stats(GUILD_A, dataset, encoding)) == expected
                assert _actual(
                    await store.examples.stats_from_rows(GUILD_A, dataset, encoding)
                ) == expected
        # The repair tool rebuilds exactly what the triggers maintained.
        for dataset in datasets:
            await store.examples.rebuild_stats(GUILD_A, dataset)
            for encoding in ENCODINGS:
                stats = await store.examples.stats(GUILD_A, dataset, encoding)
                assert _actual(stats) == _expected(model, dataset, encoding)
    finally:
        await store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_op, max_size=40))
def test_stats_match_a_python_recomputation(ops):
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(Path(tmp) / "stats.sqlite3", ops))


async def test_empty_dataset_and_totals(tmp_db_path):
    store = await Storage.open(tmp_db_path)
    try:
        dataset = await store.datasets.create(GUILD_A, "empty")
        stats = await store.examples.stats(GUILD_A, dataset.id, "o200k_base")
        assert stats.total.examples == 0 and stats.uncounted == 0
        await store.examples.add(GUILD_A, dataset.id, example(1), token_counts={"o200k_base": 10})
        await store.examples.add(GUILD_A, dataset.id, example(2), status="approved")
        stats = await store.examples.stats(GUILD_A, dataset.id, "o200k_base")
        assert (stats.total.examples, stats.total.counted, stats.uncounted) == (2, 1, 1)
        assert stats.approved.uncounted == 1 and stats.pending.tokens == 10
        # Deleting the dataset removes its totals with it.
        await store.datasets.delete(GUILD_A, dataset.id)
        assert await store.db.fetchval("SELECT count(*) FROM dataset_status_counts") == 0
        assert await store.db.fetchval("SELECT count(*) FROM dataset_token_totals") == 0
    finally:
        await store.close()


async def test_uncounted_examples_are_fetched_in_batches_counted_and_cached(tmp_db_path):
    store = await Storage.open(tmp_db_path)
    try:
        dataset = await store.datasets.create(GUILD_A, "d", base_model="gpt-3.5-turbo")
        counting = counting_for_model(dataset.base_model, CATALOGUE)
        assert counting == Counting("cl100k_base", 16_385)
        added = [await store.examples.add(GUILD_A, dataset.id, example(n, turns=2))
                 for n in range(12)]
        await store.examples.store_token_counts(GUILD_A, "cl100k_base", [(added[0].id, 5)])
        first = await store.examples.uncounted(GUILD_A, dataset.id, "cl100k_base", limit=5)
        assert [r.id for r in first] == [r.id for r in added[1:6]]
        assert await fill_missing_counts(
            store.examples, GUILD_A, dataset.id, counting, batch_size=4
        ) == 11
        assert await store.examples.uncounted(GUILD_A, dataset.id, "cl100k_base") == []
        stats = await store.examples.stats(GUILD_A, dataset.id, "cl100k_base")
        expected = 5 + sum(count_example(r.example, "cl100k_base") for r in added[1:])
        assert stats.pending.tokens == expected and stats.uncounted == 0
        # Another encoding is still uncounted: counts are cached per encoding.
        assert (await store.examples.stats(GUILD_A, dataset.id, "o200k_base")).uncounted == 12
    finally:
        await store.close()


def test_counting_for_unknown_or_missing_models_falls_back():
    assert counting_for_model(None, CATALOGUE) == Counting("o200k_base")
    assert counting_for_model("no-such-model", CATALOGUE) == Counting("o200k_base")
    assert counting_for_model("gpt-4o-mini", CATALOGUE).encoding == "o200k_base"

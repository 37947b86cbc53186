"""Which encoding (and billing cap) a dataset counts with, and filling its count cache."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.dataset.pricing import PriceCatalogue, UnknownModel
from bot.dataset.tokens import FALLBACK_ENCODING, count_examples, encoding_for_model
from storage.examples import DEFAULT_BILLED_CAP, ExampleRepository


@dataclass(frozen=True)
class Counting:
    """How to count a dataset's tokens: the encoding, and the most tokens billed per example
    (the model's training context; longer examples are truncated)."""

    encoding: str
    billed_cap: int = DEFAULT_BILLED_CAP


def counting_for_model(model: str | None, catalogue: PriceCatalogue) -> Counting:
    """The counting for ``model`` in the bot's catalogue (the one it was started with);
    an unknown or missing model counts with o200k_base."""
    if not model:
        return Counting(FALLBACK_ENCODING)
    price = catalogue.find(model)
    if price is not None:
        return Counting(price.encoding, price.training_context)
    try:
        return Counting(encoding_for_model(model, catalogue))
    except UnknownModel:
        return Counting(FALLBACK_ENCODING)


async def fill_missing_counts(
    examples: ExampleRepository,
    guild_id: int,
    dataset_id: int,
    counting: Counting,
    *,
    batch_size: int = 500,
) -> int:
    """Count and cache every example of the dataset that has no count for the encoding.

    Tokenising runs in a worker thread, a batch at a time, so the event loop stays free.
    Returns how many examples were counted.
    """
    counted = 0
    after_id = 0
    while True:
        batch = await examples.uncounted(
            guild_id, dataset_id, counting.encoding, after_id=after_id, limit=batch_size
        )
        if not batch:
            return counted
        results = await asyncio.to_thread(
            count_examples, [r.example for r in batch], counting.encoding
        )
        counted += await examples.store_token_counts(
            guild_id,
            counting.encoding,
            [(r.id, result.tokens) for r, result in zip(batch, results, strict=True)],
            billed_cap=counting.billed_cap,
        )
        after_id = batch[-1].id

"""Which encoding (and billing cap) a dataset counts with, and filling its count cache."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from dataclasses import dataclass

from bot.dataset.examples import ChatExample
from bot.dataset.policy import SystemPromptPolicy, apply_policy
from bot.dataset.pricing import PriceCatalogue, UnknownModel
from bot.dataset.tokens import FALLBACK_ENCODING, count_examples, encoding_for_model
from storage.examples import DEFAULT_BILLED_CAP, ExampleRepository
from storage.records import Dataset


@dataclass(frozen=True)
class Counting:
    """How to count a dataset's tokens: the encoding, the most tokens billed per example
    (the model's training context; longer examples are truncated), and the dataset's
    system-prompt policy, because the tokens billed are those of the file a fine-tune
    uploads (the dataset's system prompt included, under ``include``)."""

    encoding: str
    billed_cap: int = DEFAULT_BILLED_CAP
    policy: SystemPromptPolicy = SystemPromptPolicy.AS_WRITTEN
    system_prompt: str | None = None

    @property
    def key(self) -> str:
        """The name counts are cached under: the encoding, plus the billing cap when it is
        not the default (billed tokens are stored capped), plus the policy and a hash of the
        prompt when they change the text, so editing either never reuses a stale count."""
        key = self.encoding
        if self.billed_cap != DEFAULT_BILLED_CAP:
            key += f"@{self.billed_cap}"
        if self.policy is SystemPromptPolicy.OMIT:
            key += "+omit"
        elif self.policy is SystemPromptPolicy.INCLUDE:
            digest = hashlib.sha256((self.system_prompt or "").encode("utf-8", "replace"))
            key += f"+include:{digest.hexdigest()[:16]}"
        return key

    def trained(self, example: ChatExample) -> ChatExample:
        """The example as the training file holds it."""
        if self.policy is SystemPromptPolicy.INCLUDE and not self.system_prompt:
            return example
        return apply_policy(example, self.policy, self.system_prompt)


def counting_for_dataset(
    dataset: Dataset, catalogue: PriceCatalogue, model: str | None = None
) -> Counting:
    """The counting of ``dataset``'s training file for ``model`` (default: its base model)."""
    counting = counting_for_model(model or dataset.base_model, catalogue)
    return dataclasses.replace(
        counting, policy=dataset.policy, system_prompt=dataset.system_prompt
    )


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
            guild_id, dataset_id, counting.key, after_id=after_id, limit=batch_size
        )
        if not batch:
            return counted
        results = await asyncio.to_thread(
            count_examples, [counting.trained(r.example) for r in batch], counting.encoding
        )
        counted += await examples.store_token_counts(
            guild_id,
            counting.key,
            [(r.id, result.tokens) for r, result in zip(batch, results, strict=True)],
            billed_cap=counting.billed_cap,
        )
        after_id = batch[-1].id

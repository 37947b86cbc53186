"""Stats: how far a dataset has come (tier), how big it is (billed tokens) and what
training it would cost, for the model the guild chose and across the catalogue.

Counts come from aggregates the database keeps up to date; only examples never counted
for an encoding are tokenised (once, then cached), so a stats request stays fast on a
dataset of any size.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date

from bot.dataset.cost import CostEstimate, TierProgress, estimate_cost, resolve_epochs, tier_for
from bot.dataset.errors import InvalidInput
from bot.dataset.policy import SystemPromptPolicy
from bot.dataset.pricing import ModelPrice, PriceCatalogue
from bot.services.counting import Counting, counting_for_dataset, fill_missing_counts
from storage.records import Dataset, DatasetStats
from storage.store import Storage

COMPARISON_COUNT_LIMIT = 2_000
"""Uncounted examples a stats request tokenises for a *compared* model's encoding before
answering; beyond it the comparison estimates from the chosen model's tokens and the
counting continues in the background, so a first request on a huge dataset stays fast."""


PROMPTS_LISTED = 10
"""Distinct system prompts the stats look at (more are reported as "10 or more")."""


def prompt_disagreement(dataset: Dataset, prompts: list[tuple[str, int]]) -> str | None:
    """A warning when the training file would mix system prompts, or train with another
    prompt than the one the model is chatted with; ``prompts`` are the approved examples'
    ``(prompt, count)`` (``""``: none). Policies ``include`` and ``omit`` rewrite every
    example's prompt, so only ``as_written`` can disagree."""
    if dataset.policy is not SystemPromptPolicy.AS_WRITTEN or not prompts:
        return None
    fix = (
        "Choose the policy `include` (`/dataset edit`) to train every example with the "
        "dataset's system prompt."
    )
    if len(prompts) > 1:
        many = f"{len(prompts)} or more" if len(prompts) >= PROMPTS_LISTED else str(len(prompts))
        without = sum(n for prompt, n in prompts if prompt == "")
        none_note = f" ({without:,} have none)" if without else ""
        return (
            f"The approved examples use {many} different system prompts{none_note}; a model "
            f"answers best when it is chatted with the prompt it was trained with. {fix}"
        )
    [(prompt, _)] = prompts
    chat_prompt = dataset.system_prompt or ""
    if chat_prompt and prompt != chat_prompt:
        if prompt == "":
            return (
                "The approved examples have no system prompt, but the model is chatted with "
                f"the dataset's. {fix}"
            )
        return (
            "The approved examples are trained with a different system prompt than the "
            f"dataset's, which the model is chatted with. {fix}"
        )
    return None


@dataclass(frozen=True)
class ModelEstimate:
    model: ModelPrice
    billed_tokens: int
    estimate: CostEstimate
    approximate: bool = False
    """Billed tokens estimated from another encoding's count (exact on a later request)."""


@dataclass(frozen=True)
class StatsReport:
    dataset: Dataset
    counts: DatasetStats
    tier: TierProgress
    epochs: int
    epochs_auto: bool
    chosen: ModelEstimate | None
    """The estimate for the chosen model (the dataset's base model by default); None when
    neither is known to the catalogue."""
    comparison: list[ModelEstimate]
    over_context: bool
    """Some approved examples are longer than the chosen model's training context: they
    are truncated and billed at it."""
    top_contributors: list[tuple[int, int]]
    """``(user_id, approved examples)`` of the five members with the most approved."""
    prompt_warning: str | None = None
    """Set when the approved examples disagree on their system prompt (or with the prompt
    the dataset chats with) in a way the training file keeps (policy ``as_written``)."""


class StatsService:
    def __init__(
        self,
        storage: Storage,
        catalogue: PriceCatalogue,
        *,
        comparison_count_limit: int = COMPARISON_COUNT_LIMIT,
    ) -> None:
        self._storage = storage
        self._catalogue = catalogue
        self._comparison_count_limit = comparison_count_limit
        self._background: dict[tuple[int, str], asyncio.Task[int]] = {}

    async def stats(
        self,
        dataset: Dataset,
        *,
        model: str | None = None,
        epochs: int | None = None,
        today: date | None = None,
    ) -> StatsReport:
        chosen_name = model or dataset.base_model
        price = self._catalogue.find(chosen_name) if chosen_name else None
        if model and price is None:
            known = ", ".join(sorted(p.model for p in self._catalogue.models()))
            raise InvalidInput(f"Unknown model `{model[:60]}`. Known models: {known}.")
        counts = await self._counts(dataset, chosen_name)
        approved = counts.approved.examples
        resolved = resolve_epochs(epochs, approved)
        estimates: dict[str, ModelEstimate] = {}
        by_counting: dict[Counting, DatasetStats | None] = {
            counting_for_dataset(dataset, self._catalogue, chosen_name): counts
        }
        for candidate in self._catalogue.models():
            counting = counting_for_dataset(dataset, self._catalogue, candidate.model)
            if counting not in by_counting:  # models sharing an encoding and cap share counts
                by_counting[counting] = await self._compared_counts(dataset, counting)
            found = by_counting[counting]
            if found is None:
                billed = min(counts.approved.tokens, approved * counting.billed_cap)
            else:
                billed = found.approved.billed_tokens
            estimates[candidate.model] = ModelEstimate(
                candidate,
                billed,
                estimate_cost(candidate, billed, resolved, today),
                approximate=found is None,
            )
        chosen = estimates.get(price.model) if price is not None else None
        comparison = sorted(
            (e for e in estimates.values() if not e.estimate.retired),
            key=lambda e: e.estimate.cost_usd,
        )
        return StatsReport(
            dataset=dataset,
            counts=counts,
            tier=tier_for(approved),
            epochs=resolved,
            epochs_auto=epochs is None,
            chosen=chosen,
            comparison=comparison,
            over_context=counts.approved.tokens > counts.approved.billed_tokens,
            top_contributors=await self._storage.examples.top_contributors(
                dataset.guild_id, dataset.id, limit=5
            ),
            prompt_warning=prompt_disagreement(
                dataset,
                await self._storage.examples.system_prompts(
                    dataset.guild_id, dataset.id, limit=PROMPTS_LISTED
                ),
            ),
        )

    async def _compared_counts(self, dataset: Dataset, counting: Counting) -> DatasetStats | None:
        """A compared model's counts, or None while too many are uncounted (they are then
        counted in the background, one task per dataset and encoding)."""
        stats = await self._storage.examples.stats(dataset.guild_id, dataset.id, counting.key)
        if stats.uncounted == 0:
            return stats
        if stats.uncounted <= self._comparison_count_limit:
            await fill_missing_counts(self._storage.examples, dataset.guild_id, dataset.id, counting)
            return await self._storage.examples.stats(dataset.guild_id, dataset.id, counting.key)
        key = (dataset.id, counting.key)
        task = self._background.get(key)
        if task is None or task.done():
            self._background[key] = asyncio.create_task(
                fill_missing_counts(self._storage.examples, dataset.guild_id, dataset.id, counting),
                name=f"count dataset {dataset.id} for {counting.key}",
            )
        return None

    async def settle(self) -> None:
        """Wait until the background counting started so far has finished."""
        await asyncio.gather(*self._background.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop background counting (the counts stored so far are kept)."""
        tasks = [t for t in self._background.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._background.clear()

    async def _counts(self, dataset: Dataset, model: str | None) -> DatasetStats:
        counting = counting_for_dataset(dataset, self._catalogue, model)
        stats = await self._storage.examples.stats(dataset.guild_id, dataset.id, counting.key)
        if stats.uncounted:
            await fill_missing_counts(
                self._storage.examples, dataset.guild_id, dataset.id, counting
            )
            stats = await self._storage.examples.stats(
                dataset.guild_id, dataset.id, counting.key
            )
        return stats

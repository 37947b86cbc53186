"""Tiers of example count, OpenAI's epoch heuristic and the cost formula c x n x e."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from bot.dataset.errors import InvalidInput
from bot.dataset.pricing import ModelPrice

# OpenAI's published defaults (cookbook Chat_finetuning_data_prep).
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


class Tier(StrEnum):
    NONE = "none"
    MINIMUM = "minimum"
    NOMINAL = "nominal"
    EXPERT = "expert"
    MASTER = "master"


# (tier, first example count of the tier), in order.
TIER_FLOORS: tuple[tuple[Tier, int], ...] = (
    (Tier.NONE, 0),
    (Tier.MINIMUM, 10),
    (Tier.NOMINAL, 50),
    (Tier.EXPERT, 500),
    (Tier.MASTER, 1000),
)


@dataclass(frozen=True)
class TierProgress:
    tier: Tier
    examples: int
    next_tier: Tier | None
    needed_for_next: int
    """Approved examples still missing to reach ``next_tier`` (0 at the top)."""

    @property
    def can_train(self) -> bool:
        return self.tier is not Tier.NONE

    @property
    def fraction_to_next(self) -> float:
        """Progress from this tier's floor to the next one, 0..1 (1 at the top)."""
        if self.next_tier is None:
            return 1.0
        floor = dict(TIER_FLOORS)[self.tier]
        ceiling = self.examples + self.needed_for_next
        return (self.examples - floor) / (ceiling - floor)


def tier_for(examples: int) -> TierProgress:
    """The tier of a dataset with ``examples`` approved examples and the way to the next."""
    if examples < 0:
        raise InvalidInput("An example count cannot be negative.")
    index = max(i for i, (_, floor) in enumerate(TIER_FLOORS) if examples >= floor)
    tier = TIER_FLOORS[index][0]
    if index + 1 < len(TIER_FLOORS):
        next_tier, floor = TIER_FLOORS[index + 1]
        return TierProgress(tier, examples, next_tier, floor - examples)
    return TierProgress(tier, examples, None, 0)


def auto_epochs(n_examples: int) -> int:
    """Epochs OpenAI picks for ``n_epochs='auto'`` (the cookbook heuristic)."""
    if n_examples <= 0:
        return TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def resolve_epochs(epochs: int | str | None, n_examples: int) -> int:
    """An explicit epoch count (1..50), or ``auto``/None for the heuristic."""
    if epochs is None or epochs == "auto":
        return auto_epochs(n_examples)
    value = int(epochs)
    if not 1 <= value <= 50:
        raise InvalidInput("Epochs must be a whole number from 1 to 50, or auto.")
    return value


@dataclass(frozen=True)
class CostEstimate:
    model: str
    billed_tokens: int
    epochs: int
    price_per_1k: Decimal
    cost_usd: Decimal
    retired: bool
    """The model is past its shutdown date: the estimate is for reference only."""
    shutdown_date: date | None

    @property
    def charged_tokens(self) -> int:
        return self.billed_tokens * self.epochs

    def cost_rounded(self) -> Decimal:
        return self.cost_usd.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def estimate_cost(
    price: ModelPrice, billed_tokens: int, epochs: int, today: date | None = None
) -> CostEstimate:
    """cost = c x n x e: price per 1K training tokens x billed tokens x epochs."""
    cost = price.training_per_1k * Decimal(billed_tokens) / 1000 * epochs
    today = today or date.today()
    return CostEstimate(
        model=price.model,
        billed_tokens=billed_tokens,
        epochs=epochs,
        price_per_1k=price.training_per_1k,
        cost_usd=cost,
        retired=price.retired(today),
        shutdown_date=price.shutdown_date,
    )

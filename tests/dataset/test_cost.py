import json
from datetime import date
from decimal import Decimal

import pytest

from bot.dataset.cost import Tier, auto_epochs, estimate_cost, resolve_epochs, tier_for
from bot.dataset.errors import InvalidInput
from bot.dataset.pricing import PriceCatalogue, UnknownModel

CATALOGUE = PriceCatalogue.load()


def test_founding_guide_example_gpt35_is_exactly_2_40():
    est = estimate_cost(CATALOGUE.get("gpt-3.5-turbo"), 100_000, 3, today=date(2026, 11, 23))
    assert est.price_per_1k == Decimal("0.008")
    assert est.cost_usd == Decimal("2.40")
    assert est.charged_tokens == 300_000


def test_gpt4o_mini_example_is_exactly_0_90():
    est = estimate_cost(CATALOGUE.get("gpt-4o-mini"), 100_000, 3, today=date(2026, 11, 23))
    assert est.cost_usd == Decimal("0.90") and not est.retired


def test_retired_models_still_estimate_but_are_flagged():
    price = CATALOGUE.get("gpt-3.5-turbo")
    assert estimate_cost(price, 1000, 3, today=date(2026, 10, 22)).retired is False
    est = estimate_cost(price, 1000, 3, today=date(2026, 10, 23))
    assert est.retired and est.shutdown_date == date(2026, 10, 23) and est.cost_usd > 0


@pytest.mark.parametrize(
    "n, tier, nxt, needed",
    [
        (0, Tier.NONE, Tier.MINIMUM, 10),
        (9, Tier.NONE, Tier.MINIMUM, 1),
        (10, Tier.MINIMUM, Tier.NOMINAL, 40),
        (49, Tier.MINIMUM, Tier.NOMINAL, 1),
        (50, Tier.NOMINAL, Tier.EXPERT, 450),
        (499, Tier.NOMINAL, Tier.EXPERT, 1),
        (500, Tier.EXPERT, Tier.MASTER, 500),
        (999, Tier.EXPERT, Tier.MASTER, 1),
        (1000, Tier.MASTER, None, 0),
        (10**6, Tier.MASTER, None, 0),
    ],
)
def test_tier_boundaries(n, tier, nxt, needed):
    progress = tier_for(n)
    assert (progress.tier, progress.next_tier, progress.needed_for_next) == (tier, nxt, needed)
    assert progress.can_train == (n >= 10)
    assert 0.0 <= progress.fraction_to_next <= 1.0


@pytest.mark.parametrize("n, epochs", [(1, 25), (3, 25), (4, 25), (5, 20), (10, 10), (20, 5), (33, 3), (34, 3),
                                       (40, 3), (8333, 3), (8334, 2), (10_000, 2), (30_000, 1)])
def test_auto_epochs_follows_openai_heuristic(n, epochs):
    assert auto_epochs(n) == epochs


def test_explicit_epochs_are_bounded():
    assert resolve_epochs(4, 100) == 4
    assert resolve_epochs("auto", 10) == 10
    with pytest.raises(InvalidInput, match="from 1 to 50"):
        resolve_epochs(51, 100)


def test_owner_price_file_overrides_the_bundled_one(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": [{
        "model": "my-model", "training_per_1m": "2", "training_context": 4096,
        "encoding": "cl100k_base", "shutdown_date": None,
    }]}))
    own = PriceCatalogue.load(path)
    assert estimate_cost(own.get("my-model"), 500_000, 2).cost_usd == Decimal("2.000")
    with pytest.raises(UnknownModel):
        own.get("gpt-4o-mini")


def test_catalogue_entries_carry_their_sources():
    for price in CATALOGUE.models():
        assert price.source and price.as_of and price.training_context > 0 and price.encoding

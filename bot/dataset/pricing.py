"""The price catalogue: what each fine-tunable model costs, holds and uses.

Prices live in ``bot/dataset/data/models.json``; a server owner can replace the file with their
own (``TUNECORD_PRICES``). Model ids resolve exactly, by alias, by dated snapshot
(``gpt-4o-mini-2024-07-18`` for ``gpt-4o-mini``) and through ``ft:`` ids to their base.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any


class UnknownModel(LookupError):
    """The model is not in the price catalogue."""


@dataclass(frozen=True)
class ModelPrice:
    model: str
    provider: str
    training_per_1m: Decimal
    input_per_1m: Decimal
    output_per_1m: Decimal
    training_context: int
    encoding: str
    shutdown_date: date | None
    as_of: str
    source: str
    aliases: tuple[str, ...] = ()

    @property
    def training_per_1k(self) -> Decimal:
        return self.training_per_1m / 1000

    def retired(self, today: date) -> bool:
        return self.shutdown_date is not None and today >= self.shutdown_date


def base_model_of(model: str) -> str:
    """``ft:gpt-4.1-2025-04-14:org:suffix:id`` -> ``gpt-4.1-2025-04-14``; others unchanged."""
    if model.startswith("ft:"):
        return model[3:].split(":", 1)[0]
    return model


class PriceCatalogue:
    def __init__(self, prices: Iterable[ModelPrice]) -> None:
        self._by_name: dict[str, ModelPrice] = {}
        for price in prices:
            for name in (price.model, *price.aliases):
                self._by_name[name.lower()] = price

    @classmethod
    def load(cls, path: Path | None = None) -> PriceCatalogue:
        """The bundled catalogue, or the owner's file at ``path``."""
        if path is None:
            text = resources.files("bot.dataset").joinpath("data/models.json").read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        return cls(_parse_entry(entry) for entry in json.loads(text)["models"])

    def models(self) -> list[ModelPrice]:
        return list({id(p): p for p in self._by_name.values()}.values())

    def find(self, model: str) -> ModelPrice | None:
        name = base_model_of(model).lower()
        if name in self._by_name:
            return self._by_name[name]
        # A dated snapshot of a known alias, e.g. gpt-3.5-turbo-0613 -> gpt-3.5-turbo.
        candidates = [k for k in self._by_name if name.startswith(k + "-")]
        return self._by_name[max(candidates, key=len)] if candidates else None

    def get(self, model: str) -> ModelPrice:
        price = self.find(model)
        if price is None:
            known = ", ".join(sorted(p.model for p in self.models()))
            raise UnknownModel(f"unknown model {model!r}; known models: {known}")
        return price


def _parse_entry(entry: dict[str, Any]) -> ModelPrice:
    shutdown = entry.get("shutdown_date")
    return ModelPrice(
        model=entry["model"],
        provider=entry.get("provider", "openai"),
        training_per_1m=Decimal(str(entry["training_per_1m"])),
        input_per_1m=Decimal(str(entry.get("input_per_1m", "0"))),
        output_per_1m=Decimal(str(entry.get("output_per_1m", "0"))),
        training_context=int(entry["training_context"]),
        encoding=entry["encoding"],
        shutdown_date=date.fromisoformat(shutdown) if shutdown else None,
        as_of=entry.get("as_of", ""),
        source=entry.get("source", ""),
        aliases=tuple(entry.get("aliases", ())),
    )

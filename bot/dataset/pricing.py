"""The price catalogue: what each fine-tunable model costs, holds and uses.

Prices live in ``bot/dataset/data/models.json``; a server owner can replace the file with their
own (``TUNECORD_PRICES``). Model ids resolve exactly (case aside), by a model's name or one
of its ``aliases``, and ``ft:`` ids through their base model. There is no prefix or
pattern matching: a dated snapshot (``gpt-4o-mini-2024-07-18``) or a variant
(``gpt-4o-audio-preview``) is known only when the catalogue names it, as a model or an
alias.

A price file is checked when it is loaded (:meth:`PriceCatalogue.load`): it is read only
if it is a regular file of at most :data:`MAX_PRICE_FILE_BYTES`, and every field is
validated; the first bad one is named in a :class:`PriceFileError` (a ``ValueError`` and
a :class:`~bot.dataset.errors.UserError`), e.g. ``models[0] ("x"): "training_per_1m" must
be ...``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeGuard

from bot.dataset.errors import InvalidInput
from bot.dataset.files import read_small_text

MAX_PRICE_FILE_BYTES: Final = 1 << 20
"""The largest price file read (1 MiB; the bundled one is a few KB)."""
MAX_PRICE: Final = Decimal(1_000_000)
"""The highest price accepted, in USD per 1M tokens."""
MAX_TRAINING_CONTEXT: Final = 10_000_000
"""The largest training context accepted, in tokens."""
MODEL_ENCODING_PREFIX: Final = "model:"
"""Encodings of models our own trainer serves: ``model:<id>``."""


class PriceFileError(InvalidInput):
    """A price file that cannot be used; the message names the file's bad field."""


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
        """The bundled catalogue, or the owner's file at ``path``.

        Raises :class:`PriceFileError` naming the bad field of a file that cannot be used
        (not JSON, not UTF-8, too large, a folder or a pipe, a field of the wrong type or
        out of range, a name given twice); ``OSError`` when the file cannot be opened.
        """
        if path is None:
            text = resources.files("bot.dataset").joinpath("data/models.json").read_text("utf-8")
        else:
            try:
                text = read_small_text(path, MAX_PRICE_FILE_BYTES, "the price file")
            except UnicodeDecodeError:
                raise PriceFileError("the price file is not UTF-8 text") from None
            except InvalidInput as exc:
                raise PriceFileError(str(exc)) from None
        return cls(parse_price_file(text))

    def models(self) -> list[ModelPrice]:
        return list({id(p): p for p in self._by_name.values()}.values())

    def find(self, model: str) -> ModelPrice | None:
        """The model named exactly (case aside) by ``model``, one of its aliases or an
        ``ft:`` id of one of them; None for any other name."""
        return self._by_name.get(base_model_of(model).lower())

    def get(self, model: str) -> ModelPrice:
        price = self.find(model)
        if price is None:
            known = ", ".join(sorted(p.model for p in self.models()))
            raise UnknownModel(f"unknown model {model!r}; known models: {known}")
        return price


def parse_price_file(text: str) -> list[ModelPrice]:
    """The models of a price file's text; :class:`PriceFileError` names the first bad
    field."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except PriceFileError:
        raise
    except RecursionError:
        raise PriceFileError("the price file is not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "a number is too long"
        raise PriceFileError(f"the price file is not valid JSON ({detail})") from None
    if not isinstance(data, dict):
        raise PriceFileError(f'the price file must be a JSON object with a "models" list, not {_kind(data)}')
    entries = data.get("models")
    if not isinstance(entries, list) or not entries:
        what = "missing" if "models" not in data else _shown(entries)
        raise PriceFileError(f'"models" must be a non-empty list of models (it is {what})')
    prices: list[ModelPrice] = []
    owners: dict[str, str] = {}
    for index, entry in enumerate(entries):
        price = _parse_entry(entry, index)
        here = f'models[{index}] ("{price.model}")'
        for name in (price.model, *price.aliases):
            key = name.lower()
            if owners.setdefault(key, here) != here:
                raise PriceFileError(f'{here}: the name "{name}" is already used by {owners[key]}')
        prices.append(price)
    return prices


def _parse_entry(entry: Any, index: int) -> ModelPrice:
    where = f"models[{index}]"
    if not isinstance(entry, dict):
        raise PriceFileError(f"{where} must be an object, not {_kind(entry)}")
    model = entry.get("model")
    if not _is_name(model):
        raise PriceFileError(f'{where}: "model" must be a non-empty name, not {_shown(model)}')
    where = f'{where} ("{model}")'

    def fail(key: str, must: str) -> PriceFileError:
        return PriceFileError(f'{where}: "{key}" must be {must}, not {_shown(entry.get(key))}')

    def text(key: str, default: str = "") -> str:
        value = entry.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            raise fail(key, "a string")
        return value

    def price(key: str, required: bool) -> Decimal:
        if key not in entry and not required:
            return Decimal(0)
        value = entry.get(key)
        must = f"a price in USD per 1M tokens (a number from 0 to {MAX_PRICE:,})"
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise fail(key, must)
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise fail(key, must) from None
        if not amount.is_finite() or not 0 <= amount <= MAX_PRICE:
            raise fail(key, must)
        return amount

    context = entry.get("training_context")
    if type(context) is not int or not 1 <= context <= MAX_TRAINING_CONTEXT:
        raise fail("training_context", f"a whole number of tokens from 1 to {MAX_TRAINING_CONTEXT:,}")
    encoding = entry.get("encoding")
    if not isinstance(encoding, str) or encoding not in _known_encodings() and not (
        encoding.startswith(MODEL_ENCODING_PREFIX) and _is_name(encoding[len(MODEL_ENCODING_PREFIX):])
    ):
        known = ", ".join(sorted(_known_encodings()))
        raise fail("encoding", f'a tiktoken encoding ({known}) or "model:<trainer model id>"')
    shutdown = entry.get("shutdown_date")
    shutdown_date = None
    if shutdown is not None:
        try:
            shutdown_date = date.fromisoformat(shutdown) if isinstance(shutdown, str) else None
        except ValueError:
            shutdown_date = None
        if shutdown_date is None:
            raise fail("shutdown_date", 'a date written "YYYY-MM-DD", or null')
    aliases = entry.get("aliases", [])
    if aliases is None:
        aliases = []
    if not isinstance(aliases, list) or not all(_is_name(a) for a in aliases):
        raise fail("aliases", "a list of non-empty names")
    return ModelPrice(
        model=model,
        provider=text("provider", "openai"),
        training_per_1m=price("training_per_1m", required=True),
        input_per_1m=price("input_per_1m", required=False),
        output_per_1m=price("output_per_1m", required=False),
        training_context=context,
        encoding=encoding,
        shutdown_date=shutdown_date,
        as_of=text("as_of"),
        source=text("source"),
        aliases=tuple(aliases),
    )


def _is_name(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 200


def _known_encodings() -> frozenset[str]:
    import tiktoken

    return frozenset(tiktoken.list_encoding_names())


def _refuse_constant(name: str) -> Any:
    raise PriceFileError(f"the price file is not valid JSON ({name} is not a JSON number)")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _shown(value: Any) -> str:
    """A value as JSON spells it, shortened for a message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = _kind(value)
    return text if len(text) <= 60 else text[:57] + "..."

"""Hostile price files and model names: a price file is checked when it is loaded and the
first bad field is named (``tunecord check`` prints one line and exits 2; the bot refuses
to start with one sentence); a model is known only by a name the catalogue lists."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest

from bot.dataset import cli
from bot.dataset.errors import UserError
from bot.dataset.pricing import PriceCatalogue, PriceFileError, UnknownModel
from bot.errors import StartupError
from bot.startup import load_catalogue
from tests.dataset.hostile import GOOD, jsonl, write

CATALOGUE = PriceCatalogue.load()


def entry(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "model": "m", "training_per_1m": "2", "training_context": 4096, "encoding": "o200k_base",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


BAD: dict[str, tuple[str, str]] = {
    "models_of_strings": ('{"models": ["x"]}', 'models[0] must be an object, not a string'),
    "models_null": ('{"models": null}', '"models" must be a non-empty list of models (it is null)'),
    "models_missing": ('{"prices": []}', '"models" must be a non-empty list of models (it is missing)'),
    "models_empty": ('{"models": []}', '"models" must be a non-empty list of models (it is [])'),
    "a_list": ("[]", 'the price file must be a JSON object with a "models" list, not a list'),
    "not_json": ("{models", "the price file is not valid JSON (Expecting property name enclosed in double quotes)"),
    "bare_nan": ('{"models": [{"model": "m", "training_per_1m": NaN}]}', "the price file is not valid JSON (NaN is not a JSON number)"),
    "price_abc": (json.dumps({"models": [entry(training_per_1m="abc")]}), 'models[0] ("m"): "training_per_1m" must be a price in USD per 1M tokens (a number from 0 to 1,000,000), not "abc"'),
    "price_infinity": (json.dumps({"models": [entry(training_per_1m="Infinity")]}), '"training_per_1m" must be a price in USD per 1M tokens (a number from 0 to 1,000,000), not "Infinity"'),
    "price_nan": (json.dumps({"models": [entry(training_per_1m="NaN")]}), '"training_per_1m" must be a price'),
    "price_number_overflow": (json.dumps({"models": [entry()]}).replace('"2"', "1e400"), '"training_per_1m" must be a price'),
    "price_negative": (json.dumps({"models": [entry(input_per_1m=-1)]}), '"input_per_1m" must be a price'),
    "price_true": (json.dumps({"models": [entry(output_per_1m=True)]}), '"output_per_1m" must be a price in USD per 1M tokens (a number from 0 to 1,000,000), not true'),
    "price_missing": (json.dumps({"models": [entry(training_per_1m=...)]}), '"training_per_1m" must be a price in USD per 1M tokens (a number from 0 to 1,000,000), not null'),
    "context_negative": (json.dumps({"models": [entry(training_context=-5)]}), 'models[0] ("m"): "training_context" must be a whole number of tokens from 1 to 10,000,000, not -5'),
    "context_string": (json.dumps({"models": [entry(training_context="4096")]}), '"training_context" must be a whole number of tokens'),
    "context_float": (json.dumps({"models": [entry(training_context=4096.5)]}), '"training_context" must be a whole number of tokens'),
    "aliases_string": (json.dumps({"models": [entry(aliases="abc")]}), 'models[0] ("m"): "aliases" must be a list of non-empty names, not "abc"'),
    "aliases_empty_name": (json.dumps({"models": [entry(aliases=[""])]}), '"aliases" must be a list of non-empty names'),
    "model_missing": (json.dumps({"models": [entry(model=...)]}), 'models[0]: "model" must be a non-empty name, not null'),
    "model_number": (json.dumps({"models": [entry(model=7)]}), 'models[0]: "model" must be a non-empty name, not 7'),
    "encoding_unknown": (json.dumps({"models": [entry(encoding="o300k")]}), '"encoding" must be a tiktoken encoding'),
    "shutdown_not_a_date": (json.dumps({"models": [entry(shutdown_date="soon")]}), '"shutdown_date" must be a date written "YYYY-MM-DD", or null, not "soon"'),
    "same_name_twice": (json.dumps({"models": [entry(), entry(model="n", aliases=["M"])]}), 'models[1] ("n"): the name "M" is already used by models[0] ("m")'),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_price_file_names_its_bad_field(name, tmp_path):
    text, message = BAD[name]
    path = tmp_path / "prices.json"
    path.write_text(text)
    with pytest.raises(PriceFileError) as caught:
        PriceCatalogue.load(path)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, UserError)


@pytest.mark.parametrize("name", ["models_of_strings", "price_abc", "price_infinity", "context_negative", "aliases_string"])
def test_the_cli_prints_one_line_and_exits_two(name, tmp_path, capsys, monkeypatch):
    text, message = BAD[name]
    prices = tmp_path / "prices.json"
    prices.write_text(text)
    data = write(tmp_path, jsonl(GOOD))
    monkeypatch.delenv("TUNECORD_PRICES", raising=False)
    assert cli.main(["check", str(data), "--model", "m", "--prices", str(prices)]) == cli.EXIT_USAGE
    monkeypatch.setenv("TUNECORD_PRICES", str(prices))
    assert cli.main(["check", str(data), "--model", "m", "--json"]) == cli.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]  # one line per run, --prices or TUNECORD_PRICES
    assert lines[0].startswith(f"tunecord check: bad price file {prices}: ") and message in lines[0]


@pytest.mark.parametrize("name", ["models_null", "a_list", "price_nan", "context_negative", "aliases_string"])
def test_the_bot_refuses_to_start_with_one_sentence(name, tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(BAD[name][0])
    with pytest.raises(StartupError) as caught:
        load_catalogue(path)
    text = str(caught.value)
    assert text.startswith(f"cannot read the price file {path} (TUNECORD_PRICES): ")
    assert "\n" not in text and BAD[name][1] in text


def test_a_price_file_that_is_not_a_file_or_too_large_is_refused(tmp_path):
    fifo = tmp_path / "prices.fifo"
    os.mkfifo(fifo)
    with pytest.raises(PriceFileError, match="is a named pipe"):
        PriceCatalogue.load(fifo)  # used to wait for a writer forever
    with pytest.raises(PriceFileError, match="is a folder"):
        PriceCatalogue.load(tmp_path)
    big = tmp_path / "big.json"
    with open(big, "wb") as out:
        out.truncate(2 << 20)
    with pytest.raises(PriceFileError, match="larger than 1,048,576 bytes"):
        PriceCatalogue.load(big)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"models": [{"model": "caf\xe9"}]}')
    with pytest.raises(PriceFileError, match="not UTF-8"):
        PriceCatalogue.load(latin)
    with pytest.raises(OSError):
        PriceCatalogue.load(tmp_path / "missing.json")


def test_a_valid_price_file_loads_with_defaults(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": [entry(training_per_1m=2.5, aliases=["mm"], shutdown_date=None)]}))
    price = PriceCatalogue.load(path).get("MM")
    assert price.training_per_1m == Decimal("2.5") and price.input_per_1m == 0
    assert price.provider == "openai" and price.shutdown_date is None


@pytest.mark.parametrize("model", ["gpt-4o-audio-preview", "gpt-4o-mini-2099-01-01", "gpt-4o-2024-05-13",
                                   "gpt-4.1-mini-preview", "ft:gpt-4o-mini-2099-01-01:org::x", "gpt-4o-mini-"])
def test_a_name_the_catalogue_does_not_list_is_unknown(model, tmp_path, capsys):
    assert CATALOGUE.find(model) is None
    with pytest.raises(UnknownModel):
        CATALOGUE.get(model)
    data = write(tmp_path, jsonl(GOOD))
    assert cli.main(["check", str(data), "--model", model]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.startswith(f"tunecord check: unknown model {model!r}; known models: ")


@pytest.mark.parametrize(
    ("model", "snapshot"),
    [("gpt-4o-mini", "gpt-4o-mini-2024-07-18"), ("GPT-4O-MINI-2024-07-18", "gpt-4o-mini-2024-07-18"),
     ("ft:gpt-4o-mini-2024-07-18:org:marv:abc", "gpt-4o-mini-2024-07-18"), ("gpt-3.5-turbo-1106", "gpt-3.5-turbo-0125"),
     ("ft:gpt-4.1:org::x", "gpt-4.1-2025-04-14")],
)
def test_names_and_aliases_the_catalogue_lists_are_known(model, snapshot):
    assert CATALOGUE.get(model).model == snapshot


def test_an_alias_can_make_a_snapshot_known(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": [entry(model="gpt-4o-mini-2024-07-18", aliases=["gpt-4o-mini-2099-01-01"])]}))
    assert PriceCatalogue.load(path).get("gpt-4o-mini-2099-01-01").model == "gpt-4o-mini-2024-07-18"


def test_json_output_never_holds_a_bare_nan(tmp_path, capsys):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": [entry(training_per_1m="0.000001")]}))
    data = write(tmp_path, jsonl(GOOD))
    assert cli.main(["check", str(data), "--model", "m", "--prices", str(path), "--json"]) == cli.EXIT_OK
    report = json.loads(capsys.readouterr().out, parse_constant=lambda name: pytest.fail(f"bare {name}"))
    assert report["price_per_1k_usd"] == "0.000000001"

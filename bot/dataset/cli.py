"""``tunecord`` command line: tools for server admins outside Discord.

Whatever it is given, ``tunecord check`` answers with a report or one line on stderr, never
a traceback: a file that is not a regular file, a bad price file, an unknown model are
usage errors (exit 2); a file with bad lines is a report (exit 1). Output goes to any
stdout: text the terminal's encoding cannot show is escaped (``\\u00e9``), and a reader
that stops early (``tunecord check f | head``) ends the output quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.dataset.checker import CheckReport, check_file
from bot.dataset.errors import UserError
from bot.dataset.files import NotARegularFile
from bot.dataset.pricing import PriceCatalogue, PriceFileError, UnknownModel

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2
SHOWN_PROBLEMS = 50


def _epochs(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number or 'auto'") from None
    if not 1 <= n <= 50:
        raise argparse.ArgumentTypeError("must be between 1 and 50")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunecord", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="validate a training file and estimate its cost",
        description="Validate an OpenAI chat fine-tuning JSONL file; print errors by line, "
        "tier, billed tokens, epochs and estimated cost. Exit 0 when trainable, 1 when "
        "the file has errors, 2 on usage errors.",
    )
    check.add_argument("file", type=Path, help="the .jsonl training file")
    check.add_argument("--model", required=True, help="base model, e.g. gpt-4o-mini-2024-07-18")
    check.add_argument("--epochs", type=_epochs, default="auto", help="1-50 or 'auto' (default)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument(
        "--prices",
        type=Path,
        help="your own price file (same shape as the bundled one); default: $TUNECORD_PRICES, "
        "else the bundled prices",
    )
    return parser


def _env_prices() -> Path | None:
    """The server owner's price file (``TUNECORD_PRICES``), the bot's setting, if set."""
    value = os.environ.get("TUNECORD_PRICES", "").strip()
    return Path(value) if value else None


def main(argv: Sequence[str] | None = None) -> int:
    _escape_unencodable(sys.stdout)
    _escape_unencodable(sys.stderr)
    args = build_parser().parse_args(argv)
    prices = args.prices or _env_prices()
    try:
        catalogue = PriceCatalogue.load(prices)
    except PriceFileError as exc:
        return _usage_error(f"bad price file {prices}: {exc}")
    except OSError as exc:
        return _usage_error(f"cannot read the price file {prices}: {exc.strerror or exc}")
    try:
        price = catalogue.get(args.model)
    except UnknownModel as exc:
        return _usage_error(str(exc.args[0]))
    try:
        report = check_file(args.file, price, epochs=args.epochs)
    except NotARegularFile as exc:
        return _usage_error(f"cannot read {args.file}: it is {exc.kind}, not a regular file")
    except UserError as exc:  # e.g. a tokenizer that cannot be loaded
        return _usage_error(str(exc))
    except OSError as exc:
        return _usage_error(f"cannot read {exc.filename or args.file}: {exc.strerror or exc}")
    output = json.dumps(report.to_json(), ensure_ascii=False) if args.json else render(report)
    _write(output)
    return EXIT_OK if report.trainable else EXIT_ERRORS


def _usage_error(message: str) -> int:
    try:
        print(f"tunecord check: {message}", file=sys.stderr)
    except BrokenPipeError:  # pragma: no cover - stderr closed too
        pass
    return EXIT_USAGE


def _write(text: str) -> None:
    """Print ``text``; a reader that stopped reading (``| head``) is not an error."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Nothing more can be shown; point stdout at /dev/null so the interpreter's final
        # flush does not report the closed pipe either.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # pragma: no cover - stdout without a descriptor
            pass


def _escape_unencodable(stream: object) -> None:
    """Escape what the stream's encoding cannot write (an ASCII or Latin-1 terminal)
    instead of failing on it."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # pragma: no cover - a stream that cannot change
            pass


def render(report: CheckReport) -> str:
    lines: list[str] = []
    for title, problems, counts in (
        ("Errors", report.errors, report.error_counts),
        ("Warnings", report.warnings, report.warning_counts),
    ):
        if not counts:
            continue
        lines.append(f"{title} ({sum(counts.values())}):")
        lines.extend(f"  [{p.code}] {p.message}" for p in problems[:SHOWN_PROBLEMS])
        hidden = sum(counts.values()) - min(len(problems), SHOWN_PROBLEMS)
        if hidden > 0:
            summary = ", ".join(f"{code}: {n}" for code, n in counts.most_common())
            lines.append(f"  ... and {hidden} more ({summary})")
    tier = report.tier
    cost = report.cost
    assert tier is not None and cost is not None
    next_tier = f", {tier.needed_for_next} more for {tier.next_tier.value}" if tier.next_tier else ""
    approx = " (estimate: includes tool calls or an approximate tokenizer)" if report.estimated_tokens else ""
    lines += [
        f"Examples:        {report.valid_examples} valid of {report.examples}",
        f"Tier:            {tier.tier.value}{next_tier}",
        f"Billed tokens:   {report.billed_tokens:,} ({report.encoding}){approx}",
        f"Epochs:          {report.epochs}",
        f"Estimated cost:  ${cost.cost_rounded()} "
        f"(${cost.price_per_1k:f}/1K x {report.billed_tokens:,} tokens x {report.epochs} epochs, {report.model})",
    ]
    if cost.retired:
        lines.append(f"Note: {report.model} was shut down on {cost.shutdown_date}; this estimate is for reference only.")
    lines.append("Trainable: yes" if report.trainable else "Trainable: no")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

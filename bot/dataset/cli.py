"""``tunecord`` command line: tools for server admins outside Discord."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.dataset.checker import CheckReport, check_file
from bot.dataset.pricing import PriceCatalogue, UnknownModel

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
    args = build_parser().parse_args(argv)
    try:
        catalogue = PriceCatalogue.load(args.prices or _env_prices())
        price = catalogue.get(args.model)
        report = check_file(args.file, price, epochs=args.epochs)
    except UnknownModel as exc:
        print(f"tunecord check: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"tunecord check: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, KeyError) as exc:
        print(f"tunecord check: bad price file: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print(render(report))
    return EXIT_OK if report.trainable else EXIT_ERRORS


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
        f"(${cost.price_per_1k}/1K x {report.billed_tokens:,} tokens x {report.epochs} epochs, {report.model})",
    ]
    if cost.retired:
        lines.append(f"Note: {report.model} was shut down on {cost.shutdown_date}; this estimate is for reference only.")
    lines.append("Trainable: yes" if report.trainable else "Trainable: no")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

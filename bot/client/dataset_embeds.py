"""How datasets look in Discord: ``/dataset info``, ``/dataset list`` and ``/dataset stats``.

Text from members (names, system prompts) is shown literally: markdown is escaped, and an
embed never pings anyone (every message also carries the bot's ``AllowedMentions.none()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

import discord

from bot.dataset.cost import TierProgress
from bot.dataset.policy import SystemPromptPolicy
from bot.services.stats import ModelEstimate, StatsReport
from storage.records import Dataset, DatasetStats

FIELD_MAX = 1024
DESCRIPTION_MAX = 4096
TITLE_MAX = 256
BAR_WIDTH = 10
BAR_FULL, BAR_EMPTY = "▰", "▱"
COMPARED_MODELS = 5
"""How many of the cheapest models the stats embed compares."""

POLICY_TEXT = {
    SystemPromptPolicy.INCLUDE: "the dataset's system prompt goes first in every example",
    SystemPromptPolicy.OMIT: "system messages are left out of every example",
    SystemPromptPolicy.AS_WRITTEN: "examples are trained exactly as written",
}


def shown(text: str) -> str:
    """Member text shown literally in a message or embed (no markdown)."""
    return discord.utils.escape_markdown(text)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def policy_line(policy: SystemPromptPolicy) -> str:
    """``include``: what it does."""
    return f"`{policy.value}`: {POLICY_TEXT[policy]}"


def counts_line(counts: DatasetStats) -> str:
    return (
        f"{counts.approved.examples:,} approved · {counts.pending.examples:,} pending · "
        f"{counts.rejected.examples:,} rejected"
    )


def total_examples(counts: DatasetStats) -> int:
    return counts.approved.examples + counts.pending.examples + counts.rejected.examples


def dataset_info_embed(
    dataset: Dataset, counts: DatasetStats, *, is_default: bool
) -> discord.Embed:
    """Everything about one dataset: its settings and how many examples it holds."""
    embed = discord.Embed(title=clip(dataset.name, TITLE_MAX), colour=discord.Colour.blurple())
    prompt = shown(dataset.system_prompt) if dataset.system_prompt else "none"
    embed.add_field(name="System prompt", value=clip(prompt, FIELD_MAX), inline=False)
    embed.add_field(name="Policy", value=policy_line(dataset.policy), inline=False)
    embed.add_field(name="Base model", value=dataset.base_model or "not set")
    embed.add_field(name="Created", value=discord.utils.format_dt(dataset.created_at, "D"))
    embed.add_field(name="Default", value="yes" if is_default else "no")
    embed.add_field(name="Approved", value=f"{counts.approved.examples:,}")
    embed.add_field(name="Pending", value=f"{counts.pending.examples:,}")
    embed.add_field(name="Rejected", value=f"{counts.rejected.examples:,}")
    return embed


def dataset_list_embed(
    guild_name: str, rows: Sequence[tuple[Dataset, DatasetStats]], default_id: int | None
) -> discord.Embed:
    """Every dataset of the guild, one line each, the default marked."""
    lines: list[str] = []
    length = 0
    for index, (dataset, counts) in enumerate(rows):
        mark = " (default)" if dataset.id == default_id else ""
        line = f"**{shown(dataset.name)}**{mark}: {counts_line(counts)}"
        rest = f"… and {len(rows) - index} more"
        if length + len(line) + len(rest) + 2 > DESCRIPTION_MAX:
            lines.append(rest)
            break
        lines.append(line)
        length += len(line) + 1
    embed = discord.Embed(
        title=clip(f"Datasets of {guild_name}", TITLE_MAX),
        description="\n".join(lines),
        colour=discord.Colour.blurple(),
    )
    embed.set_footer(text="/dataset info shows one dataset; /dataset stats its size and cost")
    return embed


# -- stats --------------------------------------------------------------------------------


def progress_bar(tier: TierProgress, width: int = BAR_WIDTH) -> str:
    """``▰▰▰▱▱▱▱▱▱▱ 23/50 to nominal``: progress from this tier's floor to the next."""
    if tier.next_tier is None:
        return f"{BAR_FULL * width} top tier"
    filled = min(width, int(tier.fraction_to_next * width))
    target = tier.examples + tier.needed_for_next
    return (
        f"{BAR_FULL * filled}{BAR_EMPTY * (width - filled)} "
        f"{tier.examples:,}/{target:,} to {tier.next_tier.value}"
    )


def usd(amount: Decimal) -> str:
    """``$1.23``; a cost that rounds to zero but is not zero reads ``under $0.01``."""
    rounded = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if amount > 0 and rounded == 0:
        return "under $0.01"
    return f"${rounded:,.2f}"


def cost_text(chosen: ModelEstimate) -> str:
    """``$1.23 on <model>`` and the tokens x epochs it is computed from."""
    estimate = chosen.estimate
    text = (
        f"**{usd(estimate.cost_usd)}** on `{chosen.model.model}`\n"
        f"{estimate.billed_tokens:,} tokens × {estimate.epochs} epochs = "
        f"{estimate.charged_tokens:,} trained tokens at "
        f"${chosen.model.training_per_1m:,.2f} per 1M"
    )
    if estimate.retired and estimate.shutdown_date is not None:
        text += (
            f"\nThis model was shut down on {estimate.shutdown_date.isoformat()}: "
            "for reference only."
        )
    return text


def comparison_text(report: StatsReport, limit: int = COMPARED_MODELS) -> str:
    chosen = report.chosen.model.model if report.chosen else None
    lines = [
        f"`{e.model.model}`: {'≈' if e.approximate else ''}{usd(e.estimate.cost_usd)}"
        + (" (chosen)" if e.model.model == chosen else "")
        for e in report.comparison[:limit]
    ]
    if any(e.approximate for e in report.comparison[:limit]):
        lines.append("-# ≈ estimated while this dataset's tokens are counted for that model")
    return "\n".join(lines) or "no fine-tunable models in the price catalogue"


def warnings(report: StatsReport) -> list[str]:
    found: list[str] = []
    approved = report.counts.approved.examples
    if approved == 0:
        found.append("No approved examples yet: there is nothing to train on.")
    elif not report.tier.can_train:
        found.append(
            f"A fine-tune needs at least {report.tier.examples + report.tier.needed_for_next} "
            "approved examples."
        )
    if report.prompt_warning:
        found.append(report.prompt_warning)
    if report.over_context:
        cap = report.chosen.model.training_context if report.chosen else None
        limit = f" ({cap:,} tokens)" if cap else ""
        found.append(
            f"Some approved examples are longer than the model's training context{limit}: "
            "they are truncated, and billed at the cap."
        )
    return found


def contributors_text(top: Sequence[tuple[int, int]]) -> str:
    if not top:
        return "nobody yet"
    return "\n".join(
        f"{rank}. <@{user_id}>: {count:,} approved"
        for rank, (user_id, count) in enumerate(top, start=1)
    )


def stats_embed(report: StatsReport) -> discord.Embed:
    """Counts, tier, size, epochs, cost and who contributed most."""
    counts = report.counts
    embed = discord.Embed(
        title=clip(f"Stats · {report.dataset.name}", TITLE_MAX), colour=discord.Colour.teal()
    )
    embed.add_field(name="Approved", value=f"{counts.approved.examples:,}")
    embed.add_field(name="Pending", value=f"{counts.pending.examples:,}")
    embed.add_field(name="Rejected", value=f"{counts.rejected.examples:,}")
    embed.add_field(
        name="Tier",
        value=f"**{report.tier.tier.value}**\n{progress_bar(report.tier)}",
        inline=False,
    )
    embed.add_field(name="Billed tokens", value=f"{counts.approved.billed_tokens:,}")
    embed.add_field(
        name="Epochs", value=f"{report.epochs} (auto)" if report.epochs_auto else str(report.epochs)
    )
    if report.chosen is not None:
        cost = cost_text(report.chosen)
    else:
        cost = (
            "No model chosen: pass `model`, or an admin can set the dataset's base model "
            "with `/dataset edit`."
        )
    embed.add_field(name="Estimated cost", value=clip(cost, FIELD_MAX), inline=False)
    embed.add_field(
        name="Cheapest models", value=clip(comparison_text(report), FIELD_MAX), inline=False
    )
    found = warnings(report)
    if found:
        embed.add_field(
            name="Warnings", value=clip("\n".join(f"⚠ {w}" for w in found), FIELD_MAX),
            inline=False,
        )  # fmt: skip
    embed.add_field(
        name="Top contributors", value=contributors_text(report.top_contributors), inline=False
    )
    embed.set_footer(text="cost = price per training token × billed tokens × epochs (estimate)")
    return embed

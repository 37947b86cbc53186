"""Embeds for fine-tunes: the estimate, the start to confirm, a job, the list, the outcome."""

from __future__ import annotations

from decimal import Decimal

import discord

from bot.services.finetune import EstimateReport, JobList, StartPlan
from bot.services.job_follower import Outcome
from storage.records import FineTuneJob, JobStatus

_COLOURS = {
    JobStatus.SUCCEEDED: discord.Colour.green(),
    JobStatus.FAILED: discord.Colour.red(),
    JobStatus.CANCELLED: discord.Colour.light_grey(),
}


def usd(amount: Decimal | None) -> str:
    if amount is None:
        return "unknown"
    if Decimal(0) < abs(amount) < Decimal("0.01"):
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, secs = divmod(max(0, int(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _name(text: str) -> str:
    return text.replace("`", "'")[:100]


def estimate_embed(report: EstimateReport) -> discord.Embed:
    embed = discord.Embed(
        title=f"Fine-tune estimate for {_name(report.dataset.name)}",
        description=f"{report.approved} approved examples · backend: {report.backend}",
    )
    if not report.options:
        embed.add_field(
            name="No model",
            value=f"{report.backend} lists no model it can fine-tune.",
            inline=False,
        )
    for option in report.options[:20]:
        shutdown = option.price.shutdown_date
        lines = [
            f"{option.billed_tokens:,} billed tokens{' (approx.)' if option.approximate else ''}",
            f"{option.epochs} epochs",
            f"cost {usd(option.cost_usd)}",
            f"shuts down {shutdown.isoformat()}" if shutdown else "no shutdown date",
        ]
        embed.add_field(name=option.price.model, value="\n".join(lines))
    if report.budget_left_usd is not None:
        embed.set_footer(text=f"Budget left this month: {usd(report.budget_left_usd)}")
    return embed


def plan_embed(plan: StartPlan) -> discord.Embed:
    embed = discord.Embed(
        title=f"Start a fine-tune of {_name(plan.dataset.name)}?",
        description=f"Backend: {plan.backend}. Confirm to upload the file and start the job.",
    )
    rows = {
        "Model": plan.price.model,
        "Examples": f"{plan.training_examples} training, {plan.validation_examples} validation",
        "Billed tokens": f"{plan.billed_tokens:,} per epoch",
        "Epochs": f"{plan.epochs_resolved}{'' if plan.epochs else ' (auto)'}",
        "Estimated cost": usd(plan.cost_usd),
        "Suffix": plan.suffix or "none",
    }
    if plan.budget_left_usd is not None:
        rows["Budget left this month"] = usd(plan.budget_left_usd)
    for name, value in rows.items():
        embed.add_field(name=name, value=value)
    return embed


def job_line(job: FineTuneJob) -> str:
    backend = f" · `{job.provider_job_id}`" if job.provider_job_id else ""
    cost = f" · est. {usd(job.estimated_cost_usd)}" if job.estimated_cost_usd is not None else ""
    return f"**#{job.id}** {job.status.value.replace('_', ' ')} · {job.model}{backend}{cost}"


def job_embed(job: FineTuneJob) -> discord.Embed:
    embed = discord.Embed(title=f"Fine-tune #{job.id}", colour=_COLOURS.get(job.status))
    rows = {
        "Status": job.status.value.replace("_", " "),
        "Base model": job.model,
        "Backend job": f"`{job.provider_job_id}`" if job.provider_job_id else "not started yet",
        "Estimated cost": usd(job.estimated_cost_usd),
    }
    if job.fine_tuned_model:
        rows["Fine-tuned model"] = f"`{job.fine_tuned_model}`"
    if job.trained_tokens is not None:
        rows["Trained tokens"] = f"{job.trained_tokens:,}"
    if job.error:
        rows["Error"] = job.error[:1000]
    for name, value in rows.items():
        embed.add_field(name=name, value=value, inline=name != "Error")
    embed.timestamp = job.created_at
    return embed


def list_embed(listing: JobList) -> discord.Embed:
    lines = [job_line(j) for j in listing.jobs] or ["No fine-tune yet."]
    embed = discord.Embed(title="Fine-tunes", description="\n".join(lines)[:4000])
    budget = f" of {usd(listing.budget_usd)}" if listing.budget_usd is not None else ""
    spent = f"{usd(listing.spent_usd)}{budget}"
    if listing.reserved_usd > 0:
        spent += f" ({usd(listing.reserved_usd)} reserved for jobs under way)"
    embed.add_field(name="Spend this month", value=spent)
    return embed


def outcome_embed(job: FineTuneJob, outcome: Outcome) -> discord.Embed:
    status = outcome.status
    title = {
        JobStatus.SUCCEEDED: f"Fine-tune #{job.id} succeeded",
        JobStatus.FAILED: f"Fine-tune #{job.id} failed",
        JobStatus.CANCELLED: f"Fine-tune #{job.id} was cancelled",
    }.get(status, f"Fine-tune #{job.id}: {status.value}")
    embed = discord.Embed(title=title, colour=_COLOURS.get(status))
    if status is JobStatus.SUCCEEDED:
        embed.add_field(name="Model", value=f"`{outcome.fine_tuned_model}`", inline=False)
        tokens = outcome.trained_tokens
        embed.add_field(name="Trained tokens", value=f"{tokens:,}" if tokens is not None else "?")
        embed.add_field(
            name="Cost",
            value=f"{usd(outcome.actual_cost_usd)} (estimate {usd(outcome.estimated_cost_usd)})",
        )
        embed.add_field(name="Duration", value=duration(outcome.duration_seconds))
        embed.set_footer(text="Activate makes it this server's chat model.")
    elif status is JobStatus.FAILED:
        embed.description = f"The backend says: {outcome.error}"
        if outcome.advice:
            embed.add_field(name="What to do", value=outcome.advice, inline=False)
    else:
        embed.description = "Cancelled as asked; nothing more will be trained or charged for it."
    return embed

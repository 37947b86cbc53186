"""How an example looks in Discord: its turns, contributor, id, status and score.

Text from members is shown as written; an embed never pings anyone, and every message
the bot sends carries ``AllowedMentions.none()`` besides.
"""

from __future__ import annotations

import discord

from storage.records import ExampleRecord, ExampleStatus, VoteTally

DESCRIPTION_MAX = 4096
TURN_MAX = 1500
"""Characters shown of one turn; ``/example show`` and an export have the whole text."""

STATUS_COLOURS = {
    ExampleStatus.PENDING: discord.Colour.gold(),
    ExampleStatus.APPROVED: discord.Colour.green(),
    ExampleStatus.REJECTED: discord.Colour.red(),
}
ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


def conversation_text(record: ExampleRecord, limit: int = DESCRIPTION_MAX) -> str:
    """The turns as ``**User:** ...`` paragraphs, each and all cut to fit an embed."""
    parts: list[str] = []
    for message in record.example.messages:
        role = ROLE_LABELS.get(str(message.get("role")), str(message.get("role")).title())
        content = message.get("content")
        if not isinstance(content, str):
            content = "(tool calls or structured content)" if content is None else str(content)
        if len(content) > TURN_MAX:
            content = content[:TURN_MAX] + "…"
        parts.append(f"**{role}:** {content}")
    text = "\n\n".join(parts)
    if len(text) > limit:
        text = text[: limit - 30] + "…\n*(shortened)*"
    return text


def example_embed(
    record: ExampleRecord,
    *,
    dataset_name: str,
    tally: VoteTally | None = None,
    threshold: int | None = None,
    authors: dict[int, int] | None = None,
) -> discord.Embed:
    """An example as an embed: turns in the description, facts in fields."""
    embed = discord.Embed(
        title=f"Example #{record.id} · {dataset_name}"[:256],
        description=conversation_text(record),
        colour=STATUS_COLOURS[record.status],
    )
    contributor = f"<@{record.contributor_id}>" if record.contributor_id else "unknown"
    embed.add_field(name="Contributor", value=contributor)
    embed.add_field(name="Status", value=record.status.value)
    if tally is not None:
        needed = f" (needs ±{threshold})" if threshold is not None else ""
        embed.add_field(
            name="Score", value=f"{tally.score:+d} ({tally.up} up, {tally.down} down){needed}"
        )
    others = sorted({u for u in (authors or {}).values() if u != record.contributor_id})
    if others:
        embed.add_field(
            name="Also quoted", value=", ".join(f"<@{u}>" for u in others)[:1024], inline=False
        )
    embed.set_footer(text=f"source: {record.source} · id {record.id}")
    embed.timestamp = record.created_at
    return embed

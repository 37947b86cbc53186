"""A reply chain as the turns of a conversation, for "Add to dataset" (a message capture).

Pure functions over messages already fetched (fetching is the capture cog's job), so the
rules below are tested without Discord:

* **Which messages.** :func:`refusal` says why a message cannot be a turn at all: a bot's
  message, a system message (anything but a plain message or a reply), a message with no
  text. The selected message must pass it (else the capture is refused with that reason);
  walking up the chain stops at the first message that does not.
* **Roles.** The chain is given oldest first and ends with the selected message: that
  one is the **Assistant reply**, the message it replies to the **User message**, and
  earlier ones alternate going back (Assistant, User, Assistant...).
* **Even length.** A conversation starts with a User turn, so a chain of an odd number of
  messages loses its oldest one: a chain of 3 gives 2 turns, ``capture_depth`` 6 over a
  chain of 10 gives 6 turns, ``capture_depth`` 5 over it gives 4. The turns always end
  with the selected message as the Assistant reply.
* **A lone message** (not a reply, or a reply to something that cannot be a turn) is the
  Assistant reply, with an empty User message for the contributor to write.
* **Fitting the form.** Earlier turns become ``User:`` / ``Assistant:`` lines; when they
  do not fit one text input (4,000 characters), the oldest pair of turns is dropped until
  they do.

**Authors** (:func:`attribute_authors`), once the contributor submitted the form, edited
or not: each captured turn keeps its author at its position counted from the **end** of
the submitted conversation, because the last two fields (User message, Assistant reply)
hold the last two captured turns and turns can only be added or removed in *Earlier
turns*. So with the number of turns unchanged, turn *i* keeps the author of captured turn
*i*; turns the contributor added (before the captured ones) are the contributor's own and
are not listed. If the contributor removed turns, the authors of the turns that fall off
the front still count (their words may have been merged into another turn): they are
listed at indices past the end of the conversation, unless they already author a kept
turn. Everyone listed must have opted in; an opt-out deletes every example listing them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import discord

TEXT_MAX = 4000
"""What one text input of the contribution form holds."""

Role = Literal["user", "assistant"]
_LABELS: Mapping[Role, str] = {"user": "User", "assistant": "Assistant"}
_TURN_TYPES = (discord.MessageType.default, discord.MessageType.reply)


@dataclass(frozen=True)
class Quoted:
    """One message of a chain, as the capture needs it."""

    author_id: int
    text: str

    @classmethod
    def of(cls, message: discord.Message) -> Quoted:
        return cls(message.author.id, message.content.strip())


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str
    author_id: int | None
    """Who wrote it; ``None`` for a turn the contributor writes (a lone message's User
    message)."""


@dataclass(frozen=True)
class Capture:
    """The turns of a captured chain: alternating, starting with User, ending with the
    selected message as the Assistant reply."""

    turns: tuple[Turn, ...]

    @property
    def user(self) -> str:
        return self.turns[-2].text

    @property
    def assistant(self) -> str:
        return self.turns[-1].text

    @property
    def earlier(self) -> str:
        return earlier_text(self.turns[:-2])

    @property
    def authors(self) -> tuple[int | None, ...]:
        """The author of each turn, in order (``None``: the contributor writes it)."""
        return tuple(t.author_id for t in self.turns)

    def quoted(self) -> dict[int, int]:
        """Turn index to author, for every turn someone wrote (the consent check)."""
        return {i: t.author_id for i, t in enumerate(self.turns) if t.author_id is not None}


def refusal(message: discord.Message) -> str | None:
    """Why ``message`` cannot be a turn of a captured conversation; ``None`` if it can."""
    if message.author.bot:
        return "Messages from bots cannot be added to a dataset: only what members wrote."
    if message.type not in _TURN_TYPES:
        return (
            "That is a system message (a join, a pin, a thread...), not something a member "
            "wrote, so it cannot be added to a dataset."
        )
    if not message.content.strip():
        return (
            "That message has no text to add (attachments, embeds and stickers are not captured)."
        )
    return None


def earlier_text(turns: Sequence[Turn]) -> str:
    """Turns as the form's *Earlier turns* field holds them."""
    return "\n".join(f"{_LABELS[t.role]}: {t.text}" for t in turns)


def capture_turns(chain: Sequence[Quoted], *, earlier_max: int = TEXT_MAX) -> Capture:
    """The turns of ``chain`` (oldest first, the selected message last; see the module
    docstring for the rules)."""
    if not chain:
        raise ValueError("a capture needs at least the selected message")
    if len(chain) == 1:
        only = chain[0]
        return Capture((Turn("user", "", None), Turn("assistant", only.text, only.author_id)))
    kept = chain[len(chain) % 2 :]
    turns = [
        Turn("user" if i % 2 == 0 else "assistant", q.text, q.author_id) for i, q in enumerate(kept)
    ]
    while len(turns) > 2 and len(earlier_text(turns[:-2])) > earlier_max:
        turns = turns[2:]
    return Capture(tuple(turns))


def attribute_authors(captured: Sequence[int | None], turns: int) -> dict[int, int]:
    """Turn index to author in a submitted conversation of ``turns`` turns, given the
    author of each captured turn in order (see the module docstring)."""
    shift = turns - len(captured)
    authors: dict[int, int] = {}
    fallen: list[int] = []
    for index, author in enumerate(captured):
        if author is None:
            continue
        if index + shift >= 0:
            authors[index + shift] = author
        else:
            fallen.append(author)
    extra = turns
    for author in fallen:
        if author not in authors.values():
            authors[extra] = author
            extra += 1
    return authors

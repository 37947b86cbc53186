"""Privacy: a member opts in or out, sees everything stored about them, reads the policy.

Opting out deletes, at once, the examples the member contributed in the guild (with their
votes and token counts) and the votes they cast, then records the refusal, so captures
of their messages are refused from then on. ``mydata`` is the complete record, as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from storage.records import UserData
from storage.review_posts import ReviewPost
from storage.store import Storage


@dataclass(frozen=True)
class OptOutResult:
    examples_deleted: int
    votes_deleted: int
    review_posts: tuple[ReviewPost, ...] = ()
    """Review posts of the deleted examples: the caller deletes these messages."""
    voted_examples: tuple[int, ...] = ()
    """Examples whose tally lost the member's vote: the caller redraws their posts."""


class PrivacyService:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def opt_in(self, guild_id: int, user_id: int) -> None:
        await self._storage.consents.grant(guild_id, user_id)

    async def opt_out(self, guild_id: int, user_id: int) -> OptOutResult:
        deleted = await self._storage.privacy.delete_user_data(guild_id, user_id)
        await self._storage.consents.revoke(guild_id, user_id)
        deleted_ids = {p.example_id for p in deleted.review_posts}
        return OptOutResult(
            deleted.examples,
            deleted.votes,
            deleted.review_posts,
            tuple(e for e in deleted.voted_examples if e not in deleted_ids),
        )

    async def has_opted_in(self, guild_id: int, user_id: int) -> bool:
        return await self._storage.consents.has_consented(guild_id, user_id)

    async def my_data(self, guild_id: int, user_id: int) -> bytes:
        """Everything stored about the member in this guild, as indented UTF-8 JSON."""
        data = await self._storage.privacy.user_data(guild_id, user_id)
        return json.dumps(_export(data), ensure_ascii=False, indent=2).encode("utf-8") + b"\n"


def _export(data: UserData) -> dict[str, Any]:
    consent = data.consent
    return {
        "guild_id": str(data.guild_id),
        "user_id": str(data.user_id),
        "consent": None if consent is None else {
            "opted_in": consent.granted,
            "opted_in_at": _when(consent.granted_at),
            "opted_out_at": _when(consent.revoked_at),
        },
        "examples": [
            {
                "id": r.id,
                "dataset_id": r.dataset_id,
                "status": r.status.value,
                "source": str(r.source),
                "created_at": _when(r.created_at),
                "updated_at": _when(r.updated_at),
                "example": r.example.to_obj(),
                "contributed_by_you": r.contributor_id == data.user_id,
                "turns_you_wrote": list(data.authored_turns.get(r.id, ())),
            }
            for r in data.examples
        ],
        "votes": [
            {"example_id": v.example_id, "value": v.value, "updated_at": _when(v.updated_at)}
            for v in data.votes
        ],
    }


def _when(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()


def privacy_policy(backend: str) -> str:
    """What the bot collects, why, where it goes and how to delete it, in plain words."""
    return (
        "**What tunecord stores.** Only what you deliberately submit: conversations you type "
        "into the contribution form or confirm from a message you chose, the votes you cast, "
        "and whether you opted in or out. It never reads or stores other messages for "
        "training.\n"
        "**Why.** To build this server's training dataset, which its admins use to "
        "fine-tune a chat model.\n"
        f"**Where it goes.** Approved examples are uploaded to the training backend this "
        f"bot is configured with ({backend}) when an admin starts a fine-tune.\n"
        "**Your control.** `/privacy mydata` sends you everything stored about you. "
        "`/privacy optout` deletes your examples and votes in this server at once and "
        "stops any capture of your messages; `/privacy optin` lets members add "
        "conversations that quote you, and lifts an opt-out."
    )

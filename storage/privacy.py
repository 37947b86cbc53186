"""Privacy requests: everything stored about one member in one guild, and its deletion."""

from __future__ import annotations

from storage.consents import ConsentRepository
from storage.db import Database
from storage.examples import ExampleRepository
from storage.records import UserData, UserDeletion
from storage.review_posts import ReviewPost
from storage.votes import VoteRepository


class PrivacyRepository:
    """Lists and deletes a member's rows in a guild: examples contributed, votes, consent."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._examples = ExampleRepository(db)
        self._votes = VoteRepository(db)
        self._consents = ConsentRepository(db)

    async def user_data(self, guild_id: int, user_id: int) -> UserData:
        """What is stored about ``user_id`` in this guild, read from one snapshot."""
        async with self._db.snapshot():
            examples = await self._examples.list_involving(guild_id, user_id)
            votes = await self._votes.by_user(guild_id, user_id)
            consent = await self._consents.get(guild_id, user_id)
            turns = await self._db.fetchall(
                "SELECT example_id, turn FROM example_authors WHERE guild_id = ? AND user_id = ? "
                "ORDER BY example_id, turn",
                (guild_id, user_id),
            )
        authored: dict[int, list[int]] = {}
        for row in turns:
            authored.setdefault(row["example_id"], []).append(row["turn"])
        return UserData(
            guild_id,
            user_id,
            tuple(examples),
            tuple(votes),
            consent,
            {k: tuple(v) for k, v in authored.items()},
        )

    async def delete_user_data(self, guild_id: int, user_id: int) -> UserDeletion:
        """Delete, in one transaction, every example the member contributed or wrote a
        turn of (with the votes, token counts and review posts attached to them), the votes
        they cast, and their consent record."""
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT p.example_id, p.guild_id, p.channel_id, p.message_id "
                "FROM review_posts AS p JOIN examples AS e ON e.id = p.example_id "
                "WHERE p.guild_id = ? AND e.guild_id = ? AND (e.contributor_id = ? OR e.id IN "
                "(SELECT example_id FROM example_authors WHERE guild_id = ? AND user_id = ?))",
                (guild_id, guild_id, user_id, guild_id, user_id),
            )
            examples = await tx.execute(
                "DELETE FROM examples WHERE guild_id = ? AND (contributor_id = ? OR id IN "
                "(SELECT example_id FROM example_authors WHERE guild_id = ? AND user_id = ?))",
                (guild_id, user_id, guild_id, user_id),
            )
            voted = await tx.fetchall(
                "SELECT example_id FROM votes WHERE guild_id = ? AND user_id = ? "
                "ORDER BY example_id",
                (guild_id, user_id),
            )
            votes = await tx.execute(
                "DELETE FROM votes WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
            consents = await tx.execute(
                "DELETE FROM consents WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
        posts = tuple(
            ReviewPost(r["example_id"], r["guild_id"], r["channel_id"], r["message_id"])
            for r in rows
        )
        return UserDeletion(
            examples=examples,
            votes=votes,
            consents=consents,
            review_posts=posts,
            voted_examples=tuple(r["example_id"] for r in voted),
        )

"""One object holding the database and a repository per aggregate."""

from __future__ import annotations

from os import PathLike
from typing import Any

from storage.channels import ChatChannelRepository
from storage.command_syncs import CommandSyncRepository
from storage.consents import ConsentRepository
from storage.datasets import DatasetRepository
from storage.db import Database
from storage.examples import ExampleRepository
from storage.guilds import GuildRepository
from storage.job_splits import JobSplitRepository
from storage.jobs import JobRepository
from storage.models import ActiveModelRepository
from storage.privacy import PrivacyRepository
from storage.review_posts import ReviewPostRepository
from storage.spend import SpendRepository
from storage.votes import VoteRepository


class Storage:
    """``await Storage.open(path)``, then ``storage.examples.add(...)`` and so on."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.guilds = GuildRepository(db)
        self.datasets = DatasetRepository(db)
        self.examples = ExampleRepository(db)
        self.votes = VoteRepository(db)
        self.consents = ConsentRepository(db)
        self.jobs = JobRepository(db)
        self.job_splits = JobSplitRepository(db)
        self.active_models = ActiveModelRepository(db)
        self.channels = ChatChannelRepository(db)
        self.spend = SpendRepository(db)
        self.privacy = PrivacyRepository(db)
        self.command_syncs = CommandSyncRepository(db)
        self.review_posts = ReviewPostRepository(db)

    @classmethod
    async def open(cls, path: str | PathLike[str], **options: Any) -> Storage:
        """Open the database (see :meth:`Database.open` for ``options``)."""
        return cls(await Database.open(path, **options))

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

"""The validation split of each fine-tune: which examples its validation file held.

Only example ids are kept (migration 11), with ``ON DELETE CASCADE`` on both the job and
the example: an example deleted later (a member's opt-out, a dropped dataset) simply
disappears from its job's split, and none of its text stays behind here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from storage.db import Database
from storage.records import ExampleStatus


class JobSplitRepository:
    """``record`` a job's validation examples when it starts; read them back later."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, guild_id: int, job_id: int, example_ids: Sequence[int]) -> int:
        """Remember ``example_ids`` as the validation examples of job ``job_id``.

        Only examples of the job's own dataset in this guild are kept (others, and ids
        already recorded, are skipped); nothing is kept if the guild has no such job.
        Returns how many were recorded.
        """
        if not example_ids:
            return 0
        ids = json.dumps([int(i) for i in example_ids])
        return await self._db.execute(
            "INSERT OR IGNORE INTO job_validation_examples (job_id, example_id, guild_id) "
            "SELECT j.id, e.id, e.guild_id FROM fine_tune_jobs AS j "
            "JOIN examples AS e ON e.dataset_id = j.dataset_id AND e.guild_id = j.guild_id "
            "WHERE j.id = ? AND j.guild_id = ? AND e.guild_id = ? "
            "AND e.id IN (SELECT value FROM json_each(?))",
            (job_id, guild_id, guild_id, ids),
        )

    async def example_ids(
        self,
        guild_id: int,
        job_id: int,
        *,
        status: ExampleStatus | str | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[int]:
        """The ids of the job's validation examples that still exist (with ``status``, if
        given), in id order (the order of the validation file): ``limit`` of them after
        ``after_id``, or all."""
        value = None if status is None else ExampleStatus(status).value
        rows = await self._db.fetchall(
            "SELECT v.example_id FROM job_validation_examples AS v "
            "JOIN examples AS e ON e.id = v.example_id "
            "WHERE v.guild_id = ? AND v.job_id = ? AND e.guild_id = ? AND v.example_id > ? "
            "AND (? IS NULL OR e.status = ?) ORDER BY v.example_id LIMIT ?",
            (guild_id, job_id, guild_id, after_id, value, value, -1 if limit is None else limit),
        )
        return [int(r["example_id"]) for r in rows]

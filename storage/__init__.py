"""tunecord's persistence: SQLite through aiosqlite, one repository per aggregate.

All SQL lives in this package. Every repository method takes the ``guild_id`` it acts
for and puts it in every query, so one guild can never read or change another's rows;
the one deliberate exception is :meth:`storage.jobs.JobRepository.unfinished_everywhere`,
the job follower's start-up read. Each repository declares its table's columns once
(:class:`storage.tables.Table`); update methods take each field as a typed keyword, with
:data:`storage.unset.UNSET` for "leave it" and ``None`` for "clear it". Start with
:class:`storage.store.Storage`.
"""

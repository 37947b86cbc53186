"""tunecord's persistence: SQLite through aiosqlite, one repository per aggregate.

All SQL lives in this package. Every repository method takes the ``guild_id`` it acts
for and puts it in every query, so one guild can never read or change another's rows.
Start with :class:`storage.store.Storage`.
"""

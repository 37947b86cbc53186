"""The column-list helper: the SQL it builds, what it refuses, and that every repository's
columns exist in the migrated schema."""

from __future__ import annotations

import importlib

import pytest

from storage.tables import Table

REPOSITORIES = (
    "storage.channels",
    "storage.consents",
    "storage.datasets",
    "storage.examples",
    "storage.jobs",
    "storage.guilds",
    "storage.models",
    "storage.review_posts",
    "storage.spend",
    "storage.votes",
)

THINGS = Table("things", "id", "guild_id", "label")


def test_select_and_returning():
    assert THINGS.select("id = ? AND guild_id = ?") == (
        "SELECT id, guild_id, label FROM things WHERE id = ? AND guild_id = ?"
    )
    assert THINGS.select("guild_id = ?", order_by="label DESC, id", limit=True) == (
        "SELECT id, guild_id, label FROM things WHERE guild_id = ? ORDER BY label DESC, id LIMIT ?"
    )
    assert THINGS.select("t.guild_id = ?", alias="t") == (
        "SELECT t.id, t.guild_id, t.label FROM things AS t WHERE t.guild_id = ?"
    )
    assert THINGS.returning("DELETE FROM things WHERE id = ? AND guild_id = ? ") == (
        "DELETE FROM things WHERE id = ? AND guild_id = ? RETURNING id, guild_id, label"
    )
    assert THINGS.column_list() == "id, guild_id, label"


def test_a_select_must_filter_on_the_guild_unless_it_says_so():
    with pytest.raises(ValueError, match="guild_id"):
        THINGS.select("id = ?")
    assert THINGS.select("label = ?", every_guild=True).endswith("WHERE label = ?")
    with pytest.raises(ValueError, match="WHERE"):
        THINGS.select(" ", every_guild=True)
    # A table without a guild column has nothing to scope.
    assert Table("settings", "key", "value").select("key = ?").endswith("WHERE key = ?")


@pytest.mark.parametrize(
    "make",
    [
        lambda: Table("things; DROP TABLE x", "id"),
        lambda: Table("things", "id", "label FROM secrets --"),
        lambda: Table("things", "id", "id"),
        lambda: Table("things"),
        lambda: THINGS.select("guild_id = ?", alias="t, secrets"),
        lambda: THINGS.column_list("1t"),
        lambda: THINGS.returning("INSERT INTO things (label) VALUES (?) RETURNING id"),
    ],
)
def test_only_identifiers_and_one_returning(make):
    with pytest.raises(ValueError):
        make()


def _tables() -> list[Table]:
    found = []
    for name in REPOSITORIES:
        module = importlib.import_module(name)
        found += [value for value in vars(module).values() if isinstance(value, Table)]
    return found


def test_each_table_is_declared_once():
    tables = _tables()
    assert len(tables) >= len(REPOSITORIES)  # every repository declares its table(s)
    assert len({t.name for t in tables}) == len(tables)


async def test_every_declared_column_exists(store):
    for table in _tables():
        rows = await store.db.fetchall("SELECT name FROM pragma_table_info(?)", (table.name,))
        actual = {r["name"] for r in rows}
        assert actual, f"no table {table.name}"
        assert set(table.columns) <= actual, (table.name, set(table.columns) - actual)


async def test_every_statement_constant_compiles(store):
    """Each repository's module-level statements (most built with its Table) prepare
    against the migrated schema: a misspelt column fails here, not in a cog."""
    checked = 0
    for name in REPOSITORIES:
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, str) and value.split(" ", 1)[0] in _VERBS:
                await store.db.fetchall("EXPLAIN " + value, (None,) * value.count("?"))
                checked += 1
    assert checked >= 25


_VERBS = {"SELECT", "INSERT", "UPDATE", "DELETE"}

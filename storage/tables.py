"""A table's name and columns, written once, and the SQL built from them.

Each repository declares its table as a module constant::

    _DATASETS = Table("datasets", "id", "guild_id", "name", ...)
    _SELECT_ONE = _DATASETS.select("id = ? AND guild_id = ?")
    _INSERT = _DATASETS.returning("INSERT INTO datasets (...) VALUES (...)")

and builds its statements from it, also as module constants, so a record's column list
appears in one place however many queries read or return it.

SQL injection
-------------
:func:`_sql` is the one place in the repositories where SQL text is joined from pieces
(ruff's S608 cannot follow it, so it is reviewed here instead). It is safe because every
piece is program text, never data: table, column and alias names are checked to be plain
identifiers when declared, and the clauses (``where``, ``order_by``, the statement before
``RETURNING``) are string literals of the calling module, typed :class:`LiteralString`
(checked by type checkers that support PEP 675). Values always travel as ``?`` parameters.

Guild scoping
-------------
A table with a ``guild_id`` column refuses a :meth:`Table.select` whose ``where`` does
not mention ``guild_id``, unless ``every_guild=True`` marks a deliberate cross-guild read.
"""

from __future__ import annotations

import re
from typing import LiteralString

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _identifier(name: LiteralString, what: str) -> LiteralString:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{what} {name!r} is not a plain SQL identifier")
    return name


def _sql(*parts: LiteralString) -> LiteralString:
    """Join SQL pieces with spaces: the reviewed place SQL text is assembled (see above)."""
    return " ".join(part for part in parts if part)


class Table:
    """A table and the columns its repository reads into a record, in record order."""

    __slots__ = ("name", "columns")

    def __init__(self, name: LiteralString, *columns: LiteralString) -> None:
        if not columns:
            raise ValueError(f"table {name!r} needs at least one column")
        if len(set(columns)) != len(columns):
            raise ValueError(f"table {name!r} lists a column twice")
        self.name: LiteralString = _identifier(name, "table")
        self.columns: tuple[LiteralString, ...] = tuple(
            _identifier(column, "column") for column in columns
        )

    def __repr__(self) -> str:
        return f"Table({self.name!r}, {', '.join(map(repr, self.columns))})"

    def column_list(self, alias: LiteralString | None = None) -> LiteralString:
        """``id, guild_id, ...``, or ``e.id, e.guild_id, ...`` with ``alias="e"``."""
        if alias is None:
            return ", ".join(self.columns)
        prefix = _identifier(alias, "alias")
        return ", ".join([prefix + "." + column for column in self.columns])

    def select(
        self,
        where: LiteralString,
        *,
        alias: LiteralString | None = None,
        order_by: LiteralString | None = None,
        limit: bool = False,
        every_guild: bool = False,
    ) -> LiteralString:
        """``SELECT <columns> FROM <table> [AS alias] WHERE <where> [ORDER BY ...] [LIMIT ?]``.

        ``limit=True`` adds a ``LIMIT ?`` parameter, after those of ``where``. ``where``
        must filter on ``guild_id`` unless ``every_guild`` says the read is cross-guild
        on purpose.
        """
        if not where.strip():
            raise ValueError("a select needs a WHERE condition")
        if "guild_id" in self.columns and "guild_id" not in where and not every_guild:
            raise ValueError(
                f"a select on {self.name} must filter on guild_id (or pass every_guild=True)"
            )
        return _sql(
            "SELECT",
            self.column_list(alias),
            "FROM",
            self.name,
            "AS " + _identifier(alias, "alias") if alias is not None else "",
            "WHERE",
            where,
            "ORDER BY " + order_by if order_by is not None else "",
            "LIMIT ?" if limit else "",
        )

    def returning(self, statement: LiteralString) -> LiteralString:
        """``statement`` (an INSERT, UPDATE or DELETE on this table) ``RETURNING <columns>``."""
        if "RETURNING" in statement.upper():
            raise ValueError("the statement already has a RETURNING clause")
        return _sql(statement.rstrip(), "RETURNING", self.column_list())

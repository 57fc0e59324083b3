"""Subtree and prefix conditions that an index can serve.

A jurisdiction path is a chain of division codes each followed by "/"
("310000/310100/310105/"). LIKE 'p%' cannot use an index on SQLite (its LIKE is
case-insensitive) and needs a pattern operator class on PostgreSQL, so a subtree
is written as a range instead: every path in it sorts between "…/" and "…0",
because "0" is the character right after "/"."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_
from sqlalchemy.orm import InstrumentedAttribute

# Sorts after every character a code, serial number or name can hold.
_HIGHEST = "\U0010ffff"


def within(column: InstrumentedAttribute[str], path: str) -> ColumnElement[bool]:
    """column holds path itself or a path below it."""
    if not path.endswith("/"):
        raise ValueError(f"not a jurisdiction path: {path!r}")
    return and_(column >= path, column < path[:-1] + "0")


def has_prefix(column: InstrumentedAttribute[str], prefix: str) -> ColumnElement[bool]:
    """column starts with prefix, as an index range (binary collation)."""
    return and_(column >= prefix, column < prefix + _HIGHEST)

"""A column matched against a list of ids of any length, bound as ONE value.

``column IN (:a, :b, …)`` binds a parameter per id, and a statement may carry at most 32,767 on
PostgreSQL (asyncpg) and 32,766 on a default SQLite build: a province's units, or the people
of a few thousand of them, do not fit. PostgreSQL takes the ids as one array
(``= ANY(:ids)``), SQLite as one JSON text read by ``json_each``; both still look each id up
in the column's index, as ``IN`` does, and the statement's text no longer depends on how many
ids there are (one prepared statement on PostgreSQL, not one per list length).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Integer, any_, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute


def among(
    session: AsyncSession,
    column: ColumnElement[int] | QueryableAttribute[int] | QueryableAttribute[int | None],
    ids: Iterable[int],
) -> ColumnElement[bool]:
    """``column IN ids``, however many ids there are."""
    values = list(dict.fromkeys(ids))
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(values, ARRAY(Integer)))
    each: Any = func.json_each(json.dumps(values)).table_valued("value")
    return column.in_(select(each.c.value))

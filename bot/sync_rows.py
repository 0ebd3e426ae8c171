"""Set-based writing for the configuration sync (bot/sync.py).

A province is 200,000 people with 220,000 accounts and 200,000 roles: an ORM object for each
cost minutes and well over a gigabyte. Here a table is read once as plain tuples, compared
in Python with what the configuration wants, and only the difference is written, in bulk:
new rows through bot/bulk.py, changed ones by executemany, deactivated and deleted ones by id
in chunks of `chunk` (PostgreSQL binds at most 32,767 parameters a statement). Each
difference goes to the audit log (bot/sync_audit.py) in the same transaction.
"""

from __future__ import annotations

import heapq
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot import sync_audit
from bot.bulk import insert_rows
from bot.ledger.idlists import among
from bot.ledger.people import WHO_TABLES, forget_everyone
from bot.sync_audit import Change, SyncReport, batches, jsonable

CHUNK = 10_000  # ids per IN list, well under PostgreSQL's 32,767 parameters
_PART = 5_000  # rows fetched at a time when a table is read
_GONE = ("removed_at", "cancelled_at")  # when a row left the configuration, where kept


@dataclass(frozen=True)
class Keyed:
    """A table whose rows the configuration names by key; rows that leave it are deactivated
    where the table can say so (never deleted: their history stays)."""

    table: Table
    entity: str  # in the audit log and the report: "unit"
    fields: tuple[str, ...]  # the columns the configuration gives, in its values' order
    scope: ColumnElement[bool] | None = None  # the rows the configuration owns
    constant: Mapping[str, Any] = field(default_factory=dict)  # for new rows: source="config"


@dataclass(frozen=True)
class Links:
    """A table of links the configuration owns entirely (a person's accounts, a community's
    members): links are compared as tuples of `columns`, the owner's id first."""

    table: Table
    entity: str
    columns: tuple[str, ...]
    row_key: tuple[str, ...] = ("id",)  # what identifies a row to delete
    scope: ColumnElement[bool] | None = None
    constant: Mapping[str, Any] = field(default_factory=dict)


Link = tuple[Any, ...]
_Update = tuple[int, str, dict[str, Any], dict[str, Any]]  # id, key, before, after


class IdSet:
    """Row ids, a byte each: ids are small dense integers, and a province's 200,000 people
    take 200 KB this way where a set of them takes 8 MB, at the sync's peak."""

    def __init__(self, ids: Collection[int]) -> None:
        self._has = bytearray(max(ids, default=-1) + 1)
        for i in ids:
            self._has[i] = 1

    def __contains__(self, row_id: object) -> bool:
        return isinstance(row_id, int) and 0 <= row_id < len(self._has) and self._has[row_id] == 1


@dataclass
class Writer:
    session: AsyncSession
    now: datetime
    report: SyncReport
    chunk: int = CHUNK

    async def upsert(self, spec: Keyed, desired: Mapping[str, tuple[Any, ...]]) -> dict[str, int]:
        """Bring the table in line with `desired` (key → values of `spec.fields`); key → id of
        every desired row."""
        t, n = spec.table, len(spec.fields)
        active = "active" in t.c
        gone = next((s for s in _GONE if s in t.c), None)
        cols = [t.c.id, t.c.key, *(t.c[f] for f in spec.fields)]
        cols += [t.c.active] if active else []
        cols += [t.c[gone]] if gone else []
        # Filled in place: the keys stay the configuration's own strings, not a copy per row.
        ids: dict[str, int | None] = dict.fromkeys(desired)
        changed: list[int] = []  # ids: the rows are read again when written (never all at once)
        left: list[tuple[int, str]] = []
        async for row in self._rows(t, cols, spec.scope):
            key = row[1]
            values = desired.get(key)
            if values is None:
                if active and row[2 + n]:
                    left.append((row[0], key))
                continue
            ids[key] = row[0]
            if row[2 : 2 + n] != values or (active and not row[2 + n]):
                changed.append(row[0])

        def change(row: tuple[Any, ...]) -> _Update:
            values = desired[row[1]]
            before = {f: row[2 + i] for i, f in enumerate(spec.fields) if row[2 + i] != values[i]}
            after = {f: values[i] for i, f in enumerate(spec.fields) if f in before}
            if active and not row[2 + n]:  # back in the configuration: the same row again
                before["active"], after["active"] = False, True
                if gone:
                    before[gone], after[gone] = row[3 + n], None
            return row[0], row[1], before, after

        new = [key for key, row_id in ids.items() if row_id is None]
        if new:
            await self._insert(spec, new, desired, ids)
        r, entity = self.report, spec.entity
        for part in _chunks(changed, self.chunk):
            scope = among(self.session, t.c.id, part)
            changes = [change(row) async for row in self._rows(t, cols, scope)]
            await self._update(t, changes)
            kept = ((k, jsonable(b), jsonable(a)) for _, k, b, a in changes)
            await self._audit(entity, "update", len(changed), kept)
        for part in _chunks(left, self.chunk):
            gone_now = {"active": False, **({gone: self.now} if gone else {})}
            where = among(self.session, t.c.id, [row_id for row_id, _ in part])
            await self.session.execute(update(t).where(where).values(gone_now))
            self._wrote(t)
        r.count("created", entity, len(new))
        r.count("updated", entity, len(changed))
        r.count("removed", entity, len(left))
        made = ((k, None, jsonable(dict(zip(spec.fields, desired[k], strict=True)))) for k in new)
        await self._audit(entity, "create", len(new), made)
        went = ((k, {"active": True}, {"active": False}) for _, k in left)
        await self._audit(entity, "remove", len(left), went)
        return cast(dict[str, int], ids)  # every one filled in now

    async def set_column(
        self, spec: Keyed, column: str, desired: Mapping[str, Any], ids: Mapping[str, int]
    ) -> None:
        """One more column of rows `upsert` has made (a unit's parent, known once every unit
        has an id), audited as an update of that row."""
        t = spec.table
        current = {i: v for i, v in await self.session.execute(select(t.c.id, t.c[column]))}
        changes = [
            (ids[k], k, {column: current.get(ids[k])}, {column: v})
            for k, v in desired.items()
            if current.get(ids[k]) != v
        ]
        for part in _chunks(changes, self.chunk):
            await self._update(t, part)
        self.report.count("updated", spec.entity, len(changes))
        made = ((k, jsonable(b), jsonable(a)) for _, k, b, a in changes)
        await self._audit(spec.entity, "update", len(changes), made)

    async def replace(
        self,
        spec: Links,
        want: set[Link],
        owners: Table,
        describe: Callable[[Link], Any],
        mine: Callable[[Link], bool] = lambda link: True,
    ) -> None:
        """Make the links of `spec` exactly `want` (among the rows `mine` accepts; `want` is
        used up): removed links deleted, new ones inserted, one audit entry per owner (a row of
        `owners`, named by its key) whose links changed: its links removed as `before` and
        added as `after`, each described by `describe`."""
        t, width = spec.table, len(spec.row_key)
        # Labelled: a column in both (a membership's unit) would otherwise be read once.
        cols = [*(t.c[c].label(f"k_{c}") for c in spec.row_key), *(t.c[c] for c in spec.columns)]
        gone: list[Link] = []
        gone_rows: list[tuple[Any, ...]] = []
        async for row in self._rows(t, cols, spec.scope):
            link = row[width:]
            if link in want:
                want.discard(link)  # there already; what is left of `want` is new
            elif mine(link):
                gone.append(link)
                gone_rows.append(row[:width])
        new = list(want)
        want.clear()
        for part in _chunks(gone_rows, self.chunk):
            if width == 1:
                where = among(self.session, t.c[spec.row_key[0]], [k for (k,) in part])
                await self.session.execute(delete(t).where(where))
            else:  # a composite key: one statement, executed for each row
                match = and_(*(t.c[c] == bindparam(f"k_{c}") for c in spec.row_key))
                params = [{f"k_{c}": v for c, v in zip(spec.row_key, k, strict=True)} for k in part]
                await self.session.execute(delete(t).where(match), params)
        if gone:
            self._wrote(t)
        if new:
            columns = (*spec.columns, *spec.constant)
            extra = tuple(spec.constant.values())
            await insert_rows(self.session, t, columns, (link + extra for link in new))
            self._wrote(t)
        changed = len({link[0] for link in gone} | {link[0] for link in new})
        self.report.count("updated", spec.entity, changed)

        async def per_owner() -> AsyncIterator[Change]:
            # Owners are named a chunk at a time: a province's first apply changes 200,000.
            async for part in batches(_by_owner(gone, new), self.chunk):
                keys = await self.keys(owners, {owner for owner, _, _ in part})
                for owner, before, after in part:
                    yield (
                        keys[owner],
                        {"value": sorted(map(describe, before), key=str)} if before else None,
                        {"value": sorted(map(describe, after), key=str)} if after else None,
                    )

        await self._audit(spec.entity, "update", changed, per_owner())

    async def keys(self, t: Table, ids: set[int]) -> dict[int, str]:
        """id → key of the rows of `t` with these ids."""
        found: dict[int, str] = {}
        for part in _chunks(sorted(ids), self.chunk):
            rows = await self.session.execute(
                select(t.c.id, t.c.key).where(among(self.session, t.c.id, part))
            )
            found.update((i, key) for i, key in rows)
        return found

    async def _insert(
        self,
        spec: Keyed,
        keys: list[str],
        desired: Mapping[str, tuple[Any, ...]],
        ids: dict[str, int | None],
    ) -> None:
        """New rows for `keys`; their ids filled into `ids`."""
        t = spec.table
        stamps = {c: self.now for c in ("created_at", "updated_at") if c in t.c}
        start = {**({"active": True} if "active" in t.c else {}), **stamps, **spec.constant}
        names = ("key", *spec.fields, *start)
        extra = tuple(start.values())
        await insert_rows(self.session, t, names, ((k, *desired[k], *extra) for k in keys))
        self._wrote(t)
        async for key, row_id in self._rows(t, [t.c.key, t.c.id], spec.scope):
            if ids.get(key, 0) is None:
                ids[key] = row_id

    async def _rows(
        self, t: Table, cols: list[Any], scope: ColumnElement[bool] | None
    ) -> AsyncIterator[tuple[Any, ...]]:
        """The rows as plain tuples, fetched a part at a time: never a whole table's Row
        objects at once."""
        stmt = select(*cols) if scope is None else select(*cols).where(scope)
        result = await self.session.stream(stmt)
        async for part in result.partitions(_PART):
            for row in part:
                yield tuple(row)

    async def _update(self, t: Table, changes: Sequence[_Update]) -> None:
        """Rows that change the same columns share one executemany."""
        stamp = {"updated_at": self.now} if "updated_at" in t.c else {}
        alike: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row_id, _, _, after in changes:
            values = {**after, **stamp}
            alike.setdefault(tuple(values), []).append(
                {"b_id": row_id, **{f"b_{c}": v for c, v in values.items()}}
            )
        for columns, params in alike.items():
            stmt = update(t).where(t.c.id == bindparam("b_id"))
            stmt = stmt.values({c: bindparam(f"b_{c}") for c in columns})
            await self.session.execute(stmt, params)
        if changes:
            self._wrote(t)

    async def _audit(
        self,
        entity: str,
        verb: str,
        total: int,
        changes: Iterable[Change] | AsyncIterable[Change],
    ) -> None:
        await sync_audit.write(self.session, self.now, entity, f"{entity}.{verb}", total, changes)

    def _wrote(self, t: Table) -> None:
        """Statements the ORM does not see (bulk inserts) still make remembered people stale."""
        if t.name in WHO_TABLES:
            self.session.info["who_changed"] = True
            forget_everyone()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _by_owner(gone: list[Link], new: list[Link]) -> Iterator[tuple[Any, list[Link], list[Link]]]:
    """(owner, its links removed, its links added), owner by owner, without an index of all."""
    owner = itemgetter(0)
    marked = heapq.merge(
        ((owner(link), 0, link) for link in sorted(gone, key=owner)),
        ((owner(link), 1, link) for link in sorted(new, key=owner)),
        key=itemgetter(0, 1),
    )
    for key, group in groupby(marked, key=itemgetter(0)):
        sides: tuple[list[Link], list[Link]] = ([], [])
        for _, side, link in group:
            sides[side].append(link)
        yield key, *sides

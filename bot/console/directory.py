"""The directory the console page picks from: people with their units and roles, units, groups.

A province's is 35 MB of JSON: built whole as dicts it took ~240 MB at start and its text was
kept for the process's lifetime. It is written a person or a unit at a time into gzip (the
configuration does not change while the bot runs) and kept compressed, ~1/12 of the size;
browsers take it as it is. It is made when the page first asks: at start it would sit beside
the sync's working set and raise the start's peak.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from itertools import chain, islice
from typing import Any

from bot.console.roster import Roster
from bot.deployment import Loaded
from bot.deployment.schema import Community, Unit
from bot.memory import give_back_freed_memory


class Directory:
    """The directory, made once, when it is first asked for (a province's takes seconds)."""

    def __init__(self, deployment: Loaded, roster: Roster) -> None:
        self._sources: tuple[Loaded, Roster] | None = (deployment, roster)
        self._made: bytes | None = None

    def gzipped(self) -> bytes:
        if self._made is None:
            sources, self._sources = self._sources, None
            assert sources is not None
            self._made = gzipped(*sources)
            give_back_freed_memory()  # its working set was ten times what is kept
        return self._made


def gzipped(deployment: Loaded, roster: Roster) -> bytes:
    """The directory as gzip-compressed JSON, never held whole as text."""
    packer = zlib.compressobj(level=6, wbits=16 + zlib.MAX_WBITS)  # the gzip container
    parts = [packer.compress(piece.encode()) for piece in _pieces(deployment, roster)]
    parts.append(packer.flush())
    return b"".join(parts)


def as_json(body: bytes) -> bytes:
    """The directory's JSON text, for a client that does not take gzip."""
    return gzip.decompress(body)


def _pieces(deployment: Loaded, roster: Roster) -> Iterator[str]:
    spec = deployment.spec
    known = set(roster.ids)  # while it is made: a set answers at once, the roster in µs
    community_of: dict[str, Community] = {m: c for c in spec.communities for m in c.members}
    # Person → the unit they hold a role in, or a list of them when several: most hold one,
    # and a list and a tuple for each of 200,000 people were most of the directory's cost.
    units_of: dict[str, Unit | list[Unit]] = {}
    for unit in spec.units:
        for pid in dict.fromkeys([unit.secretary, *unit.liaisons]):
            if pid is not None and pid in known:
                held = units_of.setdefault(pid, unit)
                if isinstance(held, list):
                    held.append(unit)
                elif held is not unit:
                    units_of[pid] = [held, unit]
    admins = [a for a in spec.committee.admins if a in known]
    first = set(admins)

    def roles(pid: str) -> Iterator[tuple[Unit, str]]:
        """(unit, role) in the configuration's order: units as listed, a secretary first."""
        held = units_of.get(pid, [])
        for unit in held if isinstance(held, list) else [held]:
            if unit.secretary == pid:
                yield unit, "secretary"
            for _ in range(unit.liaisons.count(pid)):
                yield unit, "liaison"

    def home_group(pid: str, held: list[tuple[Unit, str]]) -> str | None:
        if pid in first and spec.committee.admin_group:
            return spec.committee.admin_group
        for unit, _ in held:
            community = community_of.get(unit.id)
            if community is not None and community.group:
                return community.group
        return None

    def person(pid: str, name: str) -> dict[str, Any]:
        held = list(roles(pid))
        kinds = (["admin"] if pid in first else []) + [r for _, r in held]
        return {
            "id": pid,
            "name": name,
            "roles": list(dict.fromkeys(kinds)),
            "units": [{"id": u.id, "short": u.short, "role": r} for u, r in held],
            "home_group": home_group(pid, held),
        }

    committee = {"name": spec.committee.name, "short": spec.committee.short or ""}
    yield '{"committee": ' + _json(committee) + ', "people": ['
    yield from _listed(
        chain(
            (person(pid, roster.names[pid]) for pid in admins),
            (person(pid, name) for pid, name in roster.people() if pid not in first),
        )
    )
    yield '], "units": ['
    yield from _listed(
        {
            "id": u.id,
            "name": u.name,
            "short": u.short,
            "community": community_of[u.id].id if u.id in community_of else None,
            "lead": u.id in community_of and community_of[u.id].lead == u.id,
            "people": [p for p in [u.secretary, *u.liaisons] if p in known],
        }
        for u in spec.units
    )
    yield '], "groups": ['
    community_by_group = {c.group: c for c in spec.communities if c.group}
    yield from _listed(
        {
            "id": g.id,
            "name": g.name,
            "platform": g.platform,
            "community": (
                {"id": community_by_group[g.id].id, "name": community_by_group[g.id].name}
                if g.id in community_by_group
                else None
            ),
            "admins": g.id == spec.committee.admin_group,
        }
        for g in spec.groups
    )
    yield "]}"


def _listed(items: Iterator[dict[str, Any]], per_piece: int = 1000) -> Iterator[str]:
    """JSON array items, comma-separated, a thousand to a piece (one encoding and one
    compression call each)."""
    started = False
    while batch := list(islice(items, per_piece)):
        yield ("," if started else "") + _json(batch)[1:-1]
        started = True


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # json.dumps with options builds one per call


def _json(value: Any) -> str:
    return _ENCODER.encode(value)

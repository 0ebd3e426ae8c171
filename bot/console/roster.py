"""Who the console knows: person ids, names and platform accounts, as plain strings.

The page's webhook and the console's sender both need them. A province names 200,000 people:
one `ChatRef` each and a regular expression of every name cost the serving process ~60 MB and
seconds to compile, so both share one roster of strings (the configuration's own objects) and
find @-mentions by looking names up instead.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from collections.abc import Iterable
from functools import cached_property

from bot.deployment import Loaded


class Lookup:
    """A read-only map of strings kept as two sorted lists: two pointers an entry where a
    dict takes some five (a province's 200,000 people: 3 MB instead of 7.7 MB a map, and the
    server holds two). Of keys given more than once, the first value stays."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        keys: list[str] = []
        values: list[str] = []
        for key, value in pairs:
            keys.append(key)
            values.append(value)
        order = sorted(range(len(keys)), key=keys.__getitem__)  # stable: the first stays first
        self._keys: list[str] = []
        self._values: list[str] = []
        for i in order:
            if not self._keys or self._keys[-1] != keys[i]:
                self._keys.append(keys[i])
                self._values.append(values[i])

    def get(self, key: str, default: str | None = None) -> str | None:
        at = bisect_left(self._keys, key)
        if at < len(self._keys) and self._keys[at] == key:
            return self._values[at]
        return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __getitem__(self, key: str) -> str:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __len__(self) -> int:
        return len(self._keys)


class Roster:
    def __init__(self, deployment: Loaded) -> None:
        self._people = deployment.spec.people
        self.names = Lookup((p.id, p.name) for p in self._people)  # person id → name
        # WeCom or DingTalk account → person id (the first one named)
        self.accounts = Lookup(
            (account, p.id) for p in self._people for account in (p.wecom, p.dingtalk) if account
        )

    @cached_property
    def ids_by_name(self) -> dict[str, str]:
        """Name → person id (a later person of the same name wins). Only @-mentions typed on
        the page need it: built then, not with the rest (7 MB for a province)."""
        return {p.name: p.id for p in self._people}

    @cached_property
    def longest(self) -> int:
        """The longest name, in characters."""
        return max((len(p.name) for p in self._people), default=0)

    def mentioned(self, text: str, sender_id: str) -> tuple[str, ...]:
        """The people @-mentioned in `text`, in order, once each, the sender left out.

        At each @ the longest name that follows wins (王立新 is not read as 王立 when both
        exist), and reading goes on after it."""
        found: list[str] = []
        at = text.find("@")
        while at >= 0:
            start = at + 1
            end = start
            for length in range(min(self.longest, len(text) - start), 0, -1):
                person = self.ids_by_name.get(text[start : start + length])
                if person is not None:
                    found.append(person)
                    end = start + length
                    break
            at = text.find("@", end)
        return tuple(dict.fromkeys(p for p in found if p != sender_id))


_BUILT: dict[int, tuple[weakref.ref[Loaded], Roster]] = {}


def roster(deployment: Loaded) -> Roster:
    """The deployment's roster, built once however many console parts ask for it."""
    key = id(deployment)
    held = _BUILT.get(key)
    if held is not None and held[0]() is deployment:
        return held[1]
    built = Roster(deployment)
    _BUILT[key] = (weakref.ref(deployment, lambda _: _BUILT.pop(key, None)), built)
    return built

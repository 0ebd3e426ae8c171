"""Who the console knows: person ids, names and platform accounts, packed.

The page's webhook, the console's sender and the directory need them. A province names
200,000 people: as str objects (50-80 bytes each) and the configuration's objects they cost the
serving process ~70 MB. Packed into a few long strings they take ~14 MB, so the server can let
the configuration's people go once start-up has written them to the database.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from itertools import accumulate

from bot.deployment.schema import Person


class Packed:
    """Read-only strings kept as one text and where each ends: a character's bytes and four
    more an item, where a str object of its own costs 50-80 bytes."""

    __slots__ = ("_ends", "_text")

    def __init__(self, items: Iterable[str]) -> None:
        parts = list(items)
        self._text = "".join(parts)
        self._ends = array("I", accumulate(map(len, parts)))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> str:
        if not 0 <= i < len(self._ends):
            raise IndexError(i)
        return self._text[self._ends[i - 1] if i else 0 : self._ends[i]]

    def __iter__(self) -> Iterator[str]:
        start = 0
        for end in self._ends:
            yield self._text[start:end]
            start = end

    @property
    def nbytes(self) -> int:
        return self._text.__sizeof__() + self._ends.__sizeof__()


class Lookup:
    """A read-only map of strings, its keys sorted and both sides packed. Of keys given more
    than once, the first value stays."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        given = list(pairs)
        given.sort(key=lambda pair: pair[0])  # stable: the first stays first
        kept = [pair for i, pair in enumerate(given) if not i or given[i - 1][0] != pair[0]]
        self._keys = Packed(key for key, _ in kept)
        self._values = Packed(value for _, value in kept)

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

    @property
    def nbytes(self) -> int:
        return self._keys.nbytes + self._values.nbytes


class Roster:
    """Empty until it learns the people: the server has it learn them after start-up's sync,
    whose working set, beside this, would raise start-up's peak."""

    def __init__(self, people: Sequence[Person] = ()) -> None:
        self.learn(people)

    def learn(self, people: Sequence[Person]) -> None:
        for made in ("ids_by_name", "longest"):
            vars(self).pop(made, None)
        self.ids = Packed(p.id for p in people)  # in the configuration's order
        self._names = Packed(p.name for p in people)  # likewise
        self.names = Lookup((p.id, p.name) for p in people)  # person id → name
        # WeCom or DingTalk account → person id (the first one named)
        self.accounts = Lookup(
            (account, p.id) for p in people for account in (p.wecom, p.dingtalk) if account
        )

    def people(self) -> Iterator[tuple[str, str]]:
        """(id, name) of each person, in the configuration's order."""
        return zip(self.ids, self._names, strict=True)

    @cached_property
    def ids_by_name(self) -> Lookup:
        """Name → person id (a later person of the same name wins). Only @-mentions typed on
        the page need it: built then, not with the rest."""
        return Lookup(zip(reversed(self._names), reversed(self.ids), strict=True))

    @cached_property
    def longest(self) -> int:
        """The longest name, in characters."""
        return max(map(len, self._names), default=0)

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

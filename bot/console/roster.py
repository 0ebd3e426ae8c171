"""Who the console knows: person ids, names and platform accounts, as plain strings.

The page's webhook and the console's sender both need them. A province names 200,000 people:
one `ChatRef` each and a regular expression of every name cost the serving process ~60 MB and
seconds to compile, so both share one roster of strings (the configuration's own objects) and
find @-mentions by looking names up instead.
"""

from __future__ import annotations

import weakref
from functools import cached_property

from bot.deployment import Loaded


class Roster:
    def __init__(self, deployment: Loaded) -> None:
        self._people = deployment.spec.people
        self.names = {p.id: p.name for p in self._people}  # person id → name
        # WeCom or DingTalk account → person id (the first one named)
        self.accounts: dict[str, str] = {}
        for p in self._people:
            for account in (p.wecom, p.dingtalk):
                if account:
                    self.accounts.setdefault(account, p.id)

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

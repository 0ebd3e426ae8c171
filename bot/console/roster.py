"""Who the console knows: person ids, names and platform accounts, as plain strings.

The page's webhook and the console's sender both need them. A province names 200,000 people:
one `ChatRef` each and a regular expression of every name cost the serving process ~60 MB and
seconds to compile, so both share one roster of strings (the configuration's own objects) and
find @-mentions by looking names up instead.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from bot.deployment import Loaded


@dataclass(frozen=True, slots=True)
class Roster:
    names: dict[str, str]  # person id → name
    ids_by_name: dict[str, str]  # name → person id (a later person of the same name wins)
    accounts: dict[str, str]  # WeCom or DingTalk account → person id (the first one named)
    longest: int  # the longest name, in characters

    @classmethod
    def of(cls, deployment: Loaded) -> Roster:
        people = deployment.spec.people
        accounts: dict[str, str] = {}
        for p in people:
            for account in (p.wecom, p.dingtalk):
                if account:
                    accounts.setdefault(account, p.id)
        return cls(
            names={p.id: p.name for p in people},
            ids_by_name={p.name: p.id for p in people},
            accounts=accounts,
            longest=max((len(p.name) for p in people), default=0),
        )

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
    built = Roster.of(deployment)
    _BUILT[key] = (weakref.ref(deployment, lambda _: _BUILT.pop(key, None)), built)
    return built

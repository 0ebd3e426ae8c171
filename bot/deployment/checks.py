"""Cross-reference checks that the schema alone cannot express. Each mistake has its own words."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from bot.deployment.problems import Path, Problem
from bot.deployment.schema import CHANNEL_PLATFORM, CHANNEL_SECRETS, Deployment, EnvRef
from bot.deployment.source import Source
from bot.duerules import DueRuleError, parse_due_rule
from bot.schedules import ScheduleError, parse_schedule

_PYDANTIC_WORDS = {
    "missing": "缺少必填项 (required key missing)",
    "extra_forbidden": "未知的配置项，请检查拼写 (unknown key; check the spelling)",
    "unexpected_keyword_argument": "未知的配置项，请检查拼写 (unknown key; check the spelling)",
    "string_type": "应为文本 (must be a string)",
    "int_type": "应为整数 (must be an integer)",
    "int_parsing": "应为整数 (must be an integer)",
    "list_type": "应为列表 (must be a list)",
    "dict_type": "应为键值映射 (must be a mapping)",
    "model_type": "应为键值映射 (must be a mapping)",
    "dataclass_type": "应为键值映射 (must be a mapping)",
    "literal_error": "取值不在允许范围内 (value not allowed)",
    "string_pattern_mismatch": "格式不对 (wrong format)",
    "string_too_short": "不能为空 (must not be empty)",
    "string_too_long": "太长 (too long)",
    "greater_than_equal": "数值太小 (too small)",
    "less_than_equal": "数值太大 (too large)",
}


def schema_problems(source: Source, error: ValidationError) -> list[Problem]:
    seen: set[tuple[Path, str]] = set()
    out: list[tuple[Path, str, str]] = []
    for e in error.errors():
        # A union reports one error per alternative; the location's tagged part is noise.
        path = tuple(
            p
            for p in e["loc"]
            if not (
                isinstance(p, str)
                and ("[" in p or p in ("EnvRef", "str", "constrained-str", "function-after"))
            )
        )
        words = _PYDANTIC_WORDS.get(e["type"], f"{e['msg']}")
        if e["type"] == "literal_error":
            words += f"：可选 {e.get('ctx', {}).get('expected', '')}"
        if (path, words) in seen:
            continue
        seen.add((path, words))
        out.append((path, words, "error"))
    return source.problems(out)


def cross_checks(
    d: Deployment, env: Mapping[str, str], live: bool, tolerated: frozenset[str] = frozenset()
) -> list[tuple[Path, str, str]]:
    """(path, message, severity) for each problem; references to `tolerated` ids (items that
    failed the schema and were set aside) are not reported again as unknown."""
    found: list[tuple[Path, str, str]] = []
    checks = (_duplicates, _reserved, _references, _communities, _tasks, _channels, _schedules)
    for check in (*checks, _warnings):
        found.extend(check(d))
    found.extend(_secrets(d, env, live))
    return [f for f in found if not any(f"“{t}”不存在" in f[1] for t in tolerated)]


Found = Iterator[tuple[Path, str, str]]


def _dupes(section: str, items: Iterable[Any], attr: str, what: str) -> Found:
    values = [getattr(item, attr) for item in items]
    counts = Counter(v for v in values if v is not None)
    for i, value in enumerate(values):
        if value is not None and counts[value] > 1 and values.index(value) != i:
            yield ((section, i, attr), f"{what}“{value}”重复 (duplicate {section} {attr})", "error")


def _duplicates(d: Deployment) -> Found:
    yield from _dupes("units", d.units, "id", "单位编号")
    yield from _dupes("units", d.units, "name", "单位名称")
    yield from _dupes("units", d.units, "short", "单位简称")
    yield from _dupes("people", d.people, "id", "人员编号")
    yield from _dupes("people", d.people, "wecom", "企业微信账号")
    yield from _dupes("people", d.people, "dingtalk", "钉钉账号")
    yield from _dupes("communities", d.communities, "id", "共同体编号")
    yield from _dupes("communities", d.communities, "name", "共同体名称")
    yield from _dupes("groups", d.groups, "id", "群编号")
    yield from _dupes("groups", d.groups, "chat_id", "群会话ID")
    yield from _dupes("tasks", d.tasks, "id", "任务编号")
    yield from _dupes(("responsibilities", "areas"), d.responsibilities.areas, "id", "责任领域编号")  # type: ignore[arg-type]


def _unknown(path: Path, what: str, value: str) -> tuple[Path, str, str]:
    return (path, f"{what}“{value}”不存在 (unknown {what_en(what)} “{value}”)", "error")


def what_en(what: str) -> str:
    return {
        "单位": "unit",
        "人员": "person",
        "群": "group",
        "共同体": "community",
        "责任领域": "area",
        "责任主体": "duty holder",
    }.get(what, what)


def _references(d: Deployment) -> Found:
    units = {u.id for u in d.units}
    people = {p.id for p in d.people}
    groups = {g.id for g in d.groups}
    for i, u in enumerate(d.units):
        if u.parent and u.parent not in units:
            yield _unknown(("units", i, "parent"), "单位", u.parent)
        if u.secretary and u.secretary not in people:
            yield _unknown(("units", i, "secretary"), "人员", u.secretary)
        for j, p in enumerate(u.liaisons):
            if p not in people:
                yield _unknown(("units", i, "liaisons", j), "人员", p)
    yield from _parent_cycles(d)
    for j, p in enumerate(d.committee.admins):
        if p not in people:
            yield _unknown(("committee", "admins", j), "人员", p)
    if d.committee.admin_group and d.committee.admin_group not in groups:
        yield _unknown(("committee", "admin_group"), "群", d.committee.admin_group)
    holders = {h.id for h in d.responsibilities.holders}
    for i, a in enumerate(d.responsibilities.areas):
        for h in a.duties:
            if h not in holders:
                yield _unknown(("responsibilities", "areas", i, "duties", h), "责任主体", h)


def _reserved(d: Deployment) -> Found:
    for i, p in enumerate(d.people):
        if p.id.startswith("chat_"):
            msg = (
                "人员编号不能以 chat_ 开头，这是聊天中批准绑定的人员专用的 "
                "(person ids starting with chat_ are reserved for people approved by chat)"
            )
            yield (("people", i, "id"), msg, "error")
    for i, g in enumerate(d.groups):
        if g.id.startswith("chat_"):
            msg = (
                "群编号不能以 chat_ 开头，这是聊天中绑定的群（绑定群）专用的 "
                "(group ids starting with chat_ are reserved for groups bound by chat)"
            )
            yield (("groups", i, "id"), msg, "error")


def _schedules(d: Deployment) -> Found:
    for job, expression in d.schedules.items():
        try:
            parse_schedule(expression)
        except ScheduleError as e:
            yield (("schedules", job), str(e), "error")


def _parent_cycles(d: Deployment) -> Found:
    parent = {u.id: u.parent for u in d.units}
    for i, u in enumerate(d.units):
        seen, at = {u.id}, u.parent
        while at in parent:
            if at in seen:
                msg = f"单位“{u.id}”的上级关系形成循环 (parent chain loops back)"
                yield (("units", i, "parent"), msg, "error")
                break
            seen.add(at)
            at = parent[at]


def _communities(d: Deployment) -> Found:
    units = {u.id for u in d.units}
    groups = {g.id for g in d.groups}
    home: dict[str, str] = {}
    for i, c in enumerate(d.communities):
        if c.lead not in units:
            yield _unknown(("communities", i, "lead"), "单位", c.lead)
        elif c.lead not in c.members:
            msg = (
                f"牵头单位“{c.lead}”不在本共同体成员中 "
                f"(the lead unit must be one of the community's members)"
            )
            yield (("communities", i, "lead"), msg, "error")
        if c.group and c.group not in groups:
            yield _unknown(("communities", i, "group"), "群", c.group)
        for j, m in enumerate(c.members):
            if m not in units:
                yield _unknown(("communities", i, "members", j), "单位", m)
            elif m in home and home[m] != c.id:
                msg = (
                    f"单位“{m}”同时属于共同体“{home[m]}”和“{c.id}” "
                    f"(a unit belongs to one community only)"
                )
                yield (("communities", i, "members", j), msg, "error")
            else:
                home[m] = c.id


def _tasks(d: Deployment) -> Found:
    units = {u.id for u in d.units}
    areas = {a.id for a in d.responsibilities.areas}
    holders = {h.id for h in d.responsibilities.holders}
    for i, t in enumerate(d.tasks):
        if t.area not in areas:
            yield _unknown(("tasks", i, "area"), "责任领域", t.area)
        if t.holder and t.holder not in holders:
            yield _unknown(("tasks", i, "holder"), "责任主体", t.holder)
        if isinstance(t.owners, list):
            if not t.owners:
                msg = "指定单位列表为空 (owners list is empty; use all or leads)"
                yield (("tasks", i, "owners"), msg, "error")
            for j, u in enumerate(t.owners):
                if u not in units:
                    yield _unknown(("tasks", i, "owners", j), "单位", u)
        try:
            rule = parse_due_rule(t.due)
        except DueRuleError as e:
            yield (("tasks", i, "due"), str(e), "error")
            continue
        if rule.cadence != t.cadence:
            msg = (
                f"截止规则“{t.due}”是{_CADENCE_ZH[rule.cadence]}规则，与频次"
                f"“{t.cadence}”不符 (due rule implies {rule.cadence}, cadence says {t.cadence})"
            )
            yield (("tasks", i, "due"), msg, "error")


_CADENCE_ZH = {"once": "一次性", "monthly": "按月", "quarterly": "按季度", "yearly": "按年"}


def _channels(d: Deployment) -> Found:
    for i, g in enumerate(d.groups):
        ch = g.channel
        if CHANNEL_PLATFORM[ch.type] != g.platform:
            msg = (
                f"发送通道“{ch.type}”不能用于{g.platform}群 "
                f"(channel {ch.type} does not post to {g.platform})"
            )
            yield (("groups", i, "channel", "type"), msg, "error")
        allowed = {name for name, _ in CHANNEL_SECRETS.get(ch.type, ())}
        for name, required in CHANNEL_SECRETS.get(ch.type, ()):
            if required and getattr(ch, name) is None:
                msg = f"发送通道“{ch.type}”需要 {name} (channel {ch.type} needs {name})"
                yield (("groups", i, "channel"), msg, "error")
        for name in ("key", "access_token", "secret"):
            if getattr(ch, name) is not None and name not in allowed:
                msg = f"发送通道“{ch.type}”不使用 {name} (channel {ch.type} takes no {name})"
                yield (("groups", i, "channel", name), msg, "error")


def _secrets(d: Deployment, env: Mapping[str, str], live: bool) -> Found:
    for i, g in enumerate(d.groups):
        for name in ("key", "access_token", "secret"):
            ref = getattr(g.channel, name)
            if isinstance(ref, EnvRef) and not env.get(ref.env):
                msg = (
                    f"缺少密钥：环境变量 {ref.env} 未设置 "
                    f"(missing secret: environment variable {ref.env} is not set)"
                )
                yield (("groups", i, "channel", name), msg, "error" if live else "warning")


def _warnings(d: Deployment) -> Found:
    members = {m for c in d.communities for m in c.members}
    for i, u in enumerate(d.units):
        if not u.liaisons:
            msg = "单位没有联络员，无人可以报送 (unit has no liaison to check in)"
            yield (("units", i, "liaisons"), msg, "warning")
        if d.communities and u.id not in members:
            msg = "单位不属于任何共同体 (unit belongs to no community)"
            yield (("units", i), msg, "warning")
    for i, p in enumerate(d.people):
        if not (p.wecom or p.dingtalk):
            msg = "人员没有企业微信或钉钉账号，机器人无法识别 (person has no platform id)"
            yield (("people", i), msg, "warning")

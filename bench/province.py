"""A province-scale deployment configuration, in the format of config/sample.

    python bench/province.py OUT [--units 20000] [--per-community 8] [--members-per-unit 10]
                                 [--yaml-units]

writes OUT/duban.yaml, OUT/units.yaml and OUT/plan.yaml (units.yaml, 200,000 people, as JSON,
which is YAML too and what bot/deployment reads fastest, unless ``--yaml-units``): the
sample's committee, admins, admin group, schedules, responsibilities and 60-task plan, with
generated units (each with a secretary and ``members_per_unit - 1`` liaisons, so
``members_per_unit`` people a unit), communities of ``per_community`` units, each with a lead
unit and one work group. Everything is deterministic: the same arguments give the same files.

Groups alternate between WeCom and DingTalk and cycle through the robot channels
(``CHANNEL_CYCLE``). Group robots that need a key or token get a distinct fake one each —
literal values, not ``{env: …}`` references: a robot's 20-a-minute window belongs to its key,
so one key shared by all the groups would make every webhook group one robot. No environment
variable is needed for ``duban config check``; the sample's admin group gets a literal key too.

Person ids are ``p<unit>s`` (secretary) and ``p<unit>l<n>`` (liaisons); a WeCom community's
people have the WeCom userid ``w<unit>s`` / ``w<unit>l<n>``, a DingTalk community's the staff
id ``d<unit>s`` / ``d<unit>l<n>``; every tenth person has both. ``person_accounts()`` gives
the same mapping without reading the files.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SAMPLE = Path(__file__).resolve().parent.parent / "config" / "sample"

# (platform, channel type) per community, in turn: half WeCom, half DingTalk.
CHANNEL_CYCLE: tuple[tuple[str, str], ...] = (
    ("wecom", "wecom_webhook"),
    ("dingtalk", "dingtalk_openapi"),
    ("wecom", "wecom_aibot"),
    ("dingtalk", "dingtalk_webhook"),
    ("wecom", "wecom_appchat"),
    ("dingtalk", "dingtalk_openapi"),
)

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏"
    "魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚"
)
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力鹏宇晨晓欣雨思佳"
_KINDS = ("局机关党委", "局机关党支部", "委机关党委", "中心党支部", "办机关党支部", "院机关党委")
_TOPICS = (
    "党群综合",
    "政务服务",
    "政法平安",
    "经济发展",
    "城乡建设",
    "社会民生",
    "服务基层",
    "财税金融",
)


@dataclass(frozen=True)
class Shape:
    units: int
    per_community: int
    members_per_unit: int

    @property
    def communities(self) -> int:
        return -(-self.units // self.per_community)

    def community_of(self, unit: int) -> int:
        return unit // self.per_community

    def channel_of(self, community: int) -> tuple[str, str]:
        return CHANNEL_CYCLE[community % len(CHANNEL_CYCLE)]


def unit_id(i: int) -> str:
    return f"u{i:05d}"


def group_id(c: int) -> str:
    return f"g{c:04d}"


def _person_name(n: int) -> str:
    s = _SURNAMES[n % len(_SURNAMES)]
    a = _GIVEN[(n // len(_SURNAMES)) % len(_GIVEN)]
    b = _GIVEN[(n * 7 + 3) % len(_GIVEN)]
    return s + a + (b if n % 3 else "")


def _people_of(shape: Shape, i: int) -> Iterator[tuple[str, str, str | None, str | None]]:
    """(person id, name, wecom userid, dingtalk staff id) of unit i: secretary first."""
    platform, _ = shape.channel_of(shape.community_of(i))
    for n in range(shape.members_per_unit):
        suffix = "s" if n == 0 else f"l{n}"
        serial = i * shape.members_per_unit + n
        both = serial % 10 == 9
        wecom = f"w{i:05d}{suffix}" if platform == "wecom" or both else None
        ding = f"d{i:05d}{suffix}" if platform == "dingtalk" or both else None
        yield f"p{i:05d}{suffix}", _person_name(serial), wecom, ding


def person_accounts(
    units: int = 20000, per_community: int = 8, members_per_unit: int = 10
) -> Iterator[tuple[str, str, str | None, str | None]]:
    """(unit id, person id, wecom userid, dingtalk staff id) for every generated person."""
    shape = Shape(units, per_community, members_per_unit)
    for i in range(units):
        for pid, _, wecom, ding in _people_of(shape, i):
            yield unit_id(i), pid, wecom, ding


def _sections(shape: Shape) -> Iterator[tuple[str, Iterator[dict[str, Any]]]]:
    """units.yaml's sections, item by item."""
    sample_people = yaml.safe_load((SAMPLE / "units.yaml").read_text(encoding="utf-8"))["people"]

    def people() -> Iterator[dict[str, Any]]:
        yield from (p for p in sample_people if p["id"].startswith("p_admin_"))
        for i in range(shape.units):
            for pid, name, wecom, ding in _people_of(shape, i):
                accounts = {"wecom": wecom, "dingtalk": ding}
                yield {"id": pid, "name": name, **{k: v for k, v in accounts.items() if v}}

    def units() -> Iterator[dict[str, Any]]:
        for i in range(shape.units):
            c, kind = shape.community_of(i), _KINDS[i % len(_KINDS)]
            yield {
                "id": unit_id(i),
                "name": f"第{c + 1}共同体第{i % shape.per_community + 1}单位{kind}{i}",
                "short": f"单位{i:05d}",
                "secretary": f"p{i:05d}s",
                "liaisons": [f"p{i:05d}l{n}" for n in range(1, shape.members_per_unit)],
            }

    def communities() -> Iterator[dict[str, Any]]:
        for c in range(shape.communities):
            first = c * shape.per_community
            members = [
                unit_id(i) for i in range(first, min(first + shape.per_community, shape.units))
            ]
            yield {
                "id": f"c{c:04d}",
                "name": f"第{c + 1}党建共同体（{_TOPICS[c % len(_TOPICS)]}）",
                "lead": members[0],
                "members": members,
                "group": group_id(c),
            }

    yield from (("people", people()), ("units", units()), ("communities", communities()))


def _write_units(path: Path, shape: Shape, as_json: bool) -> None:
    """units.yaml, an item a line: as JSON (which is YAML too, and what the loader reads
    fastest) or as YAML with one flow mapping per item."""
    with path.open("w", encoding="utf-8") as out:
        if not as_json:
            out.write("# 生成的省级规模配置（bench/province.py），人名、账号均为虚构。\n")
        for n, (section, items) in enumerate(_sections(shape)):
            if as_json:
                out.write(("{" if n == 0 else "],\n") + f'"{section}": [\n')
            else:
                out.write(f"{section}:\n")
            for k, item in enumerate(items):
                line = json.dumps(item, ensure_ascii=False)
                out.write((",\n" if k else "") + line if as_json else f"  - {line}\n")
            if as_json:
                out.write("\n")
        if as_json:
            out.write("]}\n")


def _group_line(shape: Shape, c: int) -> str:
    platform, channel = shape.channel_of(c)
    chat = f"wrkBench{c:06d}" if platform == "wecom" else f"cidBench{c:06d}=="
    secrets = {
        "wecom_webhook": f", key: bench-wecom-key-{c:04d}",
        "dingtalk_webhook": f", access_token: bench-ding-token-{c:04d}, secret: SECbench{c:04d}",
    }.get(channel, "")
    return (
        f"  - {{id: {group_id(c)}, name: 第{c + 1}党建共同体工作群, platform: {platform}, "
        f'chat_id: "{chat}", channel: {{type: {channel}{secrets}}}}}'
    )


def _duban_yaml(shape: Shape) -> str:
    sample = yaml.safe_load((SAMPLE / "duban.yaml").read_text(encoding="utf-8"))
    admin_group = next(g for g in sample["groups"] if g["id"] == sample["committee"]["admin_group"])
    head = yaml.safe_dump({"committee": sample["committee"]}, allow_unicode=True, sort_keys=False)
    # A literal key like the generated groups', so that no environment variable is needed.
    admin_group = {**admin_group, "channel": {**admin_group["channel"], "key": "bench-admins-key"}}
    admin = yaml.safe_dump([admin_group], allow_unicode=True, sort_keys=False)
    head += "groups:\n" + "".join(f"  {line}\n" for line in admin.splitlines())
    groups = [_group_line(shape, c) for c in range(shape.communities)]
    tail = yaml.safe_dump(
        {"schedules": sample["schedules"], "responsibilities": sample["responsibilities"]},
        allow_unicode=True,
        sort_keys=False,
    )
    return head + "\n".join(groups) + "\n" + tail


def _plan_yaml(shape: Shape) -> str:
    """The sample plan; tasks owned by named sample units go to the first communities' leads."""
    text = (SAMPLE / "plan.yaml").read_text(encoding="utf-8")

    def owners(m: re.Match[str]) -> str:
        count = len(m.group(1).split(","))
        leads = [unit_id(c * shape.per_community) for c in range(min(count, shape.communities))]
        return f"owners: [{', '.join(leads)}]"

    return re.sub(r"owners: \[([^\]]*)\]", owners, text)


def write_config(
    out_dir: Path,
    *,
    units: int = 20000,
    per_community: int = 8,
    members_per_unit: int = 10,
    json_units: bool = True,
) -> Path:
    """Write the three files into ``out_dir`` (created if missing); returns ``out_dir``.

    ``json_units``: units.yaml (people, units, communities) written as JSON; else as YAML."""
    if units < 1 or per_community < 1 or members_per_unit < 2:
        raise ValueError(
            "units ≥ 1, per_community ≥ 1, members_per_unit ≥ 2 (a secretary and a liaison)"
        )
    shape = Shape(units, per_community, members_per_unit)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "duban.yaml").write_text(_duban_yaml(shape), encoding="utf-8")
    _write_units(out_dir / "units.yaml", shape, json_units)
    (out_dir / "plan.yaml").write_text(_plan_yaml(shape), encoding="utf-8")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="生成省级规模的督办配置 / province-scale config")
    parser.add_argument("out", type=Path)
    parser.add_argument("--units", type=int, default=20000)
    parser.add_argument("--per-community", type=int, default=8)
    parser.add_argument("--members-per-unit", type=int, default=10)
    parser.add_argument(
        "--yaml-units", action="store_true", help="units.yaml as YAML, not JSON (slower to load)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    write_config(
        args.out,
        units=args.units,
        per_community=args.per_community,
        members_per_unit=args.members_per_unit,
        json_units=not args.yaml_units,
    )
    shape = Shape(args.units, args.per_community, args.members_per_unit)
    print(
        f"{args.out}: {shape.units} units, {shape.communities} communities/groups, "
        f"{shape.units * shape.members_per_unit} members "
        f"in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

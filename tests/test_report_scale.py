"""Summaries at a province's scale: 2,500 communities do not fit in a chat post, so the posts
list those that lag furthest and point to the workbook; the chart draws the same few."""

from __future__ import annotations

from datetime import date

from bot.db import Database
from bot.duerules import Period
from bot.ledger.stats import (
    SHORTLIST,
    CommunityFigures,
    Figures,
    Report,
    UnitFigures,
    community_key,
    shortlist,
)
from bot.render import Renderer
from bot.reports import pictures
from handlers.stats import Scope
from jobs import monthly_report

MONTH = Period.parse("2026-11")
# A post the platforms take as one message: WeCom's markdown limit (PLATFORMS.md).
ONE_MESSAGE = 4096


def province(communities: int) -> Report:
    """Communities of eight units each; community n reported (n * 37) % 100 of 10 on time,
    the rest late or overdue; every tenth owed nothing yet."""
    listed, ranking, committee = [], [], Figures()
    for n in range(1, communities + 1):
        c = CommunityFigures(n, f"第{n}共同体")
        for u in range(8):
            unit_id = n * 10 + u
            if n % 10 == 0:
                f = Figures(assigned=10, open=10)
            else:
                on_time = (n * 37 + u) % 11
                f = Figures(assigned=10, on_time=on_time, late=1, overdue=9 - on_time)
            unit = UnitFigures(unit_id, f"单位{unit_id}", n, f)
            c.units.append(unit)
            c.figures.add(f)
            ranking.append(unit)
        committee.add(c.figures)
        listed.append(c)
    ranked = sorted((c for c in listed if c.figures.owed), key=community_key)
    for place, c in enumerate(ranked, 1):
        c.rank = place
    ranking.sort(key=lambda u: (-(u.figures.rate or 0), u.unit_id))
    for place, u in enumerate(ranking, 1):
        u.rank = place
    return Report(MONTH, committee, listed, ranking)


def test_a_few_communities_are_all_listed_in_their_order() -> None:
    r = province(SHORTLIST)
    listed = shortlist(r.communities)
    assert listed.shown == r.communities and not listed.partial and listed.left_out == 0


def test_of_many_the_furthest_behind_are_listed_worst_first() -> None:
    r = province(300)
    listed = shortlist(r.communities)
    assert listed.partial and len(listed.shown) == SHORTLIST and listed.left_out == 285
    rates = [c.figures.rate for c in listed.shown]
    assert None not in rates  # those with nothing fallen due are not "behind"
    assert rates == sorted(rates)  # type: ignore[type-var]
    behind = max(rates)  # type: ignore[type-var]
    assert all(
        c.figures.rate >= behind
        for c in r.communities
        if c not in listed.shown and c.figures.rate is not None
    )
    # Someone who may not see rankings yet gets the first ones, in their order.
    plain = shortlist(r.communities, worst=False)
    assert plain.shown == r.communities[:SHORTLIST] and plain.left_out == 285


async def test_the_monthly_report_of_a_province_is_one_message(db: Database) -> None:
    r = province(2500)
    renderer = Renderer()
    async with db.begin() as s:
        body = await monthly_report.render(renderer, s, r)
    assert len(body.encode()) <= ONE_MESSAGE
    assert f"**按时率最低的 {SHORTLIST} 个共同体**（共 2500 个）" in body
    worst = shortlist(r.communities).shown[0]
    assert f"- **{worst.name}**（第{worst.rank}名）" in body
    assert "其余 2485 个共同体未列出，全部明细发送 **导出 2026-11** 获取台账。" in body
    best = min((c for c in r.communities if c.rank), key=lambda c: c.rank or 0)
    assert f"- **{best.name}**" not in body


async def test_a_small_monthly_report_lists_every_community(db: Database) -> None:
    r = province(3)
    async with db.begin() as s:
        body = await monthly_report.render(Renderer(), s, r)
    assert all(f"- **第{n}共同体**" in body for n in (1, 2, 3))
    assert "按时率最低" not in body and "未列出" not in body


def test_the_dispatch_digest_of_a_province_is_one_message() -> None:
    r = province(2500)
    body = Renderer().render(
        "posts/dispatch_digest.md.j2",
        month=MONTH,
        listed=shortlist(r.communities),
        day=date(2026, 11, 23),
    )
    assert len(body.encode()) <= ONE_MESSAGE
    assert body.count("\n- ") == SHORTLIST
    assert (
        f"按时率最低的 {SHORTLIST} 个共同体（共 2500 个）" in body
        and "其余 2485 个共同体未列出" in body
    )


def test_the_completion_chart_of_a_province_draws_the_shortlist() -> None:
    png = pictures.completion(province(2500))()
    assert png.startswith(b"\x89PNG") and len(png) < 2 * 1024 * 1024
    # As many bars as a report of twenty communities: the same height, the same picture size.
    small = pictures.completion(province(SHORTLIST))()
    assert _height(png) == _height(small)


def _height(png: bytes) -> int:
    return int.from_bytes(png[20:24], "big")  # IHDR: width at 16, height at 20


def test_the_committee_statistics_of_a_province_list_a_few() -> None:
    r = province(2500)
    scope = Scope("committee", "全委")

    def reply(show_ranks: bool) -> str:
        return Renderer().render(
            "replies/stats_report.md.j2",
            r=r,
            scope=scope,
            figures=r.committee,
            unit=None,
            community=None,
            ranked_units=len(r.ranking),
            ranked_communities=2250,
            trend=[],
            listed=shortlist(r.communities, worst=show_ranks),
            show_ranks=show_ranks,
            published=None,
        )

    ranked, plain = reply(True), reply(False)
    assert f"**按时率最低的 {SHORTLIST} 个共同体**（共 2500 个）" in ranked
    assert f"**各共同体**（前 {SHORTLIST} 个，共 2500 个）" in plain and "按时率最低" not in plain
    assert "- 第1共同体：" in plain and f"- 第{SHORTLIST + 1}共同体：" not in plain
    for text in (ranked, plain):
        assert "其余 2485 个共同体未列出" in text and "**导出 2026-11**" in text
        assert len(text.encode()) <= ONE_MESSAGE

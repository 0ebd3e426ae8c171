"""进度: where my community stands this period; the committee sees every community at once.

Also home of `community_named`, which 逾期 shares: c5, 第五共同体 and 第五党建共同体 are one
community.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from bot.duerules import Period
from bot.ledger.instances import view_periods
from bot.ledger.people import UnitRef, community_units
from bot.ledger.progress import (
    CommunityRef,
    Tally,
    communities,
    community_tallies,
    unit_tallies,
)
from bot.routing import Ctx, Router, UserError
from bot.text import replace_chinese_numerals
from bot.textdates import parse_period

router = Router()
USAGE = "进度 [共同体] [月份]"
EXAMPLE = "进度、进度 十月、进度 第五共同体"


@dataclass(frozen=True, slots=True)
class Board:
    title: str
    rows: list[tuple[UnitRef, Tally]]

    @property
    def total(self) -> Tally:
        sums = [sum(getattr(t, f.name) for _, t in self.rows) for f in fields(Tally)]
        return Tally(*sums)


@router.command(
    "进度",
    "progress",
    summary="查看本共同体各单位本月任务完成情况",
    usage=USAGE,
    example=EXAMPLE,
    audience="worker",
)
async def progress(ctx: Ctx, args: str) -> None:
    who = ctx.worker()
    known = await communities(ctx.session)
    named, month = community_and_period(args, known, ctx, usage=USAGE, example=EXAMPLE)
    periods = view_periods(month)
    mine = list(dict.fromkeys(u.community_id for u in who.units if u.community_id))
    if named is not None and not who.is_admin and named.id not in mine:
        raise UserError("errors/progress_not_yours.md.j2", community=named)
    if named is None and who.is_admin:
        tallies = await community_tallies(ctx.session, periods, ctx.now)
        rows = [(c, tallies.get(c.id, Tally())) for c in known]
        await ctx.reply("replies/progress_summary.md.j2", month=month, rows=rows)
        return
    by_id = {c.id: c for c in known}
    wanted = [named.id] if named else mine
    boards = []
    for community_id in wanted:
        units = await community_units(ctx.session, community_id)
        boards.append(await _board(ctx, by_id[community_id].name, units, periods))
    loose = [u for u in who.units if u.community_id is None]
    if named is None and loose:
        boards.append(await _board(ctx, "本单位", loose, periods))
    await ctx.reply("replies/progress_board.md.j2", month=month, boards=boards)


async def _board(ctx: Ctx, title: str, units: list[UnitRef], periods: tuple[str, ...]) -> Board:
    tallies = await unit_tallies(ctx.session, [u.id for u in units], periods, ctx.now)
    return Board(title, [(u, tallies.get(u.id, Tally())) for u in units])


def community_and_period(
    args: str, known: list[CommunityRef], ctx: Ctx, *, usage: str, example: str
) -> tuple[CommunityRef | None, Period]:
    """The community and month the arguments name; this month when none is named."""
    today = ctx.now.date()
    month = Period.containing("monthly", today)
    named = None
    for word in args.split():
        community = community_named(word, known)
        period = None if community else parse_period(word, today)
        if community is not None and named is None:
            named = community
        elif period is not None and period.cadence == "monthly":
            month = period
        else:
            raise UserError(
                "errors/usage.md.j2",
                problem=f"看不懂“{word}”：请写共同体（如 第五共同体、c5）或月份（如 十月）。",
                usage=usage,
                example=example,
            )
    return named, month


def community_named(word: str, known: list[CommunityRef]) -> CommunityRef | None:
    """The community a word names: its id (c5), name (第五党建共同体) or short form (第五共同体,
    第五, 第5共同体)."""

    def forms(text: str) -> set[str]:
        plain = replace_chinese_numerals(text).lower().replace("党建", "")
        return {plain, plain.removesuffix("共同体")}

    typed = forms(word)
    for c in known:
        if c.key.lower() in typed or forms(c.name) & typed:
            return c
    return None

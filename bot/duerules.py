"""Due rules of the annual task plan (任务清单): parsing admins' Chinese rules, periods, due dates.

Pure domain code, no I/O. A rule names a target month (the period's month, a month of the quarter,
a month of the year, or a fixed date's month) and an anchor inside it: a calendar day, the last
day, the last working day or the N-th working day.

Calendar days 29-31 clamp to the last day of a shorter month (每月31日 is 4月30日 in April), so
a rule written once works all year; a day no month of the rule can have (每月32日, 每年2月30日)
is rejected instead.

Working-day adjustment of calendar-day anchors:
- "backward" (default, 遇非工作日提前): the previous working day, unless that leaves the target
  month; then the next working day. A deadline earlier than its period would make the month's
  task overdue before the month's breakdown is even posted (每月1日 with the 1st on a Sunday).
- "forward" (顺延): the next working day, even past the month end, because admins ask for it.
- "none" (不顺延 / 不调整 / 自然日): the calendar day as written.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from bot.textfold import replace_chinese_numerals

Cadence = Literal["once", "monthly", "quarterly", "yearly"]
PeriodCadence = Literal["monthly", "quarterly", "yearly"]
Roll = Literal["backward", "forward", "none"]
Anchor = Literal["day", "last_day", "last_workday", "nth_workday"]

# Longer than any run of Chinese holidays plus 调休 weekends; a longer gap means a broken calendar.
_SEARCH_LIMIT = 60
_MAX_WORKDAYS_IN_MONTH = 23
_QUARTER_NAMES = "一二三四"
_QUARTER_MONTH_NAMES = {1: "首月", 2: "中间月", 3: "末月"}
_CADENCE_NAMES = {"monthly": "月度", "quarterly": "季度", "yearly": "年度"}
_EXAMPLES = "每月25日前、每月最后一个工作日、每季度末月20日、每年12月15日、2026年3月31日前"


class DueRuleError(ValueError):
    """A due rule that cannot be parsed; str(self) is Chinese, then English in parentheses."""


def weekday_is_workday(day: date) -> bool:
    """Monday to Friday; the real calendar (holidays, 调休) is injected by callers."""
    return day.weekday() < 5


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """A month, quarter or year; index is the month 1-12, the quarter 1-4, or 0 for a year."""

    cadence: PeriodCadence
    year: int
    index: int

    def __post_init__(self) -> None:
        top = {"monthly": 12, "quarterly": 4, "yearly": 0}.get(self.cadence)
        if top is None:
            raise ValueError(f"未知的周期类型 {self.cadence!r} (unknown period cadence)")
        index_ok = 1 <= self.index <= top if top else self.index == 0
        if not (1 <= self.year <= 9999 and index_ok):
            raise ValueError(f"周期超出范围：{self.cadence} {self.year} {self.index} (bad period)")

    @classmethod
    def parse(cls, key: str) -> Period:
        text = key.strip()
        if m := re.fullmatch(r"(\d{4})-(\d{1,2})", text):
            return cls("monthly", int(m[1]), int(m[2]))
        if m := re.fullmatch(r"(\d{4})-[Qq](\d)", text):
            return cls("quarterly", int(m[1]), int(m[2]))
        if re.fullmatch(r"\d{4}", text):
            return cls("yearly", int(text), 0)
        raise ValueError(f"无法识别的周期“{key}”：应为 2026-11、2026-Q4 或 2026 (bad period key)")

    @classmethod
    def containing(cls, cadence: PeriodCadence, day: date) -> Period:
        index = {"monthly": day.month, "quarterly": (day.month + 2) // 3}.get(cadence, 0)
        return cls(cadence, day.year, index)

    @property
    def key(self) -> str:
        if self.cadence == "monthly":
            return f"{self.year:04d}-{self.index:02d}"
        if self.cadence == "quarterly":
            return f"{self.year:04d}-Q{self.index}"
        return f"{self.year:04d}"

    @property
    def label(self) -> str:
        if self.cadence == "monthly":
            return f"{self.year}年{self.index}月"
        if self.cadence == "quarterly":
            return f"{self.year}年第{_QUARTER_NAMES[self.index - 1]}季度"
        return f"{self.year}年度"

    def _months(self) -> tuple[int, int]:
        if self.cadence == "monthly":
            return self.index, self.index
        if self.cadence == "quarterly":
            return 3 * self.index - 2, 3 * self.index
        return 1, 12

    @property
    def first_day(self) -> date:
        return date(self.year, self._months()[0], 1)

    @property
    def last_day(self) -> date:
        return _month_end(self.year, self._months()[1])

    def _shift(self, delta: int) -> Period:
        if self.cadence == "yearly":
            return Period("yearly", self.year + delta, 0)
        span = 12 if self.cadence == "monthly" else 4
        year, rest = divmod(self.year * span + self.index - 1 + delta, span)
        return Period(self.cadence, year, rest + 1)

    def next(self) -> Period:
        return self._shift(1)

    def previous(self) -> Period:
        return self._shift(-1)


def _seek(start: date, step: int, is_workday: Callable[[date], bool]) -> date:
    for offset in range(1, _SEARCH_LIMIT + 1):
        day = start + timedelta(days=step * offset)
        if is_workday(day):
            return day
    raise ValueError(
        f"{start} 前后{_SEARCH_LIMIT}天内没有工作日，请检查工作日历 (no working day near {start})"
    )


@dataclass(frozen=True, slots=True)
class DueRule:
    """A parsed rule. month: 0 for monthly, 1-3 within the quarter, 1-12 for yearly and once;
    day: the calendar day, or N for the N-th working day, else 0; year: only for once, else 0.
    roll only affects the calendar-day anchors ("day", "last_day")."""

    text: str
    cadence: Cadence
    roll: Roll
    anchor: Anchor
    month: int = 0
    day: int = 0
    year: int = 0

    def _target_month(self, period: Period | None) -> tuple[int, int]:
        if self.cadence == "once":
            return self.year, self.month
        if period is None or period.cadence != self.cadence:
            got = period.key if period else "无"
            raise ValueError(
                f"规则“{self.text}”需要{_CADENCE_NAMES[self.cadence]}周期，而不是{got}"
                f" (needs a {self.cadence} period)"
            )
        if self.cadence == "monthly":
            return period.year, period.index
        if self.cadence == "quarterly":
            return period.year, 3 * period.index - 3 + self.month
        return period.year, self.month

    def due_date(
        self, period: Period | None, is_workday: Callable[[date], bool] = weekday_is_workday
    ) -> date:
        year, month = self._target_month(period)
        end = _month_end(year, month)
        if self.anchor == "last_workday":
            return end if is_workday(end) else _seek(end, -1, is_workday)
        if self.anchor == "nth_workday":
            count = 0
            for offset in range(end.day):
                day = date(year, month, 1 + offset)
                count += is_workday(day)
                if count == self.day:
                    return day
            # A month with fewer working days than N (holidays) gets its last working day.
            return end if is_workday(end) else _seek(end, -1, is_workday)
        day = end if self.anchor == "last_day" else end.replace(day=min(self.day, end.day))
        if self.roll == "none" or is_workday(day):
            return day
        if self.roll == "backward":
            earlier = _seek(day, -1, is_workday)
            if earlier.month == month:
                return earlier
        return _seek(day, 1, is_workday)

    def period_of_once(self) -> Period:
        if self.cadence != "once":
            raise ValueError(f"规则“{self.text}”不是一次性任务 (not a once rule)")
        return Period("monthly", self.year, self.month)

    def describe(self) -> str:
        """Normalised Chinese that parse_due_rule reads back as the same rule."""
        end_word = "底"
        if self.cadence == "monthly":
            where = "每月"
        elif self.cadence == "quarterly":
            where = "每季度" + _QUARTER_MONTH_NAMES[self.month]
            if self.month == 3 and self.anchor in ("last_day", "last_workday"):
                where, end_word = "每季度", "末"
        elif self.cadence == "yearly":
            where = f"每年{self.month}月"
        else:
            where = f"{self.year}年{self.month}月"
        if self.anchor == "last_workday":
            return f"{where}最后一个工作日"
        if self.anchor == "nth_workday":
            return f"{where}第{self.day}个工作日"
        notes = []
        if self.anchor == "last_day":
            where += end_word
        else:
            where += f"{self.day}日"
            if self._may_clamp():
                notes.append("平年取2月28日" if self.cadence == "yearly" else "小月取月末")
        notes.append(_ROLL_NOTES[self.roll])
        return f"{where}前（{'，'.join(notes)}）"

    def _may_clamp(self) -> bool:
        if self.cadence == "once":
            return False
        months = {"monthly": range(1, 13), "quarterly": range(self.month, 13, 3)}
        # 2026 is a common year, so February counts as 28 days here.
        lengths = (calendar.monthrange(2026, m)[1] for m in months.get(self.cadence, [self.month]))
        return self.day > min(lengths)


_ROLL_NOTES = {
    "backward": "遇非工作日提前",
    "forward": "遇非工作日顺延",
    "none": "按自然日，不调整",
}
_QUARTER_MONTH = (
    dict.fromkeys(("首月", "初月", "第1个月", "第1月"), 1)
    | dict.fromkeys(("中间月", "中月", "第2个月", "第2月"), 2)
    | dict.fromkeys(("末月", "尾月", "最后1个月", "最后1月", "第3个月", "第3月"), 3)
)
_QM = "(?P<qm>" + "|".join(sorted(_QUARTER_MONTH, key=len, reverse=True)) + ")?"
_DAY = (
    r"(?:(?P<day>\d+)日|(?P<end>月?底|月?末|最后1天|最后1日|下旬)|(?P<lastwd>最后1?个?工作日)"
    r"|第(?P<nth>\d+)个工作日|(?P<xun>上旬|中旬))"
)
_FORMS: list[tuple[Cadence, re.Pattern[str]]] = [
    ("monthly", re.compile(rf"每月{_DAY}")),
    ("quarterly", re.compile(rf"每季度的?{_QM}{_DAY}")),
    ("yearly", re.compile(r"每年(?P<special>年底|年末|底|末|年中)")),
    ("yearly", re.compile(rf"每年(?P<month>\d+)月份?{_DAY}")),
    ("once", re.compile(rf"(?P<year>\d{{4}})年(?P<month>\d+)月{_DAY}")),
    ("once", re.compile(r"(?P<year>\d{4})(?P<s>[-/.])(?P<month>\d\d?)(?P=s)(?P<day>\d\d?)")),
]
_MODIFIER = (
    r"(?:如|若)?遇?到?(?:法定)?(?:节假日|假日|非工作日|休息日|周末|双休日)?"
    r"(?:或(?:节假日|假日|周末|休息日))?(?:则|时)?"
    r"(?:(?P<none>不顺延|不调整|不提前|不变|按?自然日(?:计算)?)"
    r"|(?P<forward>顺延|往后顺延|向后顺延|延后|后延)|(?P<backward>提前|往前|向前|前移))"
    r"(?:(?:至|到)(?:下|后|前|上)1?个?工作日)?"
)
_MODIFIER_PIECE = re.compile(_MODIFIER)
_MODIFIER_GLUED = re.compile(f"(?:{_MODIFIER})$")
_CLAMP_NOTE = re.compile(r"小月取月末|平年取2月28日")


def _error(zh: str, en: str) -> DueRuleError:
    return DueRuleError(f"{zh} ({en})")


def _roll_of(match: re.Match[str]) -> Roll:
    return "none" if match["none"] else "forward" if match["forward"] else "backward"


def parse_due_rule(text: str) -> DueRule:
    """Parse an admin's due rule; raises DueRuleError with a bilingual one-line message."""
    shown = " ".join(text.split())
    shown = shown if len(shown) <= 40 else shown[:40] + "…"
    unknown = _error(
        f"无法识别的截止规则“{shown}”：可用写法如 {_EXAMPLES}",
        f"unrecognised due rule; accepted forms include {_EXAMPLES}",
    )
    s = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).rstrip("。.")
    if not s:
        raise _error("截止规则为空：" + f"可用写法如 {_EXAMPLES}", "empty due rule")
    s = replace_chinese_numerals(s).replace("号", "日")
    s = s.replace("每个月", "每月").replace("每个季度", "每季度")
    s = re.sub(r"每季(?!度)", "每季度", s)
    head, *rest = re.split(r"[(,;、]", s, maxsplit=1)
    rolls: set[Roll] = set()
    for piece in re.split(r"[(),;、]+", rest[0] if rest else ""):
        if piece and not _CLAMP_NOTE.fullmatch(piece):
            if not (m := _MODIFIER_PIECE.fullmatch(piece)):
                raise unknown
            rolls.add(_roll_of(m))
    if m := _MODIFIER_GLUED.search(head):
        rolls.add(_roll_of(m))
        head = head[: m.start()]
    if len(rolls) > 1:
        raise _error(f"截止规则“{shown}”的顺延要求相互矛盾", "conflicting working-day modifiers")
    head = re.sub(r"(?:之前|以前|为止|前|止)$", "", re.sub(r"^(?:截止|截至)到?", "", head))
    for cadence, form in _FORMS:
        if m := form.fullmatch(head):
            return _build(text, cadence, rolls.pop() if rolls else "backward", m, shown)
    raise unknown


def _build(text: str, cadence: Cadence, roll: Roll, m: re.Match[str], shown: str) -> DueRule:
    g = {k: v for k, v in m.groupdict().items() if v}
    month, day, year = int(g.get("month", 0)), int(g.get("day", 0)), int(g.get("year", 0))
    anchor: Anchor = "day"
    if "special" in g:
        anchor, month = "last_day", 6 if g["special"] == "年中" else 12
    elif "end" in g:
        anchor = "last_day"
    elif "lastwd" in g:
        anchor = "last_workday"
    elif "nth" in g:
        anchor, day = "nth_workday", int(g["nth"])
    elif "xun" in g:
        day = 10 if g["xun"] == "上旬" else 20
    if cadence == "quarterly":
        if "qm" in g:
            month = _QUARTER_MONTH[g["qm"]]
        elif anchor == "day":
            raise _error(
                f"截止规则“{shown}”没有写明是季度的哪个月：请写 每季度末月20日、每季度首月10日 等",
                "say which month of the quarter",
            )
        else:
            month = 1 if anchor == "nth_workday" else 3
    if anchor in ("last_workday", "nth_workday"):
        roll = "backward"  # working-day anchors never land on a non-working day
    if cadence in ("yearly", "once") and not 1 <= month <= 12:
        raise _error(f"截止规则“{shown}”中的月份{month}不存在：月份应为1-12", "no such month")
    if cadence == "once" and year == 0:
        raise _error(f"截止规则“{shown}”中的年份0000不存在", "no such year")
    if anchor == "nth_workday" and not 1 <= day <= _MAX_WORKDAYS_IN_MONTH:
        raise _error(
            f"截止规则“{shown}”中的第{day}个工作日不存在：一个月最多{_MAX_WORKDAYS_IN_MONTH}个工作日",
            "no such working day",
        )
    if anchor == "day":
        # Monthly and quarterly days clamp in short months; only a day no month has is wrong.
        top, scope = 31, "一个月"
        if cadence == "yearly":
            top, scope = calendar.monthrange(2024, month)[1], f"{month}月"  # 2024: a leap year
        elif cadence == "once":
            top, scope = calendar.monthrange(year, month)[1], f"{year}年{month}月"
        if not 1 <= day <= top:
            raise _error(f"截止规则“{shown}”中的日期不存在：{scope}没有{day}日", "no such date")
    return DueRule(text, cadence, roll, anchor, month, day, year)

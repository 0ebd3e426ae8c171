"""Admins' schedule expressions, in Chinese as they say them or as plain cron, to ScheduleSpec.

Forgiving about form (full-width digits, colons and spaces; Chinese numerals; 号 for 日; 周,
星期 or 礼拜; 9:00, 9点, 9点半, 上午9点, 下午5点30), strict about meaning: a day, weekday, hour
or minute that does not exist is an error naming it, never a guess.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import replace

from bot.schedules.cron import CronFieldError, parse_cron
from bot.schedules.spec import QUARTER_MONTH_NAMES, Anchor, ScheduleSpec, Scope
from bot.text import CHINESE_NUMERAL, replace_chinese_numerals

EXAMPLES = (
    "“每天 8:00”“工作日 9:00”“每周一 8:30”“每周一、周四 9:00”“每月1日 9:00”“每月1日、15日 9:00”"
    "“每月第一个工作日 9:00”“每月最后一个工作日 17:00”“每季度首月5日 9:00”"
    "“每季度第一个工作日 9:00”，或5段 cron 如“30 8 * * 1-5”"
)
_EXAMPLES_EN = (
    "every day, working days, weekdays, days of the month, the N-th or last working day of a "
    "month or quarter, each with a time, or 5-field cron"
)
_MAX_WORKDAYS_IN_MONTH = 23


class ScheduleError(ValueError):
    """str(self): what is wrong and the accepted forms in one Chinese sentence, then English.
    reason: only the Chinese "what is wrong", for replies that show the examples elsewhere."""

    def __init__(self, reason: str, en: str) -> None:
        super().__init__(f"{reason}；可用写法如 {EXAMPLES} ({en}; accepted: {_EXAMPLES_EN})")
        self.reason = reason


_CN_SHOW = "零一二三四五六七八九十"
_CRON_PREFIX = re.compile(r"cron\s*:?\s*", re.IGNORECASE)
_CRONISH = re.compile(r"[0-9A-Za-z*/,\-]+(?:\s+[0-9A-Za-z*/,\-]+)+")
_NOTE = re.compile(r"\((?:小月取月末|平年取2月28日)\)")
_AMPM = "凌晨|早上|早晨|清晨|上午|中午|午间|下午|傍晚|晚上|夜间|夜里"
# Hours and minutes may be Chinese numerals; they are read before the days are, so that the
# weekday in 每周一8:30 is not taken for the hour 18.
_CN = CHINESE_NUMERAL.pattern
_TIME = re.compile(
    rf"(?<!\d)(?P<ampm>{_AMPM})?\s?(?P<h>\d{{1,2}}|{_CN})"
    rf"(?:[:.](?P<m>\d\d)|[点时](?:(?P<half>半)|(?P<m2>\d{{1,2}}|{_CN})分?|整|钟)?)"
)
_AFTERNOON = {"下午", "傍晚", "晚上", "夜间", "夜里"}
_WEEK = "(?:周|星期|礼拜)"
_WEEKDAY_ITEM = re.compile(rf"{_WEEK}?(?P<a>\d+|日|天)(?:[至到~-]{_WEEK}?(?P<b>\d+|日|天))?")
_QM = {"首月": 1, "初月": 1, "第1个月": 1, "第1月": 1, "中间月": 2, "中月": 2, "第2个月": 2}
_QM |= {"第2月": 2, "末月": 3, "尾月": 3, "最后1个月": 3, "最后1月": 3, "第3个月": 3, "第3月": 3}
_QM_RE = "|".join(sorted(_QM, key=len, reverse=True))
_SCOPES: list[tuple[Scope, re.Pattern[str]]] = [
    ("month", re.compile(r"每月(?P<rest>.+)")),
    ("quarter", re.compile(rf"每季度的?(?P<qm>{_QM_RE})?(?P<rest>.+)")),
    ("year", re.compile(r"每年(?P<month>\d+)月份?(?P<rest>.+)")),
]
_DAYS = re.compile(r"(?:\d+日?、)*\d+日")


def _show(text: str) -> str:
    shown = " ".join(text.split())
    return shown if len(shown) <= 40 else shown[:40] + "…"


def parse_schedule(text: str) -> ScheduleSpec:
    """Parse an admin's schedule; raises ScheduleError with a bilingual one-line message."""
    shown = _show(text)
    s = unicodedata.normalize("NFKC", text).strip()
    if not s:
        raise ScheduleError("日程为空，请写明什么时候执行", "empty schedule")
    cron_text = _CRON_PREFIX.sub("", s, count=1) if _CRON_PREFIX.match(s) else None
    if cron_text is not None or (_CRONISH.fullmatch(s) and ("*" in s or len(s.split()) == 5)):
        try:
            return ScheduleSpec("cron", cron=parse_cron(cron_text if cron_text is not None else s))
        except CronFieldError as e:
            raise ScheduleError(f"cron 表达式“{shown}”有误：{e.zh}", e.en) from None
    s = _NOTE.sub("", " ".join(s.split())).rstrip("。. ")
    candidates = _time_splits(s)
    first: tuple[re.Match[str], ScheduleError] | None = None
    for m, days_text in candidates:
        try:
            spec = _days(days_text, shown)
        except ScheduleError as e:
            first = first or (m, e)
            continue
        hour, minute = _time(m, shown)
        return replace(spec, hour=hour, minute=minute)
    if first:
        _time(first[0], shown)  # a time that cannot exist is the clearer complaint
        raise first[1]
    _days(s, shown)
    raise ScheduleError(f"日程“{shown}”缺少时间，请在后面写上如 9:00", "missing time of day")


def _time_splits(s: str) -> list[tuple[re.Match[str], str]]:
    """Every way to read a time at the end (每天 8:00) or the start (上午9点 每天), leftmost
    first: 每周二十点 reads as 每周 + 20点 or 每周二 + 10点, and the days decide."""
    found = [(m, s[:i]) for i in range(len(s)) if (m := _TIME.fullmatch(s, i))]
    if (m := _TIME.match(s)) and m.end() < len(s) and not s[m.end()].isdigit():
        found.append((m, s[m.end() :]))
    return found


def _number(text: str) -> int:
    digits = replace_chinese_numerals(text)
    return int(digits) if digits.isdigit() else 99  # 99: no such hour or minute


def _time(m: re.Match[str], shown: str) -> tuple[int, int]:
    hour, ampm = _number(m["h"]), m["ampm"] or ""
    minute = 30 if m["half"] else _number(m["m"] or m["m2"] or "0")
    # 下午5点 is 17:00, 中午1点 is 13:00; 下午17点 is already on the 24-hour clock.
    top = 12 if ampm in _AFTERNOON else 4 if ampm in ("中午", "午间") else 1
    if 1 <= hour < top:
        hour += 12
    if hour > 23 or (ampm in ("凌晨", "早上", "早晨", "清晨", "上午") and hour > 12):
        raise ScheduleError(
            f"日程“{shown}”中的时间不存在：没有{ampm}{m['h']}点，小时应为0-23", "no such hour"
        )
    if minute > 59:
        raise ScheduleError(
            f"日程“{shown}”中的时间不存在：没有{minute}分，分钟应为0-59", "no such minute"
        )
    return hour, minute


def _days(text: str, shown: str) -> ScheduleSpec:
    s = re.sub(r"\s+", "", replace_chinese_numerals(text)).replace("号", "日")
    s = re.sub(r"[,/和及与]", "、", s.replace("每个月", "每月"))
    s = re.sub(r"每个?季(?:度)?", "每季度", s)
    if not s:
        raise ScheduleError(f"日程“{shown}”没有写哪天执行", "say which days")
    if len(pieces := re.split(r"、(?=每)", s)) > 1:  # 每周一及每月15日: either one's days
        parts = tuple(dict.fromkeys(_days(p, shown) for p in pieces))
        return parts[0] if len(parts) == 1 else ScheduleSpec("union", parts=parts)
    if re.fullmatch(r"每天|每日|天天|每1天", s):
        return ScheduleSpec("daily")
    if re.fullmatch(r"(?:每个?|每逢|逢)?工作日(?:每天)?", s):
        return ScheduleSpec("workdays")
    if m := re.fullmatch(rf"每?个?{_WEEK}(?P<list>.+)", s):
        return ScheduleSpec("weekly", weekdays=_weekdays(m["list"], shown))
    for scope, form in _SCOPES:
        if m := form.fullmatch(s):
            return _monthly(scope, m, shown)
    raise ScheduleError(f"无法识别的日程“{shown}”", "unrecognised schedule")


def _weekday(token: str, shown: str) -> int:
    if token in ("日", "天"):
        return 6
    n = int(token)
    if not 1 <= n <= 7:
        name = _CN_SHOW[n] if n <= 10 else token
        raise ScheduleError(
            f"日程“{shown}”中的星期不存在：没有“周{name}”，应为周一至周日", "no such weekday"
        )
    return n - 1


def _weekdays(text: str, shown: str) -> tuple[int, ...]:
    found: set[int] = set()
    for item in text.split("、"):
        m = _WEEKDAY_ITEM.fullmatch(item)
        if not m:
            raise ScheduleError(f"无法识别的日程“{shown}”", "unrecognised weekday list")
        first = _weekday(m["a"], shown)
        last = _weekday(m["b"], shown) if m["b"] else first
        if last < first:
            raise ScheduleError(
                f"日程“{shown}”的星期范围应从前往后写，如 周一至周五", "weekday range backwards"
            )
        found.update(range(first, last + 1))
    return tuple(sorted(found))


def _monthly(scope: Scope, m: re.Match[str], shown: str) -> ScheduleSpec:
    rest, month, nth = m["rest"], 0, 0
    anchor: Anchor = "days"
    days: tuple[int, ...] = ()
    if scope == "year":
        month = int(m["month"])
        if not 1 <= month <= 12:
            raise ScheduleError(f"日程“{shown}”中的月份不存在：没有{month}月", "no such month")
    if w := re.fullmatch(r"第(\d+)个?工作日", rest):
        anchor, nth = "nth_workday", int(w[1])
        if not 1 <= nth <= _MAX_WORKDAYS_IN_MONTH:
            raise ScheduleError(
                f"日程“{shown}”中的第{nth}个工作日不存在：一个月最多{_MAX_WORKDAYS_IN_MONTH}个工作日",
                "no such working day",
            )
    elif re.fullmatch(r"最后1?个?工作日", rest):
        anchor = "last_workday"
    elif re.fullmatch(r"最后1[天日]|月?底|月?末", rest):
        anchor = "last_day"
    elif _DAYS.fullmatch(rest):
        days = tuple(sorted({int(d) for d in re.findall(r"\d+", rest)}))
    else:
        raise ScheduleError(f"无法识别的日程“{shown}”", "unrecognised day of the month")
    if scope == "quarter":
        if m["qm"]:
            month = _QM[m["qm"]]
        elif anchor == "days":
            raise ScheduleError(
                f"日程“{shown}”没有写明是季度的哪个月，如 每季度首月5日",
                "say which month of the quarter",
            )
        else:
            month = 1 if anchor == "nth_workday" else 3
    if days:
        top, scope_name = 31, "每月"
        if scope == "year":
            top, scope_name = calendar.monthrange(2024, month)[1], f"{month}月"  # leap year
        elif scope == "quarter":
            scope_name = "每季度" + QUARTER_MONTH_NAMES[month]
        if days[0] < 1 or days[-1] > top:
            bad = days[0] if days[0] < 1 else days[-1]
            raise ScheduleError(
                f"日程“{shown}”中的日期不存在：{scope_name}没有{bad}日，日期应为1-{top}",
                "no such day of the month",
            )
    return ScheduleSpec("monthly", scope=scope, month=month, anchor=anchor, days=days, nth=nth)

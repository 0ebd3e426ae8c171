"""Forgiving input for chat commands, and safe output of what users typed. Pure, no I/O.

People type on phones, in Chinese, mixing full- and half-width characters. A handler normalizes
the text once, finds its command with match_command, then reads numbers, periods and dates
(those live in bot.textdates, re-exported here). Decisions (the tests pin each one):

- normalize folds full-width ASCII (U+FF01-FF5E, so ：→: ＃→# ３→3) and U+3000 to ASCII, except
  ，and ；: they stay as typed so free text keeps its Chinese punctuation, and every tokenizer here
  treats , ， 、 ; ； alike. Runs of blanks (U+2005 after WeCom @-mentions, NBSP, tabs) become
  one space; line breaks stay, because free text (公告, 说明) needs them; blank lines collapse
  to one. A leading or trailing @<bot name> goes (only known names, ASCII case-insensitive; a
  trailing one not after an ASCII letter or digit: that is an e-mail address), then trailing
  。！!？?~～…⋯. and blanks. Empty output means a bare mention: answer with help.
- Command names: Chinese names need no space after them (打卡3), except one-character names
  (我), which would otherwise swallow sentences (我们单位…); ASCII names need a non-letter after.
- escape_markdown swaps markup characters for their full-width twins instead of backslashes:
  WeCom's and DingTalk's renderers are not CommonMark and may show the backslash, while ＊（）＃
  read naturally in Chinese. Every @ becomes ＠, which no platform parses as a mention (a
  zero-width joiner is invisible and may be stripped before parsing). http(s) links stay usable.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from bot.textdates import parse_date, parse_period
from bot.textfold import (
    CHINESE_NUMERAL,
    chinese_numeral_value,
    fold_width,
    replace_chinese_numerals,
)

__all__ = [
    "CHINESE_NUMERAL",
    "SEPARATORS",
    "chinese_numeral_value",
    "closest",
    "escape_markdown",
    "fold_width",
    "match_command",
    "normalize",
    "parse_date",
    "parse_number",
    "parse_numbers",
    "parse_period",
    "replace_chinese_numerals",
    "split_command",
]

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_LINE_BREAK = re.compile(r"\r\n|[\r\n\v\f\x85\u2028\u2029]")
_BLANKS = re.compile(r"\s+")
_TRAILING = "。！!？?~～…⋯. \n"
SEPARATORS = ",，、;；:："  # the tokenizers split on any of them
_SKIP = " \n" + SEPARATORS


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def _glued(left: str, right: str) -> bool:
    """Two ASCII letters or two digits: one word, so a name cannot end between them."""
    return bool(left and right) and (
        (left.isascii() and right.isascii() and left.isalpha() and right.isalpha())
        or (left in "0123456789" and right in "0123456789")
    )


def _is_ascii_word(char: str) -> bool:
    return char.isascii() and char.isalnum()


def normalize(text: str, bot_names: Iterable[str] = ()) -> str:
    """The message as commands read it; idempotent (see the module docstring)."""
    names = {" ".join(fold_width(n).split()).lstrip("@").strip() for n in bot_names}
    ordered = sorted((n for n in names if n), key=len, reverse=True)
    while True:
        tidied = _normalize_once(text, ordered)
        if tidied == text:
            return text
        text = tidied


def _normalize_once(text: str, names: list[str]) -> str:
    lines = [_BLANKS.sub(" ", line).strip() for line in _LINE_BREAK.split(fold_width(text))]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    for name in names:
        size = len(name) + 1
        head, tail = text[:size], text[-size:]
        mention = _ascii_lower(f"@{name}")
        if _ascii_lower(head) == mention and not _glued(name[-1], text[size : size + 1]):
            text = text[size:]
        elif _ascii_lower(tail) == mention and not _is_ascii_word(text[-size - 1 : -size]):
            text = text[:-size]
    return text.rstrip(_TRAILING).lstrip()


def split_command(text: str) -> tuple[str, str]:
    """The first word (ASCII lower-cased) and the rest; a digit or # also ends the word."""
    text = text.lstrip()
    word = re.match(r"[^\s0-9#,，、;；:：]+", text) or re.match(r"\S*", text)
    assert word is not None  # \S* always matches
    return _ascii_lower(word[0]), text[word.end() :].lstrip(_SKIP)


@lru_cache(maxsize=512)
def _name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r"\s*".join(map(re.escape, name.split())), re.IGNORECASE)


def match_command(text: str, names: Iterable[str]) -> tuple[str, str] | None:
    """The longest name in `names` that starts the text, and the rest; None if none does.

    The name comes back as spelled in `names`; inner spaces of a name are optional in the text
    (审核 通过 matches 审核通过)."""
    text = text.lstrip()
    best: tuple[int, str] | None = None
    for name in names:
        if not name.strip() or not (m := _name_pattern(name).match(text)):
            continue
        after, last = text[m.end() : m.end() + 1], name.strip()[-1]
        if _glued(last, after) or (
            len(name.strip()) == 1 and not last.isascii() and after.isalpha()
        ):
            continue
        if best is None or m.end() > best[0]:
            best = (m.end(), name)
    return None if best is None else (best[1], text[best[0] :].lstrip(_SKIP))


_ITEM = re.compile(
    rf"(?:第|#|no\.?|№)?\s*(?:(?P<arabic>[0-9]{{1,18}})|(?P<chinese>{CHINESE_NUMERAL.pattern}))"
    r"(?P<hao>号)?",
    re.IGNORECASE,
)
_RANGE_MARK = re.compile(r"\s*(?:[-~～〜—–]|至|到)\s*")
_BETWEEN = re.compile(r"(?:\s|[,，、;；:：]|和|及|与)*")
# After an Arabic number these make it part of the free text (10月, 3个人, 2026-10, 9:30).
_UNIT_AFTER = frozenset("0123456789年月日号季周时点分秒个人名次项条天期届岁元%./-~～〜—–至到")
_MAX_RANGE = 50


def parse_number(token: str) -> int | None:
    """An instance number: 3, ３, 三, 第3, 3号, #3, No.3; None for anything else."""
    m = _ITEM.fullmatch(fold_width(token).strip())
    return None if m is None else _value(m)


def _value(m: re.Match[str]) -> int | None:
    return int(m["arabic"]) if m["arabic"] else chinese_numeral_value(m["chinese"])


def _bounded(m: re.Match[str], text: str) -> bool:
    after = text[m.end() : m.end() + 1]
    if m["arabic"]:
        return after not in _UNIT_AFTER and not re.match(r":\d", text[m.end() :])
    # Chinese numerals begin ordinary words (一切, 三会一课), so they must stand alone.
    return after == "" or after.isspace() or after in SEPARATORS or after in "和及与号"


def _next_numbers(text: str, pos: int) -> tuple[list[int], int] | None:
    between = _BETWEEN.match(text, pos)
    first = _ITEM.match(text, between.end() if between else pos)
    if first is None:
        return None
    mark = _RANGE_MARK.match(text, first.end())
    second = _ITEM.match(text, mark.end()) if mark else None
    if second and _bounded(second, text):
        low, high = _value(first), _value(second)
        if low is not None and high is not None and 0 <= high - low < _MAX_RANGE:
            return list(range(low, high + 1)), second.end()
    value = _value(first)
    return ([value], first.end()) if value is not None and _bounded(first, text) else None


def parse_numbers(text: str) -> tuple[list[int], str]:
    """The leading instance numbers and the free text after them.

    Numbers are separated by blanks, , ， 、 ; ；, 和/及/与; ranges 3-5, 3~5, 3至5 of up to 50
    numbers expand. Duplicates go, order stays. `打卡 3、5 已开展` → ([3, 5], "已开展")."""
    numbers: list[int] = []
    end = 0
    while (found := _next_numbers(text, end)) is not None:
        values, end = found
        numbers += [v for v in values if v not in numbers]
    return numbers, text[end:].lstrip(_SKIP)


# Words people type for a command they mean; consulted before similarity. Homophone slips of
# pinyin input (打开/打卡, 预期/逾期) are here too, since edit distance cannot see them.
_CONFUSIONS: dict[str, tuple[str, ...]] = {
    "签到": ("打卡",), "打开": ("打卡",), "达卡": ("打卡",), "提交": ("打卡", "报送"),
    "上报": ("报送",), "填报": ("报送",), "汇报": ("报送",), "报告": ("报送",),
    "任务": ("本月任务",), "待办": ("本月任务",), "清单": ("本月任务",), "本月": ("本月任务",),
    "帮忙": ("帮助",), "菜单": ("帮助",), "命令": ("帮助",), "说明": ("帮助",),
    "功能": ("帮助",), "怎么用": ("帮助",), "?": ("帮助", "help"),
    "进展": ("进度",), "情况": ("进度",), "排名": ("进度",), "统计": ("进度",),
    "超期": ("逾期",), "过期": ("逾期",), "预期": ("逾期",), "余期": ("逾期",),
    "撤销": ("撤回",), "取消": ("撤回",), "删除": ("撤回",),
    "我是谁": ("我",), "身份": ("我",), "whoami": ("me",),
    "绑定": ("申请绑定", "绑定群"), "注册": ("申请绑定",), "代办": ("代报",),
    "通知": ("公告",), "广播": ("公告",), "审批": ("审核",), "定时": ("日程",),
}  # fmt: skip


def _distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _similarity(a: str, b: str) -> float:
    longer = max(len(a), len(b))
    if not a or not b:
        return 0.0
    if a in b or b in a:
        return 0.7 + 0.2 * min(len(a), len(b)) / longer
    shared = sum((Counter(a) & Counter(b)).values()) / longer
    return max(shared, 1 - _distance(a, b) / longer)


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to n known names for an unknown one, best first.

    The confusion table wins; then containment (本月 → 本月任务), shared characters (which
    rescue two-character names that differ in one place: 打分 → 打卡) and edit distance (which
    catches ASCII typos: hlep → help). Below half-similar nothing is suggested."""
    typed = _ascii_lower("".join(fold_width(name).split()))
    meant = _CONFUSIONS.get(typed, ())
    scored: list[tuple[float, int, str]] = []
    for order, candidate in enumerate(dict.fromkeys(candidates)):
        key = _ascii_lower(candidate)
        score = 2 - meant.index(key) / 10 if key in meant else _similarity(typed, key)
        if score >= 0.5:
            scored.append((-score, order, candidate))
    return [candidate for *_, candidate in sorted(scored)[:n]]


_MARKUP = str.maketrans({
    "\\": "＼", "*": "＊", "_": "＿", "`": "｀", "[": "［", "]": "］", "(": "（", ")": "）",
    "#": "＃", ">": "＞", "<": "＜", "~": "～", "|": "｜", "&": "＆", "@": "＠",
})  # fmt: skip
# No @ < > ( ) [ ] * ` | \ inside: those end a link and are escaped like any text.
_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#%=&+!$',;]+", re.IGNORECASE)
_ENTITY_START = re.compile(r"&(?=#?\w+;)")


def escape_markdown(text: str) -> str:
    """User text made inert for a Markdown post: no markup, no @-mention, links still work."""
    if "://" not in text:  # no link: most names and titles (督办 escapes 20,000 a heavy day)
        return text.translate(_MARKUP)
    pieces: list[str] = []
    last = 0
    for url in _URL.finditer(text):
        pieces += [text[last : url.start()].translate(_MARKUP), _ENTITY_START.sub("＆", url[0])]
        last = url.end()
    pieces.append(text[last:].translate(_MARKUP))
    return "".join(pieces)

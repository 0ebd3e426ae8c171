"""Plain-words check-ins: which open task a sentence like "住建局 10月主题党日已开展" reports.

Pure functions, no I/O; handlers/natural.py feeds them the sender's units and open instances.

Decisions (tests/test_matching.py pins each one):

- A sentence is a report only if it says something was done (已…, 完成, …了) and asks or
  denies nothing (吗, 怎么, 未, 没…): "党费怎么交" must never record a check-in.
- Chinese has no word boundaries, so "the words of the title found in the text" is measured in
  shared two-character runs: a title character counts when a bigram it is part of appears in
  the text. Bigrams made only of words every task shares (开展, 召开, 会议, 学习, 活动, …)
  do not count, so "主题党日已开展" matches 开展主题党日活动 by 主题党日, not by 开展.
- Punctuation, quotes and brackets split runs: 党组(党委) is the runs 党组 and 党委.
- The titles covering the most characters win (at least two), a whole phrase counting for
  more than the same characters in pieces (the sum of squared stretch lengths); a tie is a
  question for the person, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from bot.textfold import fold_width

K = TypeVar("K", bound=Hashable)
U = TypeVar("U")

MIN_STRENGTH = 2
# Words nearly every task title or report shares: they say nothing about which task is meant.
GENERIC = frozenset(
    [
        "开展",
        "召开",
        "组织",
        "活动",
        "会议",
        "工作",
        "学习",
        "党建",
        "机关",
        "情况",
        "报送",
        "上报",
        "提交",
        "落实",
        "完成",
        "举办",
        "进行",
        "相关",
        "按时",
        "党员",
        "本月",
        "单位",
    ]
)
_DONE = re.compile(
    r"已|完成|完毕|完了|办结|结束|搞定|[开做办搞学讲交缴报]完"
    r"|(?:开展|召开|举办|进行|组织|学习|开|交|缴|做|办|讲|报)了"
)
_NOT_DONE = re.compile(r"未|没|吗|怎么|如何|是否|能否|请问|什么|哪|何时|多少")
_RUN = re.compile(r"[0-9a-z\u3400-\u4dbf\u4e00-\u9fff]+")
_MONTH = re.compile(
    r"(?:(?:[0-9]{4}|[〇零一二三四五六七八九]{4})年)?(?:1[0-2]|0?[1-9]|十[一二]?|[一二三四五六七八九])月份?"
)


def reads_like_report(text: str) -> bool:
    """Says something was done, and neither asks nor denies."""
    return bool(_DONE.search(text)) and not _NOT_DONE.search(text)


def runs(text: str) -> list[str]:
    """The text's runs of Chinese characters, digits and letters (width folded, lower-cased)."""
    return _RUN.findall(fold_width(text).lower())


def _bigrams(text: str) -> set[str]:
    return {run[i : i + 2] for run in runs(text) for i in range(len(run) - 1)}


def covered_runs(title: str, text: str) -> list[int]:
    """The lengths of the stretches of `title` the text covers with shared, non-generic
    bigrams (a character is covered when a bigram it is part of appears in the text)."""
    said = _bigrams(text) - GENERIC
    stretches: list[int] = []
    for run in runs(title):
        hit = [False] * len(run)
        for i in range(len(run) - 1):
            if run[i : i + 2] in said:
                hit[i] = hit[i + 1] = True
        length = 0
        for covered in [*hit, False]:
            if covered:
                length += 1
            elif length:
                stretches.append(length)
                length = 0
    return stretches


def strength(title: str, text: str) -> int:
    """How many characters of `title` the text covers."""
    return sum(covered_runs(title, text))


def score(title: str, text: str) -> int:
    """Covered characters, weighted so that one phrase beats the same number of characters
    in pieces: 民主生活会 names 召开民主生活会 rather than 组织生活会并开展民主评议党员."""
    return sum(n * n for n in covered_runs(title, text))


def best_matches(text: str, options: Sequence[tuple[K, str]]) -> list[K]:
    """The keys of the options whose titles the text names best, in the options' order.

    Empty when the text is not a report or covers no title by MIN_STRENGTH characters."""
    if not reads_like_report(text):
        return []
    scored = [(score(title, text), key) for key, title in options]
    top = max((s for s, _ in scored), default=0)
    if top < MIN_STRENGTH * MIN_STRENGTH:
        return []
    return list(dict.fromkeys(key for s, key in scored if s == top))


def month_named(text: str) -> tuple[str | None, str]:
    """The first month expression in the text (十月, 2026年10月, 11月份) and the text with it
    replaced by a blank, so that its characters match no title."""
    found = _MONTH.search(text)
    if found is None:
        return None, text
    return found[0], f"{text[: found.start()]} {text[found.end() :]}"


def units_named(
    text: str, units: Sequence[U], names: Callable[[U], Sequence[str]]
) -> tuple[list[U], str]:
    """The units whose name or short name appears in the text (longest names first, so 自然资源
    和规划局 is not also read as a shorter name inside it), and the text with them blanked."""
    spelled = sorted(
        ((name, unit) for unit in units for name in names(unit) if len(name) >= 2),
        key=lambda pair: -len(pair[0]),
    )
    found: list[U] = []
    for name, unit in spelled:
        if name in text:
            text = text.replace(name, " ")
            if unit not in found:
                found.append(unit)
    return found, text

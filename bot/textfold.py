"""Folding what people type into what parsers read: full-width forms to ASCII, Chinese numerals
to Arabic digits. Pure, no I/O; imports nothing from bot, so any module can build on it
(bot.duerules, bot.textdates, bot.text, the schedule parser).
"""

from __future__ import annotations

import re

_FOLD: dict[int, int | None] = {
    c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F) if chr(c) not in "，；"
}
_FOLD.update({0x3000: 0x20, 0x200B: None, 0x2060: None, 0xFEFF: None})  # ZWSP, word joiner, BOM


def fold_width(text: str) -> str:
    """Full-width ASCII and U+3000 to ASCII (but ， and ；), zero-width characters removed."""
    return text.translate(_FOLD)


_PLAIN_DIGITS = {c: str(i) for i, c in enumerate("零一二三四五六七八九")} | {"〇": "0"}
_DIGIT_VALUES = {c: int(v) for c, v in _PLAIN_DIGITS.items()} | {"两": 2}
_UNITS = {"十": 10, "百": 100, "千": 1000}
CHINESE_NUMERAL = re.compile("[〇零一二三四五六七八九两十百千廿卅]+")
_NO_UNIT_YET = 10_000


def chinese_numeral_value(run: str) -> int | None:
    """0-9999 written in Chinese: 十五, 一百零五, 两百, 一百五 (150), 廿三, or digit by digit
    (二〇二六); None if the run is no number."""
    if not run or not CHINESE_NUMERAL.fullmatch(run):
        return None
    if all(c in _PLAIN_DIGITS for c in run):
        return int("".join(_PLAIN_DIGITS[c] for c in run))
    if any(c in "廿卅" for c in run):
        m = re.fullmatch("([廿卅])([一二三四五六七八九]?)", run)
        return None if m is None else (20 if m[1] == "廿" else 30) + _DIGIT_VALUES.get(m[2], 0)
    total, digit, unit, gap = 0, None, _NO_UNIT_YET, False
    for c in run:
        if c in _UNITS:
            if _UNITS[c] >= unit or (digit is None and c != "十"):
                return None
            unit, total = _UNITS[c], total + (1 if digit is None else digit) * _UNITS[c]
            digit, gap = None, False
        elif digit is not None:
            return None
        elif c in "零〇":
            gap = True
        else:
            digit = _DIGIT_VALUES[c]
    if digit is not None:
        # 一百五 is 150 and 三千五 3500; 一百零五 (a gap) is 105.
        total += digit * (unit // 10 if 10 < unit < _NO_UNIT_YET and not gap else 1)
    return total


def replace_chinese_numerals(text: str) -> str:
    """Each run of Chinese numerals as Arabic digits (二〇二六年十月 → 2026年10月); a run that is
    no number stays as written. Digit-by-digit runs keep their zeros (〇五 → 05)."""

    def arabic(m: re.Match[str]) -> str:
        if all(c in _PLAIN_DIGITS for c in m[0]):
            return "".join(_PLAIN_DIGITS[c] for c in m[0])
        value = chinese_numeral_value(m[0])
        return m[0] if value is None else str(value)

    return CHINESE_NUMERAL.sub(arabic, text)

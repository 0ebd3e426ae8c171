"""Forgiving command input: normalizing, command names, numbers, suggestions, Markdown escaping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.text import (
    chinese_numeral_value,
    closest,
    escape_markdown,
    fold_width,
    match_command,
    normalize,
    parse_number,
    parse_numbers,
    replace_chinese_numerals,
    split_command,
)

BOT = ("督办助手", "Duban")
NAMES = ["帮助", "help", "本月任务", "tasks", "打卡", "报送", "代报", "撤回", "进度", "progress"]
NAMES += ["逾期", "overdue", "问题", "整改", "我", "me", "申请绑定", "审核", "审核 通过", "公告"]
DIGITS = "零一二三四五六七八九"


def spell(n: int, two: bool = False) -> str:
    """0-999 in Chinese as people write it: 十五, 一百一十, 一百零五, 两百 (with two=True)."""
    ones, tens, hundreds = n % 10, n // 10 % 10, n // 100
    if n < 10:
        return DIGITS[n]
    tail = (DIGITS[tens] if n >= 20 or hundreds else "") + "十" + (DIGITS[ones] if ones else "")
    if hundreds == 0:
        return tail
    head = ("两" if two and hundreds == 2 else DIGITS[hundreds]) + "百"
    if tens == 0:
        return head + (f"零{DIGITS[ones]}" if ones else "")
    return head + tail


def test_spell_helper() -> None:
    assert [spell(n) for n in (0, 7, 10, 15, 20, 99, 100, 105, 110, 111, 250)] == [
        *("零", "七", "十", "十五", "二十", "九十九", "一百", "一百零五", "一百一十"),
        *("一百一十一", "二百五十"),
    ]
    assert spell(200, two=True) == "两百"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # the @bot prefix, with WeCom's U+2005, a space, NBSP, U+3000 or nothing after it
        ("@督办助手\u2005打卡 3 已完成", "打卡 3 已完成"),
        ("@督办助手 打卡 3 已完成", "打卡 3 已完成"),
        ("@督办助手\u00a0打卡 3", "打卡 3"),
        ("@督办助手\u3000打卡 3", "打卡 3"),
        ("@督办助手打卡3", "打卡3"),
        ("＠督办助手　打卡３", "打卡3"),
        ("  @督办助手\u2005\u2005 help", "help"),
        ("@督办助手\n打卡 3", "打卡 3"),
        ("@督办助手 @督办助手 进度", "进度"),
        ("@duban tasks", "tasks"),
        ("@DUBAN tasks", "tasks"),
        ("@Duban\u2005TASKS", "TASKS"),
        ("@dubanbot tasks", "@dubanbot tasks"),  # another ASCII name, not ours
        ("进度 @督办助手", "进度"),  # typed after the text
        ("进度@督办助手", "进度"),
        ("发到 x@duban", "发到 x@duban"),  # an e-mail address
        ("@张三 打卡", "@张三 打卡"),  # only known names go
        ("打卡 @督办助手 3", "打卡 @督办助手 3"),
        ("@督办助手", ""),
        ("@督办助手 ？", ""),
        # full-width letters, digits and punctuation
        ("ｈｅｌｐ", "help"),
        ("打卡　＃３", "打卡 #3"),
        ("日程 设置 每月1日 9：00", "日程 设置 每月1日 9:00"),
        ("tasks ２０２６－１０", "tasks 2026-10"),
        ("打卡 3（补报）", "打卡 3(补报)"),
        # Chinese separators stay as typed
        ("打卡 3，5、6；7 已开展", "打卡 3，5、6；7 已开展"),
        ("打卡 3,5 已开展，效果好", "打卡 3,5 已开展，效果好"),
        # blanks collapse, lines stay, blank lines shrink to one
        ("打卡\t 3  \u2005 已完成", "打卡 3 已完成"),
        ("公告 第一行  \r\n  第二行", "公告 第一行\n第二行"),
        ("公告 第一段\n\n\n\n第二段\n", "公告 第一段\n\n第二段"),
        ("公告 甲\u2028乙", "公告 甲\n乙"),
        ("打\u200b卡 3\ufeff", "打卡 3"),
        # trailing punctuation
        ("打卡 3 已完成。", "打卡 3 已完成"),
        ("帮助！！", "帮助"),
        ("help!", "help"),
        ("进度？", "进度"),
        ("进度?", "进度"),
        ("进度~", "进度"),
        ("进度～", "进度"),
        ("进度……", "进度"),
        ("进度 。 ！ ", "进度"),
        ("tasks 2026.10.", "tasks 2026.10"),
        ("打卡 3 已完成。@督办助手", "打卡 3 已完成"),
        ("", ""),
        ("   \n\t ", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw, BOT) == expected


def test_normalize_without_names_keeps_mentions() -> None:
    assert normalize("@督办助手\u2005打卡 3。") == "@督办助手 打卡 3"


def test_bot_names_are_normalized_too() -> None:
    assert normalize("@督办 助手 打卡", ["＠督办\u3000助手"]) == "打卡"
    assert normalize("@督办助手 打卡", ["", "@", "督办助手"]) == "打卡"


def test_fold_width_keeps_chinese_separators() -> None:
    assert fold_width("Ａ１！＃：，；、。（）") == "A1!#:，；、。()"


_MESSY = st.text(
    alphabet=st.sampled_from(
        list("@＠督办助手打卡ab1２ \u2005\u3000\u00a0\t\n\r\u2028\u200b。！!？?~～….，,、；：:#")
    )
)


@given(_MESSY, st.lists(st.sampled_from(["督办助手", "督办", "a", "Ab", "＠手", " "])))
def test_normalize_is_idempotent_on_messy_input(text: str, names: list[str]) -> None:
    once = normalize(text, names)
    assert normalize(once, names) == once


@given(st.text(), st.lists(st.text(max_size=5), max_size=3))
def test_normalize_is_idempotent(text: str, names: list[str]) -> None:
    once = normalize(text, names)
    assert normalize(once, names) == once
    assert once == once.strip()
    assert "\n\n\n" not in once and "  " not in once


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("打卡 3 已完成", ("打卡", "3 已完成")),
        ("打卡3 已完成", ("打卡", "3 已完成")),
        ("打卡#3", ("打卡", "#3")),
        ("打卡：3 已完成", ("打卡", "3 已完成")),
        ("打卡，3", ("打卡", "3")),
        ("Help", ("help", "")),
        ("TASKS 10月", ("tasks", "10月")),
        ("tasks10月", ("tasks", "10月")),
        ("审核通过 12", ("审核通过", "12")),
        ("公告 第一行\n第二行", ("公告", "第一行\n第二行")),
        ("公告\n第一行", ("公告", "第一行")),
        ("3 已完成", ("3", "已完成")),
        ("", ("", "")),
    ],
)
def test_split_command(text: str, expected: tuple[str, str]) -> None:
    assert split_command(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("打卡 3 已完成", ("打卡", "3 已完成")),
        ("打卡3 已完成", ("打卡", "3 已完成")),
        ("打卡三 已完成", ("打卡", "三 已完成")),
        ("打卡：3", ("打卡", "3")),
        ("本月任务", ("本月任务", "")),
        ("本月任务10月", ("本月任务", "10月")),
        ("Help 打卡", ("help", "打卡")),
        ("HELP", ("help", "")),
        ("TASKS 2026-10", ("tasks", "2026-10")),
        ("tasks10月", ("tasks", "10月")),
        ("审核 12", ("审核", "12")),
        ("审核通过 12", ("审核 通过", "12")),  # the longest name wins
        ("审核 通过 12", ("审核 通过", "12")),
        ("审核退回 12 材料不全", ("审核", "退回 12 材料不全")),
        ("问题整改", ("问题", "整改")),
        ("我", ("我", "")),
        ("我 ", ("我", "")),
        ("me", ("me", "")),
        ("公告 第一行\n第二行", ("公告", "第一行\n第二行")),
        ("我们单位十月主题党日已开展", None),  # one-character names need a break after them
        ("helpme", None),
        ("meeting", None),
        ("签到 3", None),
        ("", None),
    ],
)
def test_match_command(text: str, expected: tuple[str, str] | None) -> None:
    assert match_command(text, NAMES) == expected


def test_match_command_then_subcommand() -> None:
    found = match_command("审核通过12 好", ["审核"])
    assert found == ("审核", "通过12 好")
    assert match_command(found[1], ["通过", "退回"]) == ("通过", "12 好")


def test_match_command_returns_the_name_as_registered() -> None:
    assert match_command("help", ["Help"]) == ("Help", "")
    assert match_command("x", ["", "  "]) is None


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        *[(t, 3) for t in ("3", "３", "03", "三", "第3", "第三", "第３", "3号", "三号", "#3")],
        *[(t, 3) for t in ("＃３", "No.3", "NO.3", "no3", "No. 3", "№3", " 3 ", "第3号")],
        ("0", 0),
        ("〇", 0),
        ("零", 0),
        ("两", 2),
        ("十", 10),
        ("十五", 15),
        ("一十五", 15),
        ("二十", 20),
        ("廿", 20),
        ("廿三", 23),
        ("卅一", 31),
        ("九十九", 99),
        ("一百", 100),
        ("百", None),
        ("一百零五", 105),
        ("一百〇五", 105),
        ("一百一十", 110),
        ("一百一", 110),
        ("一百五", 150),
        ("两百", 200),
        ("两百五十", 250),
        ("三千零五", 3005),
        ("一千零五十", 1050),
        ("二〇二六", 2026),
        ("12", 12),
        ("999", 999),
        *[(t, None) for t in ("", "a", "3a", "-3", "3.5", "三四五六七八九十", "十十", "廿十")],
        *[(t, None) for t in ("一切", "第", "#", "号", "3 号", "1e3", "٣", "一千千")],
    ],
)
def test_parse_number(token: str, expected: int | None) -> None:
    assert parse_number(token) == expected


@given(st.integers(min_value=0, max_value=999))
def test_parse_number_round_trips(n: int) -> None:
    assert parse_number(str(n)) == n
    assert parse_number(fold_width(str(n)).translate({c: c + 0xFEE0 for c in range(48, 58)})) == n
    assert parse_number(spell(n)) == n
    assert parse_number(spell(n, two=True)) == n
    assert parse_number(f"第{spell(n)}") == n
    assert parse_number(f"#{n}") == n


@given(st.integers(min_value=0, max_value=9999))
def test_digit_by_digit_numerals(n: int) -> None:
    written = "".join("〇一二三四五六七八九"[int(d)] for d in str(n))
    assert chinese_numeral_value(written) == n


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("二〇二六年十一月三十日", "2026年11月30日"),
        ("第四季度", "第4季度"),
        ("〇五月", "05月"),  # digit by digit keeps its zeros
        ("一切顺利", "1切顺利"),
        ("十十", "十十"),  # no number: left for the grammar to reject
        ("每月廿五日", "每月25日"),
    ],
)
def test_replace_chinese_numerals(text: str, expected: str) -> None:
    assert replace_chinese_numerals(text) == expected


@pytest.mark.parametrize(
    ("text", "numbers", "rest"),
    [
        ("3、5 已开展主题党日", [3, 5], "已开展主题党日"),
        ("3，5 已开展", [3, 5], "已开展"),
        ("3,5,6 已开展", [3, 5, 6], "已开展"),
        ("3；5 已开展", [3, 5], "已开展"),
        ("3 5 已开展", [3, 5], "已开展"),
        ("3和5 已开展", [3, 5], "已开展"),
        ("3 和 5 已开展", [3, 5], "已开展"),
        ("3及5已开展", [3, 5], "已开展"),
        ("3-5 已开展", [3, 4, 5], "已开展"),
        ("3~5 已开展", [3, 4, 5], "已开展"),
        ("3～5 已开展", [3, 4, 5], "已开展"),
        ("3至5 已开展", [3, 4, 5], "已开展"),
        ("3到5号 已开展", [3, 4, 5], "已开展"),
        ("3 - 5、8 已开展", [3, 4, 5, 8], "已开展"),
        ("#3 #5 已开展", [3, 5], "已开展"),
        ("No.3、No.5 已开展", [3, 5], "已开展"),
        ("第3、第5 已开展", [3, 5], "已开展"),
        ("三、五 已开展", [3, 5], "已开展"),
        ("三和五 已开展", [3, 5], "已开展"),
        ("十二 已开展", [12], "已开展"),
        ("3号 已开展", [3], "已开展"),
        ("3已开展", [3], "已开展"),  # no space on a phone
        ("3：已开展", [3], "已开展"),
        ("3:已开展", [3], "已开展"),
        ("3、3、5-6、5 好", [3, 5, 6], "好"),
        ("3\n参加20人\n效果好", [3], "参加20人\n效果好"),
        ("3", [3], ""),
        ("3、", [3], ""),
        # numbers that belong to the free text
        ("3 10月主题党日已开展", [3], "10月主题党日已开展"),
        ("3 2026-10 已开展", [3], "2026-10 已开展"),
        ("3 9:30 开会", [3], "9:30 开会"),
        ("3 20人参加", [3], "20人参加"),
        ("3 一切顺利", [3], "一切顺利"),
        ("3 三会一课已开展", [3], "三会一课已开展"),
        ("3 和党员一起学习", [3], "和党员一起学习"),
        ("第3、第5项 完成", [3], "第5项 完成"),
        ("10月主题党日已开展", [], "10月主题党日已开展"),
        ("已开展", [], "已开展"),
        ("1-100 太多", [], "1-100 太多"),  # ranges over 50 numbers are refused, not expanded
        ("5-3 倒了", [], "5-3 倒了"),
        ("", [], ""),
    ],
)
def test_parse_numbers(text: str, numbers: list[int], rest: str) -> None:
    assert parse_numbers(text) == (numbers, rest)


@given(
    st.lists(st.integers(min_value=0, max_value=999), min_size=1, max_size=6),
    st.sampled_from([" ", "、", "，", ",", "和", " 和 ", "；"]),
)
def test_parse_numbers_round_trips(numbers: list[int], separator: str) -> None:
    text = separator.join(map(str, numbers)) + " 已开展主题党日"
    assert parse_numbers(text) == (list(dict.fromkeys(numbers)), "已开展主题党日")


COMMANDS = [*NAMES, "绑定群"]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("签到", ["打卡"]),
        ("打开", ["打卡"]),
        ("提交", ["打卡", "报送"]),
        ("上报", ["报送", "代报"]),  # the table first, then similar names
        ("任务", ["本月任务"]),
        ("帮忙", ["帮助"]),
        ("?", ["帮助", "help"]),
        ("预期", ["逾期"]),
        ("撤销", ["撤回"]),
        ("绑定", ["申请绑定", "绑定群"]),
        ("whoami", ["me"]),
        ("本月", ["本月任务"]),  # a prefix
        ("月任务", ["本月任务"]),
        ("打分", ["打卡"]),  # one shared character of two
        ("报道", ["报送", "代报"]),
        ("hlep", ["help"]),
        ("HLEP", ["help"]),
        ("taks", ["tasks"]),
        ("progres", ["progress"]),
        ("ｏｖｅｒｄｕｅ", ["overdue"]),
        ("问", ["问题"]),
        ("今天天气", []),
        ("xyz", []),
        ("", []),
    ],
)
def test_closest(typed: str, expected: list[str]) -> None:
    assert closest(typed, COMMANDS) == expected


def test_closest_limits_and_skips_unknown_targets() -> None:
    assert closest("签到", ["帮助"]) == []
    assert len(closest("审核 通", COMMANDS, n=2)) <= 2
    assert closest("审", COMMANDS, n=1) == ["审核"]


@given(st.text(max_size=6), st.lists(st.text(max_size=6)), st.integers(0, 5))
def test_closest_suggests_known_names_only(typed: str, names: list[str], n: int) -> None:
    found = closest(typed, names, n)
    assert len(found) <= n and set(found) <= set(names) and len(set(found)) == len(found)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("已开展主题党日，效果良好。", "已开展主题党日，效果良好。"),  # Chinese untouched
        ("**加粗** _斜_", "＊＊加粗＊＊ ＿斜＿"),
        ("[点我](http://evil.example)", "［点我］（http://evil.example）"),
        ("`代码`", "｀代码｀"),
        ("# 标题", "＃ 标题"),
        ("> 引用", "＞ 引用"),
        ("~~删除~~", "～～删除～～"),
        ("|a|b|", "｜a｜b｜"),
        ('<font color="warning">红</font>', '＜font color="warning"＞红＜/font＞'),
        ("结尾\\", "结尾＼"),
        ("&lt;@zhangsan&gt;", "＆lt;＠zhangsan＆gt;"),
        ("@所有人 开会", "＠所有人 开会"),
        ("@all", "＠all"),
        ("@ALL", "＠ALL"),
        ("@everyone", "＠everyone"),
        ("<@zhangsan>", "＜＠zhangsan＞"),
        ("@13800138000 请报送", "＠13800138000 请报送"),
        ("联系 a@b.cn", "联系 a＠b.cn"),
        ("第一行\n第二行", "第一行\n第二行"),
        # links keep working, but nothing inside them can mention or open markup
        (
            "见 https://mp.weixin.qq.com/s?__biz=MzA&mid=1&idx=1#rd 谢谢",
            "见 https://mp.weixin.qq.com/s?__biz=MzA&mid=1&idx=1#rd 谢谢",
        ),
        ("https://x.cn/a_b（附件）", "https://x.cn/a_b（附件）"),
        ("(https://x.cn/a)", "（https://x.cn/a）"),
        ("https://x.cn/@all", "https://x.cn/＠all"),
        ("https://x.cn/?q=&#64;all", "https://x.cn/?q=＆#64;all"),
        ("https://x.cn/<@u>", "https://x.cn/＜＠u＞"),
        ("", ""),
    ],
)
def test_escape_markdown(text: str, expected: str) -> None:
    assert escape_markdown(text) == expected


_INJECTIONS = st.sampled_from(["@所有人", "@all", "@ALL", "@everyone", "<@u1>", "@138", "&#64;"])


@given(st.lists(st.one_of(st.text(max_size=8), _INJECTIONS, st.just("https://x.cn/?a=&b"))))
def test_escaped_text_cannot_mention(parts: list[str]) -> None:
    out = escape_markdown("".join(parts))
    assert "@" not in out and "<" not in out and ">" not in out
    assert "&#64;" not in out and "＆#" not in out.replace("＆#64", "")


@given(st.text())
def test_escaped_text_has_no_markup_outside_links(text: str) -> None:
    out = escape_markdown(text.replace("://", ""))
    assert not set(out) & set("\\*_`[]()#<>~|&@")

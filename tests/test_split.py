"""Splitting a message into parts that fit a byte limit, without breaking its Markdown."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.split import MIN_LIMIT, plan_parts, split_message, split_to_fit

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_MARKER = re.compile(r"\n（\d+/\d+）$")


def size(text: str) -> int:
    return len(text.encode("utf-8"))


def fences_balanced(part: str) -> bool:
    """CommonMark's rule, read independently of the splitter: every opened fence closes."""
    open_run: str | None = None
    for line in part.split("\n"):
        match = _FENCE.fullmatch(line)
        if match is None:
            continue
        run, rest = match.groups()
        if open_run is None:
            if not (run[0] == "`" and "`" in rest):
                open_run = run
        elif run[0] == open_run[0] and len(run) >= len(open_run) and not rest.strip():
            open_run = None
    return open_run is None


def outside_code(part: str) -> str:
    return re.sub(r"```.*?```", "", part, flags=re.DOTALL)


def chinese_report(n_items: int) -> str:
    lines = ["# 第四季度党建工作督办情况通报", ""]
    for i in range(n_items):
        lines.append(
            f"- **第{i + 1}社区党支部**：已完成“三会一课”{i % 4}次，"
            f'<font color="warning">逾期{i % 3}项</font>，详见[台账](https://example.cn/u/{i})'
        )
    lines += ["", "```", *(f"第{i}行 代码示例" for i in range(40)), "```", "请各支部按时填报。"]
    return "\n".join(lines)


def test_short_text_is_one_part_unchanged() -> None:
    assert split_message("**通知**：明天开会", 4096, numbered=True) == ["**通知**：明天开会"]
    assert split_message("", 4096) == []


def test_long_chinese_markdown_parts_fit_in_order_with_markers() -> None:
    text = chinese_report(120)
    assert size(text) > 10_000
    parts = split_message(text, 4096, numbered=True)
    assert len(parts) >= 3
    for i, part in enumerate(parts, 1):
        assert size(part) <= 4096
        assert part.endswith(f"（{i}/{len(parts)}）")
        assert fences_balanced(part)
        assert outside_code(part).count("**") % 2 == 0
    joined = "".join(_MARKER.sub("", p) for p in parts)
    assert joined.replace("\n", "") == text.replace("\n", "")


def test_code_block_is_closed_and_reopened_across_parts() -> None:
    code = "\n".join(f"print({i})  # 第{i}行" for i in range(60))
    text = f"前言\n```python\n{code}\n```\n结尾"
    parts = split_message(text, 300)
    assert len(parts) > 2
    assert all(fences_balanced(p) for p in parts)
    assert parts[1].startswith("```python\n")
    assert parts[0].endswith("\n```")
    plan = plan_parts(text, 300)
    assert "".join(p.body for p in plan) == text


def test_long_line_is_cut_after_a_blank_not_inside_a_construct() -> None:
    words = " ".join(f"**要点{i}**" for i in range(40))
    parts = split_message(words, 100)
    for part in parts:
        assert part.count("**") % 2 == 0
        assert size(part) <= 100
    assert all(p.endswith("**") or p.endswith(" ") for p in parts[:-1])


def test_constructs_stay_whole() -> None:
    line = (
        "说明" * 20 + '<font color="info">进行中</font>' + "说明" * 20 + "<@zhangsan>" + "末" * 30
    )
    for limit in range(MIN_LIMIT, 200, 7):
        parts = split_message(line, limit)
        joined = "\n".join(parts)
        assert '<font color="info">进行中</font>' in joined
        assert "<@zhangsan>" in joined


def test_plain_text_mode_adds_nothing() -> None:
    text = "```\n" + "甲乙丙丁\n" * 100
    parts = split_message(text, 100, markdown=False)
    assert "".join(p.body for p in plan_parts(text, 100, markdown=False)) == text
    assert sum(p.count("```") for p in parts) == 1


def test_marker_width_grows_with_the_count() -> None:
    parts = split_message("中文内容一行\n" * 400, MIN_LIMIT, numbered=True)
    assert len(parts) >= 100
    assert all(size(p) <= MIN_LIMIT for p in parts)
    assert parts[-1].endswith(f"（{len(parts)}/{len(parts)}）")


def test_split_to_fit_accounts_for_json_escaping() -> None:
    text = '他说："请\\按时"\n' * 2000

    def measure(part: str) -> int:
        return size(json.dumps({"title": "标题", "text": part}, ensure_ascii=False))

    parts = split_to_fit(text, 15000, measure)
    assert len(parts) > 1
    assert all(measure(p) <= 15000 for p in parts)


def test_too_small_a_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="below"):
        split_message("x", MIN_LIMIT - 1)


# --- properties ----------------------------------------------------------------------------

ALPHABET = st.sampled_from(["a", "b", " ", "\n", "中", "文", "😀", "`", "*", "~", "|", "#"])


@given(text=st.text(ALPHABET, max_size=600), limit=st.integers(MIN_LIMIT, 300))
@settings(max_examples=300, deadline=None)
def test_any_text_parts_fit_and_reassemble(text: str, limit: int) -> None:
    plan = plan_parts(text, limit)
    assert "".join(p.body for p in plan) == text
    for part in plan:
        rendered = part.render()
        assert size(rendered) <= limit
        assert fences_balanced(rendered)
        assert part.body  # progress: no empty parts
    for part in split_message(text, limit, numbered=True):
        assert size(part) <= limit
        part.encode("utf-8").decode("utf-8")  # whole characters only


WORD = st.text(st.sampled_from("党建督办台账社区ab12 "), min_size=1, max_size=12)
CONSTRUCT = st.one_of(
    WORD.map(lambda w: f"**{w.strip() or '重点'}**"),
    st.tuples(WORD, st.integers(0, 99)).map(lambda t: f"[{t[0]}](https://x.cn/{t[1]})"),
    WORD.map(lambda w: f'<font color="warning">{w}</font>'),
    st.sampled_from(["<@zhangsan>", "<@li_si>"]),
    WORD,
)
LINE = st.lists(CONSTRUCT, min_size=1, max_size=12).map(" ".join)
TABLE_ROW = st.lists(WORD, min_size=2, max_size=4).map(lambda c: "| " + " | ".join(c) + " |")
CODE = st.lists(st.text(st.sampled_from("abc中 =()"), max_size=30), max_size=8).map(
    lambda lines: "```\n" + "\n".join(lines) + "\n```"
)
DOCUMENT = st.lists(st.one_of(LINE, TABLE_ROW, CODE, st.just("")), max_size=25).map("\n".join)


@given(text=DOCUMENT, limit=st.integers(MIN_LIMIT, 400))
@settings(max_examples=300, deadline=None)
def test_markdown_constructs_survive_splitting(text: str, limit: int) -> None:
    plan = plan_parts(text, limit)
    assert "".join(p.body for p in plan) == text
    cuts, offset = set(), 0
    for part in plan[:-1]:
        offset += len(part.body)
        cuts.add(offset)
    spans = [
        m.span()
        for m in re.finditer(
            r"\*\*[^*\n]+\*\*|\[[^\]\n]*\]\([^)\n]*\)|<font[^>]*>[^<]*</font>|<@\w+>", text
        )
    ]
    for start, end in spans:
        if size(text[start:end]) < limit // 2:
            assert not any(start < c < end for c in cuts), text[start:end]
    for row in re.finditer(r"^\|.*\|$", text, flags=re.MULTILINE):
        if size(row.group()) < limit // 2:
            assert not any(row.start() < c < row.end() for c in cuts)
    for part in split_message(text, limit, numbered=True):
        assert size(part) <= limit
        assert fences_balanced(part)
        assert outside_code(part).count("**") % 2 == 0

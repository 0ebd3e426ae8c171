"""The plain-words matcher (bot.ledger.matching): pure, so tested directly, on the sample plan's
real task titles and on generated text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.deployment import load
from bot.ledger.matching import (
    best_matches,
    month_named,
    reads_like_report,
    score,
    strength,
    units_named,
)
from tests.configs import SAMPLE_CONFIG, SAMPLE_SECRETS

TASKS = load(SAMPLE_CONFIG, env=SAMPLE_SECRETS).spec.tasks
MONTHLY = [(t.id, t.title) for t in TASKS if t.cadence == "monthly"]
VIEW = [(t.id, t.title) for t in TASKS if t.cadence != "once"]  # a November list, roughly


def titles(keys: list[str]) -> list[str]:
    named = dict(VIEW)
    return [named[k] for k in keys]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("主题党日已开展", ["开展主题党日活动"]),
        ("10月主题党日活动已经开展完毕", ["开展主题党日活动"]),
        ("党小组会已召开", ["召开党小组会"]),
        ("本月党费已收缴", ["按时足额收缴党费"]),
        ("中心组学习已完成", ["党组(党委)理论学习中心组学习"]),
        ("党组会议“第一议题”已学习", ["党组(党委)会议“第一议题”学习"]),
        ("书记项目季度调度已完成", ["“书记项目”季度调度"]),
        ("民主生活会开完了", ["召开民主生活会"]),
        ("党课讲了", ["党组织书记讲党课"]),
    ],
)
def test_the_title_a_report_names(text: str, expected: list[str]) -> None:
    assert titles(best_matches(text, VIEW)) == expected


def test_a_tie_is_a_question_not_a_guess() -> None:
    found = titles(best_matches("理论学习已开展", VIEW))
    assert found == ["党组(党委)理论学习中心组学习", "组织党员日常理论学习", "青年理论学习小组学习"]


@pytest.mark.parametrize(
    "text",
    [
        "党费怎么交",  # a question
        "主题党日还没开展",  # a denial
        "主题党日未开展",
        "主题党日开展了吗",
        "主题党日",  # says nothing was done
        "今天已经开展了",  # done, but what?
        "已完成",
        "会议已召开",  # only words every task shares
        "",
    ],
)
def test_no_match(text: str) -> None:
    assert best_matches(text, VIEW) == []


def test_reports_and_non_reports() -> None:
    assert reads_like_report("已开展") and reads_like_report("开完了") and reads_like_report("完成")
    assert not reads_like_report("开展主题党日") and not reads_like_report("是否已开展")


def test_a_whole_phrase_beats_pieces() -> None:
    assert strength("召开组织生活会并开展民主评议党员", "民主生活会开完了") == 5
    assert score("召开组织生活会并开展民主评议党员", "民主生活会开完了") == 9 + 4
    assert score("召开民主生活会", "民主生活会开完了") == 25


def test_strength_counts_title_characters_covered_by_shared_pairs() -> None:
    assert strength("开展主题党日活动", "主题党日已开展") == 4  # 开展 and 活动 say nothing
    assert strength("召开党员大会", "党员大会已开") == 3  # 党员 is generic, 员大 and 大会 count
    assert strength("党组(党委)理论学习中心组学习", "党组委") == 2  # 组(党 is no pair
    assert strength("按时足额收缴党费", "ＰＰＴ") == 0


def test_month_named() -> None:
    assert month_named("住建局10月主题党日已开展") == ("10月", "住建局 主题党日已开展")
    assert month_named("十一月份党费已交")[0] == "十一月份"
    assert month_named("2026年9月党课已讲")[0] == "2026年9月"
    assert month_named("共同体月度工作调度已完成") == (None, "共同体月度工作调度已完成")


def test_units_named_longest_first() -> None:
    units = [
        ("zrj", ("江城市自然资源和规划局机关党委", "自然资源规划局")),
        ("zy", ("资源局", "资源局")),
    ]
    found, rest = units_named("自然资源规划局 党课已讲", units, lambda u: u[1])
    assert [u[0] for u in found] == ["zrj"] and rest == "  党课已讲"
    found, _ = units_named("党课已讲", units, lambda u: u[1])
    assert found == []


# Characters that appear in no title and say neither "done" nor "not done".
NOISE = st.text(alphabet="天气晴朗好热闹欢迎呀呢哈嘿", max_size=12)
OPTIONS = st.lists(st.sampled_from(VIEW), min_size=1, max_size=12, unique=True)


@given(OPTIONS, st.data())
def test_the_title_itself_is_always_among_the_matches(
    options: list[tuple[str, str]], data: st.DataObject
) -> None:
    key, title = data.draw(st.sampled_from(options))
    text = f"{title}已完成"
    if strength(title, text) < 2:
        return  # a title of generic words only cannot be named by its words
    found = best_matches(text, options)
    best = max(score(t, text) for _, t in options)
    assert found and all(score(dict(options)[k], text) == best for k in found)
    assert key in found or best > score(title, text)


@given(OPTIONS, NOISE, NOISE, st.sampled_from(["已开展", "已完成", "开完了"]))
def test_noise_around_a_report_changes_nothing(
    options: list[tuple[str, str]], before: str, after: str, done: str
) -> None:
    core = f"{options[0][1]}{done}"
    assert best_matches(f"{before}{core}{after}", options) == best_matches(core, options)


@given(OPTIONS, st.randoms(use_true_random=False))
def test_the_order_of_options_changes_only_the_order_of_matches(
    options: list[tuple[str, str]], rng: object
) -> None:
    text = f"{options[-1][1]}已开展"
    shuffled = list(options)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert set(best_matches(text, shuffled)) == set(best_matches(text, options))


@given(OPTIONS, st.sampled_from(["未", "没", "吗", "怎么", "是否"]))
def test_a_question_or_denial_never_matches(options: list[tuple[str, str]], word: str) -> None:
    assert best_matches(f"{options[0][1]}{word}已完成", options) == []

"""Configuration validation: every mistake is reported at once, with place and plain words."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.deployment import ConfigInvalid, load
from tests.configs import ENV, mini, write


def problems_of(tmp_path: Path, data: dict, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigInvalid) as err:
        load(write(tmp_path, data), env=ENV if env is None else env)
    return [str(p) for p in err.value.problems if p.severity == "error"]


def test_minimal_configuration_loads(tmp_path: Path) -> None:
    loaded = load(write(tmp_path, mini()), env=ENV)
    assert [u.id for u in loaded.spec.units] == ["ua", "ub"]
    assert loaded.warnings == []
    assert loaded.secret(loaded.spec.groups[0].channel.key) == "test-webhook-key"


def test_unknown_key_names_file_line_and_path(tmp_path: Path) -> None:
    data = mini()
    data["units"][1]["nmae"] = "错字"
    [problem] = problems_of(tmp_path, data)
    assert "duban.yaml:" in problem
    assert "units[1].nmae" in problem
    assert "未知的配置项" in problem and "unknown key" in problem


def test_line_number_points_at_the_offending_key(tmp_path: Path) -> None:
    data = mini()
    data["units"][0]["parent"] = "nowhere"
    [problem] = problems_of(tmp_path, data)
    text = (tmp_path / "duban.yaml").read_text(encoding="utf-8").splitlines()
    line = int(problem.split("duban.yaml:")[1].split()[0])
    assert text[line - 1].strip().startswith("parent: nowhere")
    assert "单位“nowhere”不存在" in problem


@pytest.mark.parametrize(
    ("mutate", "where", "words"),
    [
        (lambda d: d["units"].append({**d["units"][0]}), "units[2].id", "单位编号“ua”重复"),
        (
            lambda d: d["units"][1].update(name="甲局机关党委"),
            "units[1].name",
            "单位名称“甲局机关党委”重复",
        ),
        (
            lambda d: d["communities"][0].update(lead="ub", members=["ua"]),
            "communities[0].lead",
            "牵头单位“ub”不在本共同体成员中",
        ),
        (lambda d: d["tasks"][0].update(due="每月廿五号左右"), "tasks[0].due", "无法识别"),
        (
            lambda d: d["tasks"][0].update(due="每季度末月20日前"),
            "tasks[0].due",
            "与频次“monthly”不符",
        ),
        (lambda d: d["tasks"][2].update(owners=["uz"]), "tasks[2].owners[0]", "单位“uz”不存在"),
        (
            lambda d: d["units"][0].update(liaisons=["p_ghost"]),
            "units[0].liaisons[0]",
            "人员“p_ghost”不存在",
        ),
        (
            lambda d: d["communities"].append(
                {"id": "c2", "name": "第二共同体", "lead": "ub", "members": ["ub"]}
            ),
            "communities[1].members[0]",
            "同时属于共同体“c1”和“c2”",
        ),
        (
            lambda d: d["groups"][1]["channel"].update(type="wecom_webhook", key="k"),
            "groups[1].channel.type",
            "不能用于dingtalk群",
        ),
        (lambda d: d["groups"][0]["channel"].pop("key"), "groups[0].channel", "需要 key"),
        (
            lambda d: d["tasks"][0].update(cadence="weekly"),
            "tasks[0].cadence",
            "取值不在允许范围内",
        ),
        (
            lambda d: d["people"][2].update(dingtalk="staff_a_sec"),
            "people[2].dingtalk",
            "钉钉账号“staff_a_sec”重复",
        ),
        (
            lambda d: d["committee"].update(admin_group="g_none"),
            "committee.admin_group",
            "群“g_none”不存在",
        ),
        (
            lambda d: d["tasks"][0].update(area="economy"),
            "tasks[0].area",
            "责任领域“economy”不存在",
        ),
        (
            lambda d: d["units"][0].update(parent="ub") or d["units"][1].update(parent="ua"),
            "units[0].parent",
            "上级关系形成循环",
        ),
        (lambda d: d.pop("units"), "units", "缺少必填项"),
        (lambda d: d["people"][0].update(id="chat_x"), "people[0].id", "不能以 chat_ 开头"),
        (
            lambda d: d["schedules"].update(weekly_tea="每周五"),
            "schedules.weekly_tea",
            "取值不在允许范围内",
        ),
    ],
)
def test_each_mistake_has_its_own_message(tmp_path: Path, mutate, where: str, words: str) -> None:
    data = mini()
    mutate(data)
    problems = problems_of(tmp_path, data)
    assert any(where in p and words in p for p in problems), problems


def test_missing_secret_is_an_error_live_and_a_warning_on_the_console(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, mini(), env={})
    assert "groups[0].channel.key" in problem and "T_WEBHOOK_ADMINS 未设置" in problem
    assert "test-webhook-key" not in problem
    loaded = load(write(tmp_path, mini()), env={}, live=False)
    assert [w.severity for w in loaded.warnings] == ["warning"]


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    data = mini()
    data["units"][0]["parent"] = "nowhere"
    data["tasks"][1]["due"] = "随便"
    data["communities"][0]["lead"] = "ghost"
    assert len(problems_of(tmp_path, data)) == 3


def test_sections_split_over_files_with_duplicate_section_refused(tmp_path: Path) -> None:
    data = mini()
    plan = {"tasks": data.pop("tasks")}
    write(tmp_path, data)
    write(tmp_path, plan, "plan.yaml")
    assert len(load(tmp_path, env=ENV).spec.tasks) == 3
    write(tmp_path, {"tasks": plan["tasks"]}, "plan2.yaml")
    with pytest.raises(ConfigInvalid) as err:
        load(tmp_path, env=ENV)
    assert "配置节“tasks”" in str(err.value) and "plan2.yaml" in str(err.value)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    (tmp_path / "duban.yaml").write_text("committee:\n  name: [未闭合\n", encoding="utf-8")
    with pytest.raises(ConfigInvalid) as err:
        load(tmp_path, env=ENV)
    assert "YAML 语法错误" in str(err.value) and "duban.yaml:" in str(err.value)


def test_missing_location(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="找不到配置文件"):
        load(tmp_path / "nope", env=ENV)

"""Small configurations built in code, for tests that need a precise shape."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from bot.settings import PROJECT_ROOT

_MINI: dict[str, Any] = {
    "committee": {"name": "测试机关工委", "admins": ["p_admin"], "admin_group": "g_admins"},
    "groups": [
        {
            "id": "g_admins",
            "name": "工委群",
            "platform": "wecom",
            "chat_id": "wrkADMINS",
            "channel": {"type": "wecom_webhook", "key": {"env": "T_WEBHOOK_ADMINS"}},
        },
        {
            "id": "g_c1",
            "name": "第一共同体群",
            "platform": "dingtalk",
            "chat_id": "cidC1==",
            "channel": {"type": "dingtalk_openapi"},
        },
    ],
    "people": [
        {"id": "p_admin", "name": "王工委", "wecom": "wanggw"},
        {"id": "p_a_sec", "name": "甲书记", "dingtalk": "staff_a_sec"},
        {"id": "p_a_ll", "name": "甲联络员", "dingtalk": "staff_a_ll"},
        {"id": "p_b_ll", "name": "乙联络员", "dingtalk": "staff_b_ll"},
    ],
    "units": [
        {
            "id": "ua",
            "name": "甲局机关党委",
            "short": "甲局",
            "secretary": "p_a_sec",
            "liaisons": ["p_a_ll"],
        },
        {"id": "ub", "name": "乙局机关党委", "short": "乙局", "liaisons": ["p_b_ll"]},
    ],
    "communities": [
        {"id": "c1", "name": "第一共同体", "lead": "ua", "members": ["ua", "ub"], "group": "g_c1"},
    ],
    "responsibilities": {
        "holders": [{"id": "secretary", "name": "书记", "duty": "第一责任人"}],
        "areas": [
            {"id": "organizational", "name": "组织建设", "duties": {"secretary": ["抓好组织建设"]}}
        ],
    },
    "tasks": [
        {
            "id": "T01",
            "title": "主题党日",
            "area": "organizational",
            "cadence": "monthly",
            "due": "每月25日前",
            "owners": "all",
            "evidence": "照片",
        },
        {
            "id": "T02",
            "title": "联席会议",
            "area": "organizational",
            "cadence": "quarterly",
            "due": "每季度末月20日前",
            "owners": "leads",
        },
        {
            "id": "T03",
            "title": "示范点",
            "area": "organizational",
            "cadence": "yearly",
            "due": "每年12月15日前",
            "owners": ["ub"],
        },
    ],
    "schedules": {"remind": "工作日 9:00"},
}

ENV = {"T_WEBHOOK_ADMINS": "test-webhook-key"}

SAMPLE_CONFIG = PROJECT_ROOT / "config" / "sample"
SAMPLE_SECRETS = {  # what config/sample references from the environment
    name: "x"
    for name in (
        "DUBAN_SECRET_WEBHOOK_ADMINS",
        "DUBAN_SECRET_WEBHOOK_C1",
        "DUBAN_SECRET_WEBHOOK_C2",
        "DUBAN_SECRET_DINGTALK_TOKEN_C8",
        "DUBAN_SECRET_DINGTALK_SIGN_C8",
    )
}


def mini() -> dict[str, Any]:
    return copy.deepcopy(_MINI)


def write(directory: Path, data: dict[str, Any], name: str = "duban.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(
        yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return directory

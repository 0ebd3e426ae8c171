"""The requests of the inbound benchmark: who writes, and the wrk data files that carry them.

Every request is a check-in from a liaison the configuration knows, `打卡 n 已完成` for the
instance numbered n of the liaison's unit, where n is the liaison's own number in the unit
(l1 → 1, l2 → 2, …), so no two liaisons report the same instance. The liaisons are ordered
unit by unit within each number (every unit's l1, then every unit's l2, …): consecutive
requests come from different units, as they would in a real month.

DingTalk messages are written by wrk itself (the signature covers only the timestamp and the
app secret); WeCom messages are encrypted and signed here, one per liaison up to a pool size.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.adapters.wecom_crypto import WeComCrypto  # noqa: E402

TEXT = "打卡 %d 已完成"
CORP_ID = "wwbench0000000001"
AGENT_ID = 1000002


@dataclass(frozen=True, slots=True)
class Liaison:
    unit_id: str
    account: str  # the platform's user id (WeCom userid, DingTalk staffId)
    chat_id: str  # the unit's community group on that platform
    no: int  # the instance this liaison reports


@dataclass(frozen=True)
class Secrets:
    dingtalk_app_secret: str
    wecom_token: str
    wecom_aes_key: str

    @classmethod
    def fresh(cls) -> Secrets:
        key = base64.b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
        return cls(secrets.token_hex(20), secrets.token_hex(8), key)

    def env(self) -> dict[str, str]:
        return {
            "DUBAN_DINGTALK_APP_SECRET": self.dingtalk_app_secret,
            "DUBAN_DINGTALK_MODE": "http",
            "DUBAN_WECOM_TOKEN": self.wecom_token,
            "DUBAN_WECOM_AES_KEY": self.wecom_aes_key,
            "DUBAN_WECOM_CORP_ID": CORP_ID,
        }


def liaisons(config: Path, platform: str) -> list[Liaison]:
    """The liaisons of the units whose community group is on `platform`, interleaved.

    Read from the files with libyaml (the bot's loader keeps line numbers and is far slower);
    people with accounts on both platforms count only on their community's platform.
    """
    data: dict[str, Any] = {}
    gc.disable()  # millions of new objects and no garbage: collections would only walk them
    try:
        for file in sorted(config.glob("*.y*ml")):
            loaded = yaml.load(file.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) or {}
            data.update(loaded)
    finally:
        gc.enable()
    groups = {g["id"]: g for g in _items(data, "groups")}
    people = {p["id"]: p for p in _items(data, "people")}
    chat_of: dict[str, str] = {}
    for c in _items(data, "communities"):
        group = groups.get(c.get("group", ""))
        if group and group["platform"] == platform:
            chat_of.update(dict.fromkeys(c["members"], group["chat_id"]))
    found: list[tuple[int, int, Liaison]] = []
    for order, unit in enumerate(_items(data, "units")):
        chat = chat_of.get(unit["id"])
        if chat is None:
            continue
        for n, pid in enumerate(unit.get("liaisons") or [], start=1):
            account = people[pid].get(platform)
            if account:
                found.append((n, order, Liaison(unit["id"], str(account), chat, n)))
    return [liaison for _, _, liaison in sorted(found, key=lambda t: (t[0], t[1]))]


def _items(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key) or []
    return value if isinstance(value, list) else []


def dingtalk_sign(timestamp_ms: str, secret: str) -> str:
    """Computed here rather than with the bot's own function, so a shared mistake shows."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def _field(value: str) -> str:
    if "\t" in value or "\n" in value:
        raise ValueError(f"a tab or line break in {value!r}")
    return value


def write_dingtalk(
    out: Path, who: Iterable[Liaison], secret: str, *, now_ms: int, prefix: str
) -> int:
    """The data file for bench/wrk/dingtalk.lua, tab-separated (a Lua table literal this size
    exceeds Lua's constants per function): a header line, then one line per sender."""
    ts = str(now_ms)
    # The session webhook is never contacted: replies stay on the console (DUBAN_DELIVERY).
    head = [ts, dingtalk_sign(ts, secret), prefix, "http://127.0.0.1:9/robot/sendBySession"]
    lines = ["\t".join([*head, str(now_ms + 3_600_000), TEXT])]
    lines += [f"{_field(w.account)}\t{_field(w.chat_id)}\t{w.no}" for w in who]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1


def wecom_app_xml(account: str, no: int, msg_id: int, create_time: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        f"<FromUserName><![CDATA[{account}]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{TEXT % no}]]></Content><MsgId>{msg_id}</MsgId>"
        f"<AgentID>{AGENT_ID}</AgentID></xml>"
    )


def write_wecom(
    out: Path, who: list[Liaison], keys: Secrets, *, now_s: int, first_id: int, pool: int
) -> int:
    """The data file for bench/wrk/wecom.lua: up to `pool` distinct encrypted callbacks, one
    per liaison, a line each (path and query, tab, body); returns how many."""
    crypto = WeComCrypto(keys.wecom_token, keys.wecom_aes_key, CORP_ID)
    ts = str(now_s)
    lines = []
    for i, w in enumerate(who[:pool]):
        nonce = str(100000 + i)
        encrypted, signature = crypto.encrypt(
            wecom_app_xml(w.account, w.no, first_id + i, now_s), nonce, ts
        )
        query = urlencode({"msg_signature": signature, "timestamp": ts, "nonce": nonce})
        body = (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID>{AGENT_ID}</AgentID></xml>"
        )
        lines.append(f"/hooks/wecom?{query}\t{body}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)

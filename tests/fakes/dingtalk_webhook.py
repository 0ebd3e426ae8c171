"""Body rules of DingTalk's custom-robot webhook and sessionWebhook messages (PLATFORMS.md §5)."""

from __future__ import annotations

from typing import Any

# Required non-empty fields per msgtype; actionCard and feedCard get extra checks below.
REQUIRED: dict[str, tuple[str, ...]] = {
    "text": ("content",),
    "markdown": ("title", "text"),
    "link": ("title", "text", "messageUrl"),
    "actionCard": ("title", "text"),
    "feedCard": ("links",),
}


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def body_error(body: dict[str, Any]) -> str | None:
    """What is wrong with a message body, or None; the fake answers it as errmsg."""
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in REQUIRED:
        return f"invalid msgtype {msgtype!r}"
    payload = body.get(msgtype)
    if not isinstance(payload, dict):
        return f"missing {msgtype}"
    missing = [name for name in REQUIRED[msgtype] if not payload.get(name)]
    if missing:
        return f"{msgtype} lacks {', '.join(missing)}"
    if msgtype == "actionCard":
        single = payload.get("singleTitle") and payload.get("singleURL")
        buttons = payload.get("btns")
        valid_buttons = (
            isinstance(buttons, list)
            and bool(buttons)
            and all(isinstance(b, dict) and b.get("title") and b.get("actionURL") for b in buttons)
        )
        if not single and not valid_buttons:
            return "actionCard needs singleTitle+singleURL or btns"
    if msgtype == "feedCard":
        links = payload["links"]
        if not isinstance(links, list) or not all(
            isinstance(x, dict) and x.get("title") and x.get("messageURL") for x in links
        ):
            return "feedCard links need title and messageURL"
    at = body.get("at", {})
    if not isinstance(at, dict):
        return "at must be an object"
    if not all(_str_list(at.get(name, [])) for name in ("atUserIds", "atMobiles")):
        return "atUserIds and atMobiles must be string lists"
    if not isinstance(at.get("isAtAll", False), bool):
        return "isAtAll must be a boolean"
    return None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def keyword_text(body: dict[str, Any]) -> str:
    """Everything a keyword may appear in: all strings of the message object (not ``at``)."""
    return "\n".join(_strings(body.get(body["msgtype"])))


def text_of(body: dict[str, Any]) -> str | None:
    payload = body[body["msgtype"]]
    value = payload.get("content") if body["msgtype"] == "text" else payload.get("text")
    return value if isinstance(value, str) else None

"""The renderer compiles the templates of replies and posts before the first message needs
them, and says which of a deployment's overrides does not compile instead of stopping."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.render import BUILTIN, Renderer


async def test_warming_compiles_every_message_template_and_names_a_broken_override(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    replies = tmp_path / "templates" / "replies"
    replies.mkdir(parents=True)
    (replies / "broken.md.j2").write_text("{% if %}坏了", encoding="utf-8")
    (replies / "checkin_ok.md.j2").write_text("已收到，{{ who|md }}。", encoding="utf-8")
    renderer = Renderer.for_config(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bot.render"):
        await renderer.warm()
    messages = {
        p.relative_to(BUILTIN).as_posix()
        for p in BUILTIN.rglob("*.j2")
        if not p.relative_to(BUILTIN).as_posix().startswith("web/")
    }
    assert set(renderer._templates) == messages  # every one, the broken one left out
    [warning] = caplog.records
    assert warning.getMessage().startswith("template replies/broken.md.j2 does not compile")
    # The deployment's own template is the one warmed and used.
    assert (
        renderer.render("replies/checkin_ok.md.j2", who="甲*局") == "已收到，甲＊局。"
    )  # escaped as the md filter does

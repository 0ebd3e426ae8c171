"""Rendering replies and posts from Jinja2 templates, with a deployment's overrides first.

Templates are Markdown: HTML autoescape would be wrong, so every user-supplied value goes
through the `md` filter, which escapes Markdown and defuses @所有人/@all and mention syntax.
StrictUndefined turns a misspelt variable into an error in tests instead of a blank in a group.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
)

from bot.settings import PROJECT_ROOT
from bot.text import escape_markdown

log = logging.getLogger(__name__)
BUILTIN = PROJECT_ROOT / "templates"
# The same titles and names come back in every post of a month's 2,500 (some 90,000 escapes).
_escaped = functools.lru_cache(maxsize=4096)(escape_markdown)


class Renderer:
    def __init__(self, overrides: Sequence[Path] = ()) -> None:
        dirs = [p for p in overrides if p.is_dir()] + [BUILTIN]
        self.env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(d)) for d in dirs]),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            # Read once per process, like the configuration: checking every file's age on every
            # reply costs a stat per template per message.
            auto_reload=False,
        )
        # Read once (auto_reload is off), yet the environment looks each name up in its locked
        # LRU cache on every call: a tenth of a post's rendering when 督办 writes 10,000.
        self._templates: dict[str, Template] = {}
        self.env.filters["md"] = lambda value: _escaped(str(value))
        self.env.filters["date"] = _date
        self.env.filters["dt"] = _datetime

    def render(self, name: str, /, **variables: Any) -> str:
        return self._template(name).render(**variables).strip()

    def _template(self, name: str) -> Template:
        template = self._templates.get(name)
        if template is None:
            template = self._templates[name] = self.env.get_template(name)
        return template

    async def warm(self) -> None:
        """Compile every template a reply or a post uses, one per turn of the event loop (the
        largest takes 14 ms): the first 本月任务 after a start took 16-22 ms, most of it
        compiling, against 4-5 ms for the next."""
        for name in self.env.list_templates(filter_func=_renders_messages):
            try:
                self._template(name)
            except TemplateError as e:  # an override's mistake: said when it is first used too
                log.warning("template %s does not compile: %s", name, e)
            await asyncio.sleep(0)

    @classmethod
    def for_config(cls, config_root: Path) -> Renderer:
        return cls([config_root / "templates"])


def _renders_messages(name: str) -> bool:
    return name.endswith(".j2") and not name.startswith("web/")  # the dashboard has its own


def _date(value: Any) -> str:
    from bot.clock import SHANGHAI

    if isinstance(value, datetime):  # a deadline read back in UTC is still a Beijing day
        value = value.astimezone(SHANGHAI)
    return f"{value.month}月{value.day}日"


def _datetime(value: Any) -> str:
    from bot.clock import SHANGHAI

    local = value.astimezone(SHANGHAI)
    return f"{local.month}月{local.day}日 {local:%H:%M}"

"""HTML rendering for the dashboard: its own Jinja2 environment with autoescape ON.

bot.render is for Markdown (autoescape off, values through |md); HTML needs the opposite, so
every value here is escaped unless a template says otherwise (none does). A deployment may
override any template with a file of the same name under <config>/templates/web/.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from bot.clock import SHANGHAI
from bot.render import BUILTIN


class Pages:
    def __init__(self, overrides: Sequence[Path] = ()) -> None:
        dirs = [p for p in overrides if p.is_dir()] + [BUILTIN]
        self.env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(d)) for d in dirs]),
            undefined=StrictUndefined,
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["pct"] = pct
        self.env.filters["date"] = day
        self.env.filters["dt"] = moment

    def render(self, name: str, /, **variables: Any) -> str:
        return self.env.get_template(f"web/{name}").render(**variables)

    @classmethod
    def for_config(cls, config_root: Path) -> Pages:
        return cls([config_root / "templates"])


def pct(value: float | None) -> str:
    return "—" if value is None else f"{round(value * 100)}%"


def day(value: datetime) -> str:
    local = value.astimezone(SHANGHAI)
    return f"{local.month}月{local.day}日"


def moment(value: datetime) -> str:
    local = value.astimezone(SHANGHAI)
    return f"{local.month}月{local.day}日 {local:%H:%M}"

"""A configuration problem: where it is and what is wrong, in Chinese then English."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    message: str  # "中文说明 (English explanation)"
    file: str = ""
    line: int = 0
    severity: Literal["error", "warning"] = "error"

    @property
    def where(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else self.file
        return f"{place}  {dotted(self.path)}" if self.path else place

    def __str__(self) -> str:
        mark = "" if self.severity == "error" else "[警告 warning] "
        return f"{self.where}: {mark}{self.message}"


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class ConfigInvalid(Exception):
    """Raised with every problem found, so an admin fixes them all in one pass."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, dotted(p.path)))
        super().__init__(report(self.problems))


def report(problems: list[Problem]) -> str:
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    head = f"配置有 {errors} 处错误、{warnings} 处警告 ({errors} errors, {warnings} warnings)"
    return "\n".join([head, *(f"  {p}" for p in problems)])

"""Reads the YAML files of a deployment, and the file and line of every key for reports.

A province's configuration runs to 200,000 people: the files are parsed once with libyaml when
PyYAML has it (a file written as JSON, which is YAML too, with the json module in a fraction of
that), and the line index, which needs the whole node graph, is built only when a problem is to
be reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path as FsPath
from typing import Any

import yaml

from bot.deployment.problems import ConfigInvalid, Path, Problem


@dataclass
class Source:
    """The merged top-level mapping and where each path came from."""

    data: dict[str, Any] = field(default_factory=dict)
    root: FsPath = FsPath(".")
    texts: list[tuple[str, str]] = field(default_factory=list)  # (file as shown, its text)

    @cached_property
    def lines(self) -> dict[Path, tuple[str, int]]:
        found: dict[Path, tuple[str, int]] = {}
        for name, text in self.texts:
            node = yaml.compose(text, Loader=_LOADER)
            if isinstance(node, yaml.MappingNode):
                _index(node, (), name, found)
        return found

    def locate(self, path: Path) -> tuple[str, int]:
        """The file and line of the deepest part of `path` that exists in the files."""
        for cut in range(len(path), 0, -1):
            found = self.lines.get(tuple(path[:cut]))
            if found:
                return found
        return (next(iter(self.lines.values()))[0] if self.lines else "", 0)

    def problem(self, path: Path, message: str, severity: str = "error") -> Problem:
        file, line = self.locate(path)
        return Problem(path, message, file, line, severity)  # type: ignore[arg-type]


def config_files(location: FsPath) -> list[FsPath]:
    if location.is_dir():
        return sorted(p for p in location.iterdir() if p.suffix in (".yaml", ".yml"))
    return [location]


def read(location: FsPath) -> Source:
    """Merge the files; each top-level section must live in exactly one of them."""
    source = Source(root=location if location.is_dir() else location.parent)
    problems: list[Problem] = []
    files = config_files(location) if location.exists() else []
    if not files:
        msg = f"找不到配置文件 (no configuration found at {location})"
        raise ConfigInvalid([Problem((), msg, str(location))])
    for file in files:
        name = _display(file)
        try:
            text = file.read_text(encoding="utf-8")
            data = _parse(text)
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            line = e.problem_mark.line + 1 if getattr(e, "problem_mark", None) else 0  # type: ignore[union-attr]
            reason = getattr(e, "problem", None) or str(e)
            problems.append(Problem((), f"YAML 语法错误：{reason} (YAML syntax error)", name, line))
            continue
        if data is None:
            continue
        if not isinstance(data, dict):
            msg = "文件顶层应为键值映射 (the top level must be a mapping)"
            problems.append(Problem((), msg, name, 1))
            continue
        source.texts.append((name, text))
        for section, value in data.items():
            if section in source.data:
                other = source.locate((section,))
                msg = (
                    f"配置节“{section}”在 {other[0]}:{other[1]} 已定义过 "
                    f"(section defined twice; each section belongs in one file)"
                )
                problems.append(Problem((section,), msg, name, _line(text, section)))
                continue
            source.data[section] = value
    if problems:
        raise ConfigInvalid(problems)
    return source


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str) -> Any:
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            pass  # YAML's flow style, not JSON: the YAML parser reads it and says what is wrong
    return yaml.load(text, Loader=_LOADER)


def _index(node: yaml.Node, path: Path, file: str, out: dict[Path, tuple[str, int]]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            out.setdefault(child, (file, key_node.start_mark.line + 1))
            _index(value_node, child, file, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.setdefault((*path, i), (file, item.start_mark.line + 1))
            _index(item, (*path, i), file, out)


def _line(text: str, section: str) -> int:
    node = yaml.compose(text, Loader=_LOADER)
    for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
        if key_node.value == section:
            return int(key_node.start_mark.line) + 1
    return 0


def _display(file: FsPath) -> str:
    try:
        return str(file.resolve().relative_to(FsPath.cwd()))
    except ValueError:
        return str(file)

"""Reads the YAML files of a deployment, and the file and line of every key for reports.

A province's configuration runs to 200,000 people: the files are parsed once with libyaml when
PyYAML has it (a file written as JSON, which is YAML too, with the json module in a fraction of
that), and lines are looked up only when a problem is to be reported: from an index of every
key for a small configuration, and for a large one, whose node graph would take a gigabyte, in
one pass over the parser's events that follows only the paths asked for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
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
        """Every key's file and line, from the node graph: for small configurations."""
        found: dict[Path, tuple[str, int]] = {}
        for name, text in self.texts:
            node = yaml.compose(text, Loader=_LOADER)
            if isinstance(node, yaml.MappingNode):
                _index(node, (), name, found)
        return found

    def locate(self, path: Path) -> tuple[str, int]:
        """The file and line of the deepest part of `path` that exists in the files."""
        return self.places([path])[tuple(path)]

    def places(self, paths: Iterable[Path]) -> dict[Path, tuple[str, int]]:
        """`locate` for many paths, the files read once for all of them."""
        wanted = {tuple(p) for p in paths}
        if not wanted:
            return {}
        if sum(len(text) for _, text in self.texts) <= INDEX_LIMIT:
            known = self.lines
        else:
            prefixes = {p[:cut] for p in wanted for cut in range(1, len(p) + 1)}
            known = {}
            for name, text in self.texts:
                for found, line in find_lines(text, prefixes).items():
                    known.setdefault(found, (name, line))
        first = next(iter(known.values()))[0] if known else ""
        return {
            path: next(
                (known[path[:cut]] for cut in range(len(path), 0, -1) if path[:cut] in known),
                (first, 0),
            )
            for path in wanted
        }

    def problems(self, found: Iterable[tuple[Path, str, str]]) -> list[Problem]:
        found = list(found)
        places = self.places(path for path, _, _ in found)
        return [
            Problem(path, message, *places[tuple(path)], severity)  # type: ignore[arg-type]
            for path, message, severity in found
        ]

    def problem(self, path: Path, message: str, severity: str = "error") -> Problem:
        return self.problems([(path, message, severity)])[0]


INDEX_LIMIT = 1_000_000  # characters: up to this, an index of every key; beyond, walks


def config_files(location: FsPath) -> list[FsPath]:
    if location.is_dir():
        return sorted(p for p in location.iterdir() if p.suffix in (".yaml", ".yml"))
    return [location]


@dataclass(frozen=True)
class Files:
    """A configuration's files as read, before any parsing."""

    root: FsPath
    texts: list[tuple[str, str]]  # (file as shown, its text), the files that are UTF-8
    unreadable: list[Problem]  # the files that are not
    digest: str  # SHA-256 over every file's name and bytes: the same files, the same digest


def read_files(location: FsPath) -> Files:
    files = config_files(location) if location.exists() else []
    if not files:
        msg = f"找不到配置文件 (no configuration found at {location})"
        raise ConfigInvalid([Problem((), msg, str(location))])
    digest = hashlib.sha256()
    texts: list[tuple[str, str]] = []
    unreadable: list[Problem] = []
    for file in files:
        data = file.read_bytes()
        for part in (file.name.encode(), data):  # the name as it is, whatever the cwd
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        try:
            text = data.decode("utf-8")
            if "\r" in text:  # as text mode reads it: universal newlines
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            texts.append((_display(file), text))
        except UnicodeDecodeError as e:
            msg = f"YAML 语法错误：{e} (YAML syntax error)"
            unreadable.append(Problem((), msg, _display(file), 0))
    root = location if location.is_dir() else location.parent
    return Files(root, texts, unreadable, digest.hexdigest())


def read(location: FsPath | Files) -> Source:
    """Merge the files; each top-level section must live in exactly one of them."""
    files = location if isinstance(location, Files) else read_files(location)
    source = Source(root=files.root)
    problems: list[Problem] = list(files.unreadable)
    for name, text in files.texts:
        try:
            data = parse_text(text)
        except yaml.YAMLError as e:
            line = e.problem_mark.line + 1 if getattr(e, "problem_mark", None) else 0  # type: ignore[attr-defined]
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


def parse_text(text: str) -> Any:
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
    return find_lines(text, {(section,)}).get((section,), 0)


def find_lines(text: str, wanted: set[Path]) -> dict[Path, int]:
    """The line of each path of `wanted` (closed under prefixes) found in `text`, from the
    parser's events: nothing is composed, and what is not asked for is only skipped over."""
    events = yaml.parse(text, Loader=_LOADER)
    found: dict[Path, int] = {}
    try:
        for event in events:
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                _visit(events, event, (), wanted, found)  # the document's top level
                break
    except yaml.YAMLError:
        pass  # what was found before the mistake still helps
    return found


def _visit(
    events: Iterator[yaml.Event],
    first: yaml.Event,
    path: Path,
    wanted: set[Path],
    found: dict[Path, int],
) -> None:
    if isinstance(first, yaml.MappingStartEvent):
        while not isinstance(key := next(events), yaml.MappingEndEvent):
            child = (*path, key.value) if isinstance(key, yaml.ScalarEvent) else None
            if child is None:
                _skip(events, key)  # a complex key: nothing a path names
            value = next(events)
            if child in wanted:
                found.setdefault(child, _line_of(key))
                _visit(events, value, child, wanted, found)
            else:
                _skip(events, value)
    elif isinstance(first, yaml.SequenceStartEvent):
        i = 0
        while not isinstance(item := next(events), yaml.SequenceEndEvent):
            child = (*path, i)
            if child in wanted:
                found.setdefault(child, _line_of(item))
                _visit(events, item, child, wanted, found)
            else:
                _skip(events, item)
            i += 1


def _line_of(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark else 0


def _skip(events: Iterator[yaml.Event], first: yaml.Event) -> None:
    depth = int(isinstance(first, (yaml.MappingStartEvent, yaml.SequenceStartEvent)))
    while depth:
        event = next(events)
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _display(file: FsPath) -> str:
    try:
        return str(file.resolve().relative_to(FsPath.cwd()))
    except ValueError:
        return str(file)

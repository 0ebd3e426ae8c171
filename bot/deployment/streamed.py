"""Validating a province-sized configuration without holding its parsed tree.

Parsing a file that lists 200,000 people builds a dict for each (some 140 MB from JSON; from
YAML a node graph first, over a gigabyte) before the schema makes its own objects from them.
Here a file is read one item of a top-level list at a time, and each item is validated at
once, so only the validated objects stay: JSON with the json module's scanner, YAML from
libyaml's events, composed and constructed an item at a time. Anything out of the ordinary (a
section twice, an unknown one, an item that fails the schema, text that is not JSON after all,
a second YAML document) gives None, and `load` reads the files the careful way, which reports
every problem with its file and line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from json.scanner import make_scanner
from typing import Any, get_origin

import yaml
from pydantic import TypeAdapter
from yaml.composer import Composer
from yaml.events import (
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from bot.deployment.schema import Deployment

_DECODER = json.JSONDecoder()
# One JSON value at an index, what json.loads itself runs on (typeshed mistypes its argument).
_SCAN: Callable[[str, int], tuple[Any, int]] = make_scanner(_DECODER)  # type: ignore[arg-type]
_BLANK = re.compile(r"[ \t\n\r]*")


def validated(texts: list[tuple[str, str]]) -> Deployment | None:
    """The configuration, when every file is sound; None to have it read the careful way."""
    sections: dict[str, Any] = {}
    try:
        for _, text in texts:
            for name, value in _sections(text):
                if name in sections or name not in Deployment.model_fields:
                    return None
                if isinstance(value, Iterator):  # a list, read as it is validated
                    as_list = _list_validator(name)
                    if as_list is None:
                        return None
                    value = as_list(value)
                sections[name] = value
        return Deployment.model_validate(sections)
    except (ValueError, yaml.YAMLError):  # ValidationError and JSONDecodeError are ValueErrors
        return None


@cache
def _list_validator(section: str) -> Callable[[Any], Any] | None:
    """Validates a list section from an iterator of its items (pydantic takes generators)."""
    annotation = Deployment.model_fields[section].annotation
    if annotation is None or get_origin(annotation) is not list:
        return None
    return TypeAdapter(annotation).validator.validate_python


def _sections(text: str) -> Iterator[tuple[str, Any]]:
    if text.lstrip().startswith("{"):
        yield from _Cursor(text).sections()
    else:
        yield from _yaml_sections(text)


_YAML: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _YamlItems(_YAML):  # type: ignore[misc]
    """libyaml's events, composed into nodes by PyYAML's own composer one value at a time
    (the C loader composes only whole documents)."""

    compose_node = Composer.compose_node
    compose_scalar_node = Composer.compose_scalar_node
    compose_sequence_node = Composer.compose_sequence_node
    compose_mapping_node = Composer.compose_mapping_node

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.anchors: dict[str, Any] = {}

    def value(self) -> Any:
        # A root node, as compose_document composes it (typeshed says the index is an int).
        return self.construct_document(self.compose_node(None, None))  # type: ignore[arg-type]

    def items(self) -> Iterator[Any]:
        self.get_event()  # the sequence's start
        while not self.check_event(SequenceEndEvent):
            yield self.value()
        self.get_event()


def _yaml_sections(text: str) -> Iterator[tuple[str, Any]]:
    events = _YamlItems(text)
    try:
        events.get_event()  # the stream's start
        if events.check_event(StreamEndEvent):
            return  # nothing but comments
        events.get_event()  # the document's start
        if not events.check_event(MappingStartEvent):
            raise ValueError("the top level is not a mapping")
        events.get_event()
        while not events.check_event(MappingEndEvent):
            name = events.value()
            seq = events.check_event(SequenceStartEvent)
            yield name, (events.items() if seq else events.value())
        events.get_event()
        events.get_event()  # the document's end
        if not events.check_event(StreamEndEvent):
            raise ValueError("more than one document")
    finally:
        events.dispose()


class _Cursor:
    """Reads a JSON object of sections; a list is handed out item by item, and must be read
    to its end before the next section is asked for."""

    def __init__(self, text: str) -> None:
        self.text, self.at = text, 0

    def sections(self) -> Iterator[tuple[str, Any]]:
        self.expect("{")
        if self.peek() == "}":
            self.at += 1
        else:
            while True:
                name = self.value()
                if not isinstance(name, str):
                    raise ValueError("a section's name is not a string")
                self.expect(":")
                yield name, (self.items() if self.peek() == "[" else self.value())
                if self.next() == "}":
                    break
                self.back(",")
        if self.peek():
            raise ValueError("text after the top-level object")

    def items(self) -> Iterator[Any]:
        # The hot loop of a province's 220,000 items: the json module's scanner, no wrappers.
        text, scan = self.text, _SCAN
        self.expect("[")
        at = _skip(text, self.at)
        if text[at : at + 1] != "]":
            while True:
                try:
                    value, at = scan(text, at)
                except StopIteration:
                    raise ValueError(f"no JSON value at {at}") from None
                yield value
                at = _skip(text, at)
                char = text[at : at + 1]
                at = _skip(text, at + 1)
                if char == "]":
                    break
                if char != ",":
                    raise ValueError(f"expected ',' or ']' at {at}")
            self.at = at
        else:
            self.at = at + 1

    def peek(self) -> str:
        self.at = _skip(self.text, self.at)
        return self.text[self.at : self.at + 1]

    def next(self) -> str:
        char = self.peek()
        self.at += 1
        return char

    def back(self, expected: str) -> None:
        """The character just read must have been `expected`."""
        if self.text[self.at - 1 : self.at] != expected:
            raise ValueError(f"expected {expected!r} at {self.at}")

    def expect(self, char: str) -> None:
        self.next()
        self.back(char)

    def value(self) -> Any:
        self.peek()
        value, self.at = _DECODER.raw_decode(self.text, self.at)
        return value


def _skip(text: str, at: int) -> int:
    """Where the next character that is not blank is, from `at` on."""
    match = _BLANK.match(text, at)
    assert match is not None  # the pattern matches the empty string
    return match.end()

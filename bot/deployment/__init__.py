"""A deployment's configuration: read, validate reporting every problem at once, resolve secrets.

`load()` is the only entry point; `duban config check`, `duban serve` and the sync share it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.deployment.checks import cross_checks, schema_problems
from bot.deployment.problems import ConfigInvalid, Problem, report
from bot.deployment.schema import Deployment, EnvRef, Secret
from bot.deployment.source import Source, read, read_files
from bot.deployment.streamed import validated

__all__ = ["ConfigInvalid", "Deployment", "Loaded", "Problem", "load", "report"]


@dataclass(frozen=True)
class Loaded:
    spec: Deployment
    root: Path  # the configuration directory: template overrides live in root/templates
    warnings: list[Problem]
    env: Mapping[str, str]
    digest: str = ""  # of the files' names and bytes; the database keeps the last one applied

    def secret(self, value: Secret | None) -> str | None:
        if isinstance(value, EnvRef):
            return self.env.get(value.env) or None
        return value

    def without_people(self) -> Loaded:
        """The configuration as a running server keeps it. Its people (a province's 200,000,
        ~60 MB) are in the database once start-up has synced them, and nothing else reads them
        but the console, which packs what it needs beforehand."""
        return replace(self, spec=self.spec.model_copy(update={"people": _Released()}))


class _Released(list[Any]):
    """Where the people were. Code that reads them in the running server would otherwise see
    an empty list and quietly do the wrong thing: it fails instead, and says where to look."""

    def _refuse(self, *_: object) -> Any:
        raise RuntimeError("the running server keeps no people: read them from the database")

    __iter__ = __len__ = __getitem__ = __contains__ = __reversed__ = _refuse

    def __repr__(self) -> str:
        return "<people: in the database since start-up>"


def load(location: Path, env: Mapping[str, str] | None = None, live: bool = True) -> Loaded:
    """Read and check; raise ConfigInvalid listing every error (warnings ride along on success).

    `live` is False when deliveries stay on the local console: missing secrets are then warnings.
    """
    env = dict(os.environ) if env is None else env
    files = read_files(location)
    spec = None if files.unreadable else validated(files.texts)
    if spec is not None:  # sound as far as the schema goes: the cross-checks are still to come
        source = Source(root=files.root, texts=files.texts)
    else:
        source = read(files)
        spec = _checked(source, env, live)
    found = source.problems(cross_checks(spec, env, live))
    if any(p.severity == "error" for p in found):
        raise ConfigInvalid(found)
    return Loaded(spec, source.root, found, env, files.digest)


def _checked(source: Source, env: Mapping[str, str], live: bool) -> Deployment:
    """The careful way: the whole tree parsed, every schema problem reported with its place."""
    try:
        return Deployment.model_validate(source.data)
    except ValidationError as e:
        problems = schema_problems(source, e)
        # Check the rest too, so that one typo does not hide the other mistakes.
        salvaged = _set_aside(source.data, e)
        if salvaged is not None:
            data, index_map, tolerated = salvaged
            found = cross_checks(Deployment.model_validate(data), env, live, tolerated)
            problems += source.problems(
                (
                    (path[0], index_map[path[0]][path[1]], *path[2:])
                    if (len(path) > 1 and path[0] in index_map and isinstance(path[1], int))
                    else path,
                    msg,
                    sev,
                )
                for path, msg, sev in found
            )
        raise ConfigInvalid(problems) from None


def _set_aside(
    data: dict[str, Any], error: ValidationError
) -> tuple[dict[str, Any], dict[str, list[int]], frozenset[str]] | None:
    """The configuration without the list items that failed the schema, or None when a failure
    lies outside a top-level list (then nothing sound is left to cross-check)."""
    bad: dict[str, set[int]] = {}
    for err in error.errors():
        loc = err["loc"]
        section = data.get(str(loc[0]))
        if len(loc) < 2 or not isinstance(loc[1], int) or not isinstance(section, list):
            return None
        bad.setdefault(str(loc[0]), set()).add(int(loc[1]))
    out = dict(data)
    index_map: dict[str, list[int]] = {}
    tolerated: set[str] = set()
    for section, indices in bad.items():
        items = data[section]
        keep = [i for i in range(len(items)) if i not in indices]
        out[section] = [items[i] for i in keep]
        index_map[section] = keep
        tolerated.update(str(items[i].get("id")) for i in indices if isinstance(items[i], dict))
    try:
        Deployment.model_validate(out)
    except ValidationError:
        return None
    return out, index_map, frozenset(tolerated)

"""A deployment's configuration: read, validate with every problem reported at once, resolve secrets.

`load()` is the only entry point; `duban config check`, `duban serve` and the sync share it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from bot.deployment.checks import cross_checks, schema_problems
from bot.deployment.problems import ConfigInvalid, Problem, report
from bot.deployment.schema import Deployment, EnvRef, Secret
from bot.deployment.source import read

__all__ = ["ConfigInvalid", "Deployment", "Loaded", "Problem", "load", "report"]


@dataclass(frozen=True)
class Loaded:
    spec: Deployment
    root: Path  # the configuration directory: template overrides live in root/templates
    warnings: list[Problem]
    env: Mapping[str, str]

    def secret(self, value: Secret | None) -> str | None:
        if isinstance(value, EnvRef):
            return self.env.get(value.env) or None
        return value


def load(location: Path, env: Mapping[str, str] | None = None, live: bool = True) -> Loaded:
    """Read and check; raise ConfigInvalid listing every error (warnings ride along on success).

    `live` is False when deliveries stay on the local console: missing secrets are then warnings.
    """
    env = dict(os.environ) if env is None else env
    source = read(location)
    try:
        spec = Deployment.model_validate(source.data)
    except ValidationError as e:
        raise ConfigInvalid(schema_problems(source, e)) from None
    problems = cross_checks(spec, source, env, live)
    if any(p.severity == "error" for p in problems):
        raise ConfigInvalid(problems)
    return Loaded(spec, source.root, problems, env)

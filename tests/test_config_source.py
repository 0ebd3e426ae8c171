"""Reading configuration files: JSON (YAML's subset) for province-sized files, line numbers
found only when there is something to report, and the same answers either way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bot.deployment import ConfigInvalid, load
from tests.configs import ENV, mini, write


def as_json(directory: Path, data: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "duban.yaml").write_text(
        json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return directory


def test_a_file_written_as_json_loads_as_the_yaml_does(tmp_path: Path) -> None:
    from_yaml = load(write(tmp_path / "y", mini()), env=ENV)
    from_json = load(as_json(tmp_path / "j", mini()), env=ENV)
    assert from_json.spec == from_yaml.spec
    assert from_json.warnings == from_yaml.warnings


def test_problems_in_a_json_file_name_their_line(tmp_path: Path) -> None:
    data = mini()
    data["communities"][0]["lead"] = "u_missing"  # type: ignore[index]
    directory = as_json(tmp_path, data)
    with pytest.raises(ConfigInvalid) as e:
        load(directory, env=ENV)
    [problem] = [p for p in e.value.problems if "u_missing" in p.message]
    text = (directory / "duban.yaml").read_text(encoding="utf-8").splitlines()
    assert problem.file.endswith("duban.yaml")
    assert '"lead": "u_missing"' in text[problem.line - 1]  # the key's own line


def test_flow_style_yaml_that_is_not_json_still_reads(tmp_path: Path) -> None:
    text = yaml.safe_dump(mini(), allow_unicode=True, default_flow_style=True)
    assert text.startswith("{")
    tmp_path.joinpath("duban.yaml").write_text(text.replace('"', ""), encoding="utf-8")
    assert load(tmp_path, env=ENV).spec == load(write(tmp_path / "y", mini()), env=ENV).spec

"""Reading configuration files: JSON (YAML's subset) for province-sized files, line numbers
found only when there is something to report, and the same answers either way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bot.deployment import ConfigInvalid, Deployment, load
from bot.deployment.source import INDEX_LIMIT, find_lines, read, read_files
from bot.deployment.streamed import validated
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


def test_sound_files_are_validated_as_they_are_read(tmp_path: Path) -> None:
    # The streamed way must hold for sound files (else every load builds the whole tree),
    # and give what the careful way gives.
    for directory in (as_json(tmp_path / "j", mini()), write(tmp_path / "y", mini())):
        files = read_files(directory)
        streamed = validated(files.texts)
        assert streamed is not None
        assert streamed == Deployment.model_validate(read(files).data)


def test_yaml_read_an_item_at_a_time_keeps_anchors_and_comments(tmp_path: Path) -> None:
    text = yaml.safe_dump(mini(), allow_unicode=True, sort_keys=False)
    text = text.replace("people:\n", "# 人员\npeople:\n", 1)
    text = text.replace("  short: 甲局\n", "  short: &short 甲局\n", 1)
    text = text.replace("  short: 乙局\n", "  short: *short\n", 1)
    text = text.replace("short: &short 甲局", "short: &short 甲局\n  # 上级单位\n  parent: null", 1)
    tmp_path.joinpath("duban.yaml").write_text(text, encoding="utf-8")
    files = read_files(tmp_path)
    careful = read(files).data
    streamed = validated(files.texts)
    assert streamed is not None and careful["units"][1]["short"] == "甲局"
    assert streamed == Deployment.model_validate(careful)


@pytest.mark.parametrize(
    "text",
    [
        '{"units": [{"id": "u1"}]}',  # fails the schema: reported by the careful way
        '{"units": [], "units": []}',  # a section twice
        '{"units": []} trailing',
        '{"units": [1 2]}',
        '{"unknown": []}',
        "units: []\n---\nunits: []\n",  # two YAML documents
        "- units\n",  # a list at the top
        "units: [\n",
        "units: []\nunits: []\n",
    ],
)
def test_anything_unusual_is_left_to_the_careful_way(text: str) -> None:
    assert validated([("duban.yaml", text)]) is None


def test_a_schema_problem_in_a_json_list_names_its_line(tmp_path: Path) -> None:
    data = mini()
    data["people"][2]["nick"] = "小甲"  # type: ignore[index]
    directory = as_json(tmp_path, data)
    with pytest.raises(ConfigInvalid) as e:
        load(directory, env=ENV)
    [problem] = e.value.problems
    assert problem.path == ("people", 2, "nick") and "未知的配置项" in problem.message
    text = (directory / "duban.yaml").read_text(encoding="utf-8").splitlines()
    assert '"nick": "小甲"' in text[problem.line - 1]


def test_the_digest_follows_the_bytes_not_the_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load(write(tmp_path / "a", mini()), env=ENV).digest
    monkeypatch.chdir(tmp_path)
    assert load(write(tmp_path / "b", mini()), env=ENV).digest == first
    data = mini()
    data["people"][0]["mobile"] = "13900000000"  # type: ignore[index]
    assert load(write(tmp_path / "c", data), env=ENV).digest != first
    assert len(first) == 64


def test_walking_the_events_finds_the_lines_the_index_has(tmp_path: Path) -> None:
    for directory in (as_json(tmp_path / "j", mini()), write(tmp_path / "y", mini())):
        source = read(directory)
        [(_, text)] = source.texts
        indexed = {path: line for path, (_, line) in source.lines.items()}
        assert find_lines(text, set(indexed)) == indexed


def test_a_warning_in_a_large_file_is_placed_without_its_node_graph(tmp_path: Path) -> None:
    data = mini()
    crowd = [{"id": f"p{n:05d}", "name": f"人员{n}", "wecom": f"w{n:05d}"} for n in range(20_000)]
    del crowd[9_000]["wecom"]  # a person the bot cannot recognise: a warning
    data["people"] += crowd  # type: ignore[operator]
    directory = as_json(tmp_path, data)
    loaded = load(directory, env=ENV)
    assert len(loaded.spec.people) == 20_004
    [warning] = loaded.warnings
    assert warning.path == ("people", 9_004)
    text = (directory / "duban.yaml").read_text(encoding="utf-8")
    assert len(text) > INDEX_LIMIT  # placed by walking the events, not from the index
    assert '"id": "p09000"' in "".join(text.splitlines()[warning.line - 1 : warning.line + 1])

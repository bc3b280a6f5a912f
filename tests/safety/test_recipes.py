"""Class 4: recipes are strict -- duplicate keys, out-of-range numbers, alias bombs, bad --set, bad paths."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from safety_helpers import one_line_error

from fintune.errors import FintuneError
from fintune.recipe import load_recipe
from fintune.sweep import load_space
from fintune.yamlio import load_yaml_text

BASE = "name: r\nmodel_name_or_path: m\n"


def _recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "line", "key"), [
    (BASE + "lora_r: 8\nlora_r: 16\n", 4, "lora_r"),
    ("name: a\nname: b\nmodel_name_or_path: m\n", 2, "name"),
    (BASE + "data:\n  task: sentiment\n  task: ner\n", 5, "task"),
    (BASE + "data:\n  sources:\n    - {name: csv, path: a.csv, path: b.csv}\n", 5, "path"),
    (BASE + "eval: {mode: score, mode: generate}\n", 3, "mode"),
])
def test_duplicate_keys_name_file_line_and_key(tmp_path: Path, text: str, line: int, key: str) -> None:
    path = _recipe(tmp_path, text)
    with pytest.raises(FintuneError, match=rf"r\.yaml:{line}: duplicate key '{key}' \(first on line \d+\)"):
        load_recipe(path)


@pytest.mark.parametrize(("setting", "key"), [
    ("num_train_epochs: .inf", "num_train_epochs"),
    ("num_train_epochs: .nan", "num_train_epochs"),
    ("learning_rate: -0.001", "learning_rate"),
    ("max_steps: -5", "max_steps"),
    ("data: {split: {test_size: 1.5}}", "data.split.test_size"),
    ("lora_dropout: -.inf", "lora_dropout"),
    ("seed: -1", "seed"),
])
def test_numbers_are_range_checked(tmp_path: Path, setting: str, key: str) -> None:
    with pytest.raises(FintuneError, match=rf"r\.yaml: key '{key}'"):
        load_recipe(_recipe(tmp_path, BASE + setting + "\n"))


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(1, 10):
        prev, cur = chr(ord("a") + k - 1), chr(ord("a") + k)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = _recipe(tmp_path, BASE + "\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(FintuneError, match="expands to more than"):
        load_recipe(path)
    assert time.perf_counter() - t0 < 2.0
    with pytest.raises(FintuneError, match="expands to more than"):
        load_recipe(path, ["data.system_prompt=hi"])
    space = tmp_path / "space.yaml"
    space.write_text("\n".join(lines) + "\n")
    with pytest.raises(FintuneError, match="expands to more than"):
        load_space(space)


def test_small_aliases_still_work_and_size_limit(tmp_path: Path) -> None:
    assert load_yaml_text("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}
    big = tmp_path / "big.yaml"
    big.write_text(BASE + "description: '" + "x" * (1 << 20) + "'\n")
    with pytest.raises(FintuneError, match=r"big\.yaml: \d+ bytes, over the 1048576-byte limit"):
        load_recipe(big)


@pytest.mark.parametrize(("override", "message"), [
    ("lora_r.x=1", r"'lora_r' is a int \(16\), not a mapping"),
    ("name.first.second=1", r"'name' is a str \('r'\), not a mapping"),
    ("data.task.x=1", r"'data\.task' is a str \('sentiment'\), not a mapping"),
    ("data.sources.9.name=csv", r"'data\.sources\.9' is not a valid list index"),
    ("=3", "empty key"),
])
def test_set_on_a_scalar_is_a_one_line_error(tmp_path: Path, override: str, message: str) -> None:
    path = _recipe(tmp_path, BASE + "lora_r: 16\ndata: {task: sentiment, sources: []}\n")
    with pytest.raises(FintuneError, match=message):
        load_recipe(path, [override])


def test_recipe_path_that_is_a_directory_or_not_utf8(tmp_path: Path, cli) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "a.yaml").write_text(BASE)
    line = one_line_error(cli("plan", str(tmp_path / "recipes")))
    assert "is a directory, not a recipe file" in line and "a.yaml" in line
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(b"name: caf\xe9\nmodel_name_or_path: m\n")
    line = one_line_error(cli("plan", str(bad)))
    assert "latin.yaml:1: not UTF-8 text" in line
    line = one_line_error(cli("train", str(tmp_path / "recipes"), "--set", "lora_r=8"))
    assert "is a directory" in line

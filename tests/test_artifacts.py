"""Atomic writes, output directories that appear whole or not at all, and manifests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fintune.artifacts import (
    atomic_output_dir,
    atomic_write_json,
    hash_paths,
    read_manifest,
    sha256_file,
    write_manifest,
)
from fintune.errors import FintuneError


def test_atomic_output_dir_keeps_old_content_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_output_dir(out) as d:
        (d / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError), atomic_output_dir(out, overwrite=True) as d:
        (d / "a.txt").write_text("half")
        raise RuntimeError("boom")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging left behind
    with atomic_output_dir(out, overwrite=True) as d:
        (d / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]


def test_atomic_output_dir_refuses_non_empty_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    with pytest.raises(FintuneError, match="not empty"), atomic_output_dir(tmp_path / "out", overwrite=False):
        pass


def test_manifest_has_versions_sha_and_hashes(tmp_path: Path) -> None:
    data = tmp_path / "d.txt"
    data.write_text("abc")
    assert sha256_file(data) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    write_manifest(tmp_path, "data", recipe={"a": 1}, seed=3, data_hashes=hash_paths([data]))
    m = read_manifest(tmp_path)
    assert m["stage"] == "data" and m["seed"] == 3 and m["recipe"] == {"a": 1}
    assert m["data_sha256"][str(data)] == sha256_file(data)
    assert "python" in m["versions"] and "fintune_git_sha" in m


def test_read_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(FintuneError, match="no manifest"):
        read_manifest(tmp_path)
    atomic_write_json(tmp_path / "manifest.json", {})
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(FintuneError, match="invalid JSON"):
        read_manifest(tmp_path)


def test_outputs_are_readable_by_others(tmp_path: Path) -> None:
    with atomic_output_dir(tmp_path / "out") as d:
        atomic_write_json(d / "m.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "out" / "m.json").stat().st_mode & 0o777 == 0o666 & ~mask

"""wsicell.atomic: complete or absent, an untouched target on error, one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsicell.atomic import atomic_path, write_text_atomic
from wsicell.errors import OutputError


def test_a_file_replaces_the_target_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    assert write_text_atomic(target, "one") == target  # the folder is created
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_an_error_keeps_the_old_target_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(ZeroDivisionError), atomic_path(target) as tmp:
        tmp.write_text("half")
        1 / 0  # noqa: B018
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_folder_replaces_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "store.zarr"
    (target / "old").mkdir(parents=True)
    with atomic_path(target) as tmp:
        (tmp / "new").mkdir(parents=True)
    assert [p.name for p in target.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]


@pytest.mark.parametrize("target", ["/proc/wsicell.txt", "/proc/wsicell/sub/a.txt"])
def test_an_unwritable_place_is_an_output_error_naming_the_file(target: str) -> None:
    with pytest.raises(OutputError, match=rf"^{target}: cannot write it \(.+\)$"):
        write_text_atomic(target, "x")


def test_errors_of_the_data_are_not_output_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "a.txt"):
        (tmp_path / "missing-input").read_text()  # an input's error keeps its type

"""atomic_write: the target appears complete or not at all."""

from __future__ import annotations

import pytest

from core.atomic import atomic_write


def test_success_renames_into_place(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.json.")
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="half way"):
        with atomic_write(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("half way")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_writing_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_write(tmp_path / "x.h5"):
            pass
    assert list(tmp_path.iterdir()) == []

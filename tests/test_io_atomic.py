"""Atomic outputs: nothing half-written, normal permissions, clear errors."""

from __future__ import annotations

import os
import stat

import pytest

from sarvlm.core.atomic import atomic_dir, atomic_open
from sarvlm.core.errors import SarvlmError


def test_atomic_outputs_get_the_modes_plain_files_would_get(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "a.txt") as fh:
            fh.write("x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_atomic_dir_refuses_a_file_and_a_nonempty_dir_and_cleans_up(tmp_path):
    f = tmp_path / "file"
    f.write_text("keep me")
    with pytest.raises(SarvlmError, match="not a directory"):
        with atomic_dir(f):
            pass
    assert f.read_text() == "keep me"
    d = tmp_path / "full"
    d.mkdir()
    (d / "old").write_text("old")
    with pytest.raises(SarvlmError, match="not empty"):
        with atomic_dir(d):
            pass
    with pytest.raises(RuntimeError):
        with atomic_dir(d, overwrite=True) as tmp:
            (tmp / "new").write_text("new")
            raise RuntimeError("fail mid-way")
    assert [p.name for p in d.iterdir()] == ["old"]  # the user's data is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "full"]  # no temp left behind


def test_atomic_outputs_never_touch_the_process_umask(tmp_path, monkeypatch):
    # Reading the umask means setting it for a moment, which races with other threads; the
    # kernel applies it by itself when the temporary is created with 0666/0777.
    def no_umask(_mask):
        raise AssertionError("os.umask called")

    old = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", no_umask)
        with atomic_open(tmp_path / "a.txt") as fh:
            fh.write("x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("y")
        monkeypatch.undo()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d"]  # no temporaries left

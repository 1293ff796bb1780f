"""Atomic writes: an interrupted write leaves the old file whole and no temporary file; a write is a rename."""

from __future__ import annotations

import os

import numpy as np
import pytest

from rgbd_fusion_core.io import atomic, imageio
from rgbd_fusion_core.io.atomic import atomic_path, write_bytes_atomic, write_text_atomic

OLD = b"old contents, complete\n"


def test_a_writer_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.bin"
    target.write_bytes(OLD)
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(target) as tmp:
            assert tmp != target and tmp.parent == target.parent
            with open(tmp, "wb") as stream:
                stream.write(b"half of the new")
                stream.flush()
                assert target.read_bytes() == OLD  # the target is untouched while the new file is written
                raise RuntimeError("disk on fire")
    assert target.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.bin"]


def test_a_failing_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "result.txt"
    target.write_bytes(OLD)

    def refuse(src, dst):
        raise OSError("rename refused")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError, match="rename refused"):
        write_text_atomic(target, "new contents that must not appear\n")
    assert target.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]


def test_a_successful_write_is_one_rename_of_a_complete_sibling_temporary(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "result.png"
    target.parent.mkdir()
    target.write_bytes(OLD)
    renames = []
    real_replace = os.replace

    def recording_replace(src, dst):
        renames.append((os.fspath(src), os.fspath(dst), open(src, "rb").read(), open(dst, "rb").read()))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", recording_replace)
    rgb = np.random.default_rng(1).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    imageio.write_rgb(target, rgb)
    assert len(renames) == 1
    src, dst, src_bytes, dst_bytes_before = renames[0]
    assert dst == os.fspath(target)
    assert os.path.dirname(src) == os.fspath(target.parent) and src != dst  # same folder: rename is atomic
    assert dst_bytes_before == OLD  # the old file stayed whole until the rename
    assert src_bytes == target.read_bytes() == imageio.encode_png(rgb, rgb=True)
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.png"]


def test_written_file_gets_normal_permissions_and_missing_folders(tmp_path):
    target = tmp_path / "a" / "b" / "data.bin"
    write_bytes_atomic(target, b"xyz")
    assert target.read_bytes() == b"xyz"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask

"""Paths under a party's roots stay inside them, and what is written there is private."""

from __future__ import annotations

import os
import stat

import pytest

from vfl.errors import UnsafeNameError
from vfl.store.files import inside, private_dir, private_sqlite, remove_tree, seal


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_inside_refuses_names_and_links_that_leave_the_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    private_dir(root)
    outside.mkdir()
    assert inside(root, "cache", "m", "v1") == (root / "cache" / "m" / "v1").resolve()
    for names in (("..",), ("cache", ".."), ("/etc",), ("a\x00",)):
        with pytest.raises(UnsafeNameError):
            inside(root, *names)
    (root / "cache").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeNameError, match="is outside"):
        inside(root, "cache", "m")


def test_remove_tree_deletes_only_inside_its_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "v1").mkdir(parents=True)
    (outside / "v1" / "keep.txt").write_text("precious")
    private_dir(root / "cache")
    (root / "cache" / "m").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeNameError):
        remove_tree(root, "cache", "m", "v1")
    assert (outside / "v1" / "keep.txt").read_text() == "precious"
    private_dir(root / "cache" / "n" / "v1")
    remove_tree(root, "cache", "n", "v1")
    assert not (root / "cache" / "n" / "v1").exists()


def test_private_folders_files_and_sqlite(tmp_path):
    old = os.umask(0o022)  # a usual umask: what is not made private would be world-readable
    try:
        deep = private_dir(tmp_path / "a" / "b" / "c")
        assert all(_mode(p) == 0o700 for p in (tmp_path / "a", tmp_path / "a" / "b", deep))
        (deep / "f.txt").write_text("x")
        (deep / "sub").mkdir()
        (deep / "sub" / "g.txt").write_text("y")
        seal(tmp_path / "a")
        assert _mode(deep / "f.txt") == _mode(deep / "sub" / "g.txt") == 0o600
        assert _mode(deep / "sub") == 0o700
        url = private_sqlite(f"sqlite:///{tmp_path / 'db' / 'x.db'}")
        assert url.endswith("x.db") and _mode(tmp_path / "db" / "x.db") == 0o600
        assert private_sqlite("postgresql://h/db") == "postgresql://h/db"
    finally:
        os.umask(old)

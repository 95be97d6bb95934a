"""Files a party keeps under one of its roots (store, job folders, checkpoints, model cache).

Every path written or deleted is resolved and must stay inside its root, whatever the names
that built it; directories are created 0700 and files made 0600, since a store holds models,
audit rows with scored ids and job records that are this party's alone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from vfl.errors import UnsafeNameError
from vfl.names import check_name

DIR_MODE = 0o700
FILE_MODE = 0o600


def inside(root: Path, *names: str) -> Path:
    """``root/names...`` resolved; each name must be safe and the result stay below `root`."""
    base = Path(root).resolve()
    for name in names:
        check_name(name, "path component")
    target = base.joinpath(*names).resolve()
    if target == base or not target.is_relative_to(base):
        raise UnsafeNameError(f"{target} is outside {base}")
    return target


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) with mode 0700; an existing one is made 0700."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path


def seal(path: Path) -> None:
    """Make `path` private: a file 0600; a directory 0700 with every file below 0600."""
    path = Path(path)
    if path.is_file():
        os.chmod(path, FILE_MODE)
        return
    os.chmod(path, DIR_MODE)
    for folder, dirs, files in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(folder, d), DIR_MODE)
        for f in files:
            os.chmod(os.path.join(folder, f), FILE_MODE)


def private_file(path: Path) -> Path:
    """Create `path` empty with mode 0600 unless it exists (then it is made 0600)."""
    path = Path(path)
    private_dir(path.parent)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    os.chmod(path, FILE_MODE)
    return path


def private_sqlite(url: str) -> str:
    """A SQLite URL's database file is created 0600 before SQLite opens it (SQLite creates its
    journals with the database's mode); other URLs are returned unchanged."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url[len(prefix):] not in ("", ":memory:"):
        private_file(Path(url[len(prefix):].partition("?")[0]))
    return url


def remove_tree(root: Path, *names: str) -> None:
    """Delete ``root/names...`` (a folder), refusing anything that resolves outside `root`."""
    target = inside(root, *names)
    if target.is_symlink():
        raise UnsafeNameError(f"{target} is a symbolic link; not deleted")
    shutil.rmtree(target, ignore_errors=True)

"""Creating a SQLite file atomically, and the bundled seeds a new database starts with."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

from timeline.errors import StoreError
from timeline.files import fsync_path, pid_alive
from timeline.log.events import CheckedEvent
from timeline.resources import seeds_path


def seed_events() -> list[CheckedEvent]:
    """The bundled seed events (the loader is imported here: a query never needs it)."""
    from timeline.log.loader import load_paths

    return load_paths([seeds_path()])


def remove_db_files(path: Path) -> None:
    """Delete a SQLite file and its journal, WAL and shared-memory companions."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def remove_stale_builds(path: Path) -> None:
    """Delete what a creator killed mid-build left beside `path` (its process is gone)."""
    for leftover in path.parent.glob(f".{path.name}.creating-*"):
        m = re.search(r"\.creating-(\d+)", leftover.name)
        if m and not pid_alive(int(m.group(1))):
            leftover.unlink(missing_ok=True)


def link_into_place(tmp: Path, path: Path) -> None:
    """Give the finished file its name, unless another process created it meanwhile."""
    try:
        os.link(tmp, path)  # atomic, and refuses to replace an existing file
    except FileExistsError:
        pass  # another creator won the race: its complete database is used
    except OSError:
        os.replace(tmp, path)  # a file system without hard links: still atomic


def build_atomically(path: Path, build: Callable[[str, Path], int]) -> int:
    """Build a new SQLite file at `path` by `build(tmp_url, tmp)`; returns what build does.

    The file is built beside its final path under a temporary name and linked into place
    only once `build` has committed: a process killed at any moment leaves no database or
    a complete one, never a half-built one.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    remove_stale_builds(path)
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
    remove_db_files(tmp)
    try:
        n = build(f"sqlite:///{tmp}", tmp)
        if Path(f"{tmp}-wal").exists() and Path(f"{tmp}-wal").stat().st_size:
            raise StoreError(f"{tmp}: the write-ahead log was not checkpointed; "
                             f"nothing was created")
        fsync_path(tmp)
        link_into_place(tmp, path)
        fsync_path(path.parent)
    finally:
        remove_db_files(tmp)
    return n

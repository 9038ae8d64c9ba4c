"""Durable file operations shared by the store (database creation), the export, the report
and charts."""
from __future__ import annotations

import glob
import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk (directories: POSIX only)."""
    if os.name != "posix" and Path(path).is_dir():
        return  # directories cannot be opened for fsync on Windows
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists (owned by anyone): a leftover of a dead one may go."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def write_atomic(path: Path, content: bytes) -> None:
    """Replace `path` with `content` or leave it as it was: written beside it, flushed and
    renamed; the temporary file goes on any failure or Ctrl-C, and those of killed runs are
    cleared first. OSError reaches the caller, which names the path in its own words."""
    path = Path(path)
    for old in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = old.name[len(path.name) + 2:-len(".tmp")]
        if pid.isdecimal() and not pid_alive(int(pid)):
            old.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

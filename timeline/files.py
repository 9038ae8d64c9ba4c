"""Durable file operations shared by the store (database creation), the export, the report
and charts."""
from __future__ import annotations

import errno
import glob
import os
import stat
from pathlib import Path

# what an output path may not be: timeline writes regular files only (issue 24)
_KINDS = ((stat.S_ISLNK, "a symbolic link (name the file it points to instead)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a folder"))


def special_kind(path: Path) -> str | None:
    """What `path` is when it exists and is not a regular file ("a character device", …),
    else None (a regular file, or nothing there)."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    return kind_of_mode(mode)


def kind_of_mode(mode: int) -> str | None:
    """What a file of stat mode `mode` is, when it is not a regular file (else None)."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def check_output_path(path: Path) -> None:
    """Refuse an output path that exists and is not a regular file: a device, FIFO, socket,
    folder or symbolic link is never replaced (OSError naming what it is)."""
    what = special_kind(path)
    if what:
        raise OSError(errno.EINVAL, f"it is {what}, not a regular file; timeline writes "
                                    f"only regular files, and nothing was replaced")


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
    cleared first. Only a regular file (or none) is replaced: a device, FIFO, socket or
    symbolic link at `path` is refused (check_output_path). OSError reaches the caller,
    which names the path in its own words."""
    path = Path(path)
    check_output_path(path)
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

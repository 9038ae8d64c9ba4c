"""Shared fixtures: fresh databases in tmp_path, never in the working directory."""
from __future__ import annotations

import contextlib
import io
import locale
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from timeline.api import Snapshot, Timeline
from timeline.store.store import Store

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _private_user_dirs(tmp_path_factory):
    """Keep the default database and REPL history of every test out of the real home."""
    import os

    saved = {k: os.environ.get(k) for k in ("XDG_DATA_HOME", "TIMELINE_DB")}
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg"))
    os.environ.pop("TIMELINE_DB", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def _seeded_template(tmp_path_factory) -> Path:
    """One database built from the bundled seeds per test session (copied per test)."""
    path = tmp_path_factory.mktemp("template") / "seeded.db"
    store = Store.create(f"sqlite:///{path}")
    store.close()
    return path


@pytest.fixture
def seeded_db(_seeded_template, tmp_path) -> Path:
    """Path of a private copy of a database holding the bundled seeds."""
    path = tmp_path / "timeline.db"
    shutil.copy(_seeded_template, path)
    return path


@pytest.fixture
def seeded_store(seeded_db) -> Store:
    """An open Store over a private seeded database."""
    store = Store.open(str(seeded_db))
    yield store
    store.close()


@contextlib.contextmanager
def snapshot_of(store: Store) -> Iterator[Snapshot]:
    """A read snapshot of `store` through the public API: what the surfaces read from."""
    with Timeline(store).snapshot() as s:
        yield s


@pytest.fixture
def empty_store(tmp_path) -> Store:
    """An open Store over a new database with the schema and no events."""
    path = tmp_path / "empty.db"
    store = Store.create(f"sqlite:///{path}", seeds=False)
    yield store
    store.close()


def run_cli_process(*args: str, input: str | None = None, env: dict | None = None,
                    cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `timeline` CLI in a subprocess (exit codes and streams as a user sees them).

    For tests of the process itself: signals and kills, several processes at once, what the
    interpreter prints or does at exit, closed or full streams, settings read at import."""
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "timeline", *args], input=input,
                          capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300)


# A fresh interpreter's warning filters (python -W/PYTHONWARNINGS aside): what a user of the
# console script would see on stderr, where pytest would otherwise collect the warning.
_DEFAULT_WARNINGS = [("default", DeprecationWarning, "__main__"),
                     ("ignore", DeprecationWarning, ""), ("ignore", PendingDeprecationWarning, ""),
                     ("ignore", ImportWarning, ""), ("ignore", ResourceWarning, "")]


def _std_stream(like, data: bytes = b"") -> io.TextIOWrapper:
    """A text stream over bytes with the encoding and error handler of the real stream
    `like`: a child process's sys.stdin/stdout/stderr are made the same way (newline "\n":
    nothing translated on POSIX)."""
    return io.TextIOWrapper(io.BytesIO(data), encoding=getattr(like, "encoding", None) or "utf-8",
                            errors=getattr(like, "errors", None) or "strict", newline="\n")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    import warnings

    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _read_back(stream: io.TextIOWrapper) -> str:
    """What subprocess.run(text=True) would hand back for bytes written to `stream`."""
    stream.flush()
    data = stream.buffer.getvalue().decode(locale.getpreferredencoding(False))
    return data.replace("\r\n", "\n").replace("\r", "\n")


def query_json(db: str, text: str) -> dict:
    """The JSON answer of `timeline query --format json TEXT` on `db` (which must succeed)."""
    import json

    r = run_cli("query", "--db", db, "--format", "json", text)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def run_cli(*args, input: str | None = None, env: dict | None = None,
            cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run the `timeline` CLI in this process, as `python -m timeline ARGS` would: the same
    CompletedProcess as run_cli_process, at a hundredth of the cost.

    `main(argv)` runs with its own stdin (`input`, or empty: never a terminal), stdout and
    stderr (bytes with the real streams' encodings, read back as subprocess.run(text=True)
    does), `env` laid over os.environ and `cwd` as the working directory, all put back
    afterwards; warnings are shown on its stderr as a fresh interpreter would show them.
    An exception escaping `main` fails the test where a subprocess would print a traceback.
    Where the process itself is under test, use run_cli_process.
    """
    import os
    import warnings

    from timeline.surfaces import cli

    argv = [os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in args]
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_cwd = os.getcwd()
    sys.stdin = _std_stream(sys.__stdin__, (input or "").encode(locale.getpreferredencoding(False)))
    sys.stdout, sys.stderr = _std_stream(sys.__stdout__), _std_stream(sys.__stderr__)
    out, err = sys.stdout, sys.stderr
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        with warnings.catch_warnings():
            warnings.resetwarnings()
            for action, category, module in _DEFAULT_WARNINGS:
                warnings.filterwarnings(action, category=category, module=module, append=True)
            warnings.showwarning = _show_warning
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # as the interpreter turns it into an exit status
                code = exc.code
                if code is not None and not isinstance(code, int):
                    print(code, file=sys.stderr)
                    code = 1
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.chdir(saved_cwd)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(["timeline", *argv], code or 0, _read_back(out),
                                       _read_back(err))

"""Shared fixtures: fresh databases in tmp_path, never in the working directory."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    store = Store.create(f"sqlite:///{path}", path)
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


@pytest.fixture
def empty_store(tmp_path) -> Store:
    """An open Store over a new database with the schema and no events."""
    path = tmp_path / "empty.db"
    store = Store.create(f"sqlite:///{path}", path, seeds=False)
    yield store
    store.close()


def run_cli(*args: str, input: str | None = None, env: dict | None = None,
            cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `timeline` CLI in a subprocess (exit codes and streams as a user sees them)."""
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "timeline", *args], input=input,
                          capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300)

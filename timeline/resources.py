"""Where the shipped data lives: grammar, migrations and bundled seeds.

In a source checkout they sit at the top of the repository (grammar/, migrations/,
seeds/); in an installed wheel setuptools maps them to timeline.grammar,
timeline.migrations and timeline.seeds. Both layouts are looked up here, once.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=None)
def _locate(name: str) -> Path:
    spec = importlib.util.find_spec(f"timeline.{name}")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    candidate = _REPO / name
    if candidate.is_dir():
        return candidate
    raise FileNotFoundError(f"timeline's {name}/ directory is missing from this installation")


def grammar_path() -> Path:
    """Path of the query language grammar file."""
    return _locate("grammar") / "timeline.lark"


def migrations_path() -> Path:
    """Directory holding the Alembic environment and versions."""
    return _locate("migrations")


def seeds_path() -> Path:
    """Directory holding the bundled seed event files and their sources."""
    return _locate("seeds")

"""The three sides of a run (timeline, eventsourcing, raw driver) on SQLite files.

A run measures the same figures on each backend through one interface: `SqliteSides` here,
`postgres.PgSides` there. Sides are named (`ours`, `es`, `raw`, `single-ours`, ...): on
SQLite a name is a file in the run's directory, on PostgreSQL a schema of the run's database.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from . import reference as ref


def ours_create(path: Path):
    """A Store over a fresh SQLite file, schema only (no seeds)."""
    from timeline.store.store import Store

    return Store.create(f"sqlite:///{path}", seeds=False)


def ours_open_readonly(path: Path):
    """The store as the CLI opens it for queries."""
    from timeline.store.store import Store

    return Store.open(str(path), readonly=True)


class SqliteSides:
    """Fresh SQLite files in `tmp`, WAL, synchronous=FULL on every side."""

    label = ""

    def __init__(self, tmp: Path):
        self.tmp = tmp

    def path(self, name: str) -> Path:
        """The database file of side `name`."""
        return self.tmp / f"{name}.db"

    def ours_create(self, name: str):
        """A Store over a fresh SQLite file, schema only (no seeds)."""
        return ours_create(self.path(name))

    def ours_open_readonly(self, name: str):
        """The store as the CLI opens it for queries."""
        return ours_open_readonly(self.path(name))

    def es_open(self, name: str):
        """eventsourcing's SQLite application recorder (table created if missing)."""
        return ref.EsStore(self.path(name))

    def raw_create(self, name: str):
        """A fresh raw database with the events table."""
        return ref.raw_create(self.path(name))

    def raw_full_create(self, name: str, like: str):
        """A trigger-free copy of the fresh database of side `like` (same tables, indexes)."""
        return ref.raw_full_create(self.path(name), self.path(like))

    raw_full_append = staticmethod(ref.raw_full_append)

    def raw_connect(self, name: str):
        """A connection to an existing raw database."""
        return ref.raw_connect(self.path(name))

    raw_append_batch = staticmethod(ref.raw_append_batch)
    raw_append_one = staticmethod(ref.raw_append_one)
    raw_as_of = staticmethod(ref.raw_as_of)
    raw_known_on = staticmethod(ref.raw_known_on)

    def snapshot(self, src: str, dst: str) -> None:
        """A consistent copy of a SQLite database (online backup API)."""
        a, b = sqlite3.connect(self.path(src)), sqlite3.connect(self.path(dst))
        try:
            a.backup(b)
        finally:
            a.close()
            b.close()

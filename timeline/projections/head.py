"""The projections' recorded head, as every read checks it, without SQLAlchemy.

`maintain` writes the head and defines the fold version; it imports SQLAlchemy, which the
driver-only read path (`timeline query`) must not, so the read side keeps the version here
and a test keeps it equal to `maintain.FOLD_VERSION`.
"""
from __future__ import annotations

from timeline.log.db import run_sql

# = timeline.projections.maintain.FOLD_VERSION (tests/test_quick_imports.py keeps them equal)
FOLD_VERSION = 2


def recorded_head(conn) -> tuple[int, str, int | None] | None:
    """The log head the projections were last brought up to and the fold version that
    built them (None: no record); the same read as maintain.recorded_head."""
    row = run_sql(conn, "SELECT position, hash, fold_version FROM projection_head "
                        "WHERE id = 1").first()
    return (row[0], row[1], row[2]) if row else None

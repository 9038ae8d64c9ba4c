"""The projections' recorded head, as every read checks it, without SQLAlchemy.

The fold version and the read of the recorded head live here, not in `maintain` (which
writes the head and imports SQLAlchemy): the driver-only read path (`timeline query`) checks
them without importing it, and `maintain` takes both from here.
"""
from __future__ import annotations

from timeline.log.db import run_sql

# The version of the fold's meaning (fold.py, knowledge.py, maintain's rows). Bump it when a
# change makes the same log fold into other projection rows: every database built by another
# version is then rebuilt by `timeline init` and refused by reads until it is
# (projection_head.fold_version, migration 0011).
FOLD_VERSION = 2


def recorded_head(conn) -> tuple[int, str, int | None] | None:
    """The log head the projections were last brought up to and the fold version that
    built them (None: no record); every read and append asks, through the driver."""
    row = run_sql(conn, "SELECT position, hash, fold_version FROM projection_head "
                        "WHERE id = 1").first()
    return (row[0], row[1], row[2]) if row else None

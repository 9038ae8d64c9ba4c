"""`timeline copy --from URL --to URL`: move a whole log between databases (and backends).

The rows are copied as they are — positions, ids, versions, recorded_at and hashes included —
so the copy carries the same hash chain (`Timeline.copy_from`); the target must be empty, and
its chain is then verified end to end: both heads must be equal.
"""
from __future__ import annotations

import argparse

from timeline import api
from timeline.errors import IntegrityError, StoreError


def configure_copy(p: argparse.ArgumentParser) -> None:
    """Arguments of `timeline copy`."""
    p.add_argument("--from", dest="source", required=True, metavar="URL",
                   help="source database (file or SQLAlchemy URL)")
    p.add_argument("--to", dest="target", required=True, metavar="URL",
                   help="target database (file or SQLAlchemy URL); must hold no events; "
                        "created and migrated when missing")


def run_copy(args) -> int:
    """Copy the log, rebuild the target's projections, verify both chains."""
    with api.open(args.source, readonly=True) as source:
        source.verify()  # triggers present and chain intact before anything is copied
        with api.init(args.target, seeds=False) as target:
            if target.url == source.url:
                raise StoreError("source and target are the same database")
            head, links = target.copy_from(source)
            copied = target.verify()
    if (copied.position, copied.hash) != (head.position, head.hash):
        raise IntegrityError(f"copy differs from the source: source head {head.position} "
                             f"{head.hash}, target head {copied.position} {copied.hash}",
                             copied.position)
    print(f"copied {head.position} events and {links} links from {source.where} to "
          f"{target.where}; both chains verify; head {head.position} {head.hash}")
    return 0

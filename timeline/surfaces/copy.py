"""`timeline copy --from URL --to URL`: move a whole log between databases (and backends).

The rows are copied as they are — positions, ids, versions, recorded_at and hashes included —
so the copy carries the same hash chain; they are inserted with Core directly, bypassing
`Store.append`, which would assign new positions, times and hashes. The chain is recomputed
on the rows as they are read from the source, the target must be empty, the events, links
and rebuilt projections commit in one transaction, and the target's chain is then verified
end to end: both heads must be equal.
"""
from __future__ import annotations

import argparse

from sqlalchemy import func, insert, select

from timeline.errors import IntegrityError, StoreError

BATCH = 5000


def configure_copy(p: argparse.ArgumentParser) -> None:
    """Arguments of `timeline copy`."""
    p.add_argument("--from", dest="source", required=True, metavar="URL",
                   help="source database (file or SQLAlchemy URL)")
    p.add_argument("--to", dest="target", required=True, metavar="URL",
                   help="target database (file or SQLAlchemy URL); must hold no events; "
                        "created and migrated when missing")


def run_copy(args) -> int:
    """Copy the log, rebuild the target's projections, verify both chains."""
    from timeline.store.store import Store

    source = Store.open(args.source, readonly=True)
    try:
        source.verify()  # triggers present and chain intact before anything is copied
        target = open_target(args.target)
        try:
            if target.url == source.url:
                raise StoreError("source and target are the same database")
            head, links = copy_log(source, target)
            copied = target.verify()
        finally:
            target.close()
    finally:
        source.close()
    if (copied.position, copied.hash) != (head.position, head.hash):
        raise IntegrityError(f"copy differs from the source: source head {head.position} "
                             f"{head.hash}, target head {copied.position} {copied.hash}",
                             copied.position)
    print(f"copied {head.position} events and {links} links from {source.where} to "
          f"{target.where}; both chains verify; head {head.position} {head.hash}")
    return 0


def open_target(db: str):
    """The target store: created (schema only) when missing, migrated when schemaless."""
    from timeline.log import db as dbmod
    from timeline.log import migrate
    from timeline.store.store import Store

    url, path, _ = dbmod.resolve(db)
    if path is not None and not path.exists():
        return Store.create(url, path, seeds=False)
    store = Store(dbmod.make_engine(url), url, path)
    with dbmod.driver_errors(store.where), store.engine.connect() as conn:
        rev = migrate.current_revision(conn)
    if rev is None:
        store.initialise(seeds=False)
    else:
        with dbmod.driver_errors(store.where), store.engine.connect() as conn:
            migrate.check(conn, store.where)
    return store


def copy_log(source, target):
    """Copy events and links in one target transaction; returns (source head, links copied)."""
    from timeline.log import db as dbmod
    from timeline.projections import maintain as projections
    from timeline.log.events import GENESIS_HASH, chain_hash
    from timeline.log.schema import event_links, events
    from timeline.store.store import Head, _write_lock

    with dbmod.driver_errors(source.where), source.connect() as src, \
            dbmod.driver_errors(target.where), target.engine.begin() as dst:
        _write_lock(dst)
        present = dst.execute(select(func.count()).select_from(events)).scalar_one()
        if present:
            raise StoreError(f"{target.where} already holds {present} events; copy needs an "
                             f"empty target (nothing was written)")
        prev, pos = GENESIS_HASH, 0
        buf: list[dict] = []
        for r in src.execute(select(events).order_by(events.c.position),
                             execution_options={"yield_per": BATCH}):
            row = r._asdict()
            pos += 1
            if row["position"] != pos or row["prev_hash"] != prev \
                    or chain_hash(prev, row) != row["hash"]:
                raise IntegrityError(f"source log altered at position {pos}; nothing was "
                                     f"copied", pos)
            prev = row["hash"]
            buf.append(row)
            if len(buf) >= BATCH:
                dst.execute(insert(events), buf)
                buf.clear()
        if buf:
            dst.execute(insert(events), buf)
        links, buf = 0, []
        for r in src.execute(select(event_links).order_by(event_links.c.position,
                                                          event_links.c.stream),
                             execution_options={"yield_per": BATCH}):
            buf.append(r._asdict())
            links += 1
            if len(buf) >= BATCH:
                dst.execute(insert(event_links), buf)
                buf.clear()
        if buf:
            dst.execute(insert(event_links), buf)
        projections.rebuild(dst)
    return Head(pos, prev), links


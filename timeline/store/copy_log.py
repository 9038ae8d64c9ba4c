"""Copying a whole log into an empty store, hash chain intact."""
from __future__ import annotations

from typing import Callable, ContextManager

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from timeline.errors import IntegrityError, StoreError
from timeline.log import db as dbmod
from timeline.log.chain import ChainChecker, Head
from timeline.log.schema import events
from timeline.projections import maintain
from timeline.projections.reader import Reader
from timeline.store.locking import write_lock

COPY_BATCH = 5000


def copy_log(engine: Engine, where: str, source_reading: Callable[..., ContextManager[Reader]]
             ) -> tuple[Head, int]:
    """Copy a source's whole log (read through its `reading`), rows as they are, into the
    empty database of `engine`.

    Positions, ids, versions, recorded_at and hashes are kept, so the copy carries the
    same hash chain; the source's chain is checked row by row as it is read, and the
    events, links and rebuilt projections commit in one transaction. Returns the head
    copied and the number of links.
    """
    checker = ChainChecker("source log")
    with source_reading(check=False) as src, \
            dbmod.driver_errors(where), engine.begin() as dst:
        write_lock(dst, where)
        present = dst.execute(select(func.count()).select_from(events)).scalar_one()
        if present:
            raise StoreError(f"{where} already holds {present} events; copy needs "
                             f"an empty target (nothing was written)")
        buf: list[dict] = []
        for row in src.event_rows(COPY_BATCH):
            try:
                checker.check(row)
            except IntegrityError as exc:
                raise IntegrityError(f"{exc}; nothing was copied", exc.position) from None
            buf.append(row)
            if len(buf) >= COPY_BATCH:
                dst.execute(insert(events), buf)
                buf.clear()
        if buf:
            dst.execute(insert(events), buf)
        # the links are recomputed from the copied events: a row the source holds that no
        # event implies never travels (the source's verify names it first)
        _, links = maintain.repair_links(dst)
        maintain.rebuild(dst)
    return checker.head, links

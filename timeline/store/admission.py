"""What a batch must satisfy against the log before it is written.

Ids (a stored id may be offered again only with the same content; a batch may not use one id
for two events), references (measures exist, superseded and resolved events resolve, a
correction stays in its stream), and supersession cycles. Each refusal names the offending
event's file, line and field.
"""
from __future__ import annotations

from typing import Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection

from timeline.log.db import IN_CHUNK, run_sql
from timeline.log.events import (IDENTITY_FIELDS, NewEvent, identity,
                                 identity_differences, reject)
from timeline.log.schema import events
from timeline.log.vocabulary import EVENT_TYPES, SUPERSEDING_TYPES

# the stored columns of IDENTITY_FIELDS, in that order, after the id and position
_CONTENT_COLS = "id, position, " + ", ".join(IDENTITY_FIELDS)


def existing(conn: Connection, ids: list[str]) -> dict[str, tuple]:
    """id -> (position, the stored event's `identity`) for the ids already in the log."""
    found: dict[str, tuple] = {}
    for i in range(0, len(ids), IN_CHUNK):
        part = tuple(ids[i:i + IN_CHUNK])
        for r in run_sql(conn, f"SELECT {_CONTENT_COLS} FROM events WHERE id IN "
                               f"({', '.join('?' * len(part))})", part):
            found[r[0]] = (r[1], tuple(r[2:]))
    return found


def same_as_stored(ev: NewEvent, stored: tuple) -> None:
    """An id already in the log may be offered again only with the same content."""
    position, other = stored
    differs = identity_differences(ev, other, stored=True)
    if differs:
        reject(ev, "id", f"conflict: id {ev.id} is already in the log at position {position} "
                         f"with other content ({', '.join(differs)} differ); an event cannot "
                         f"be changed — append a correction instead. Nothing was written")


def check_batch_ids(offered: Sequence[NewEvent]) -> None:
    """Within one append, an id offered twice must carry the same content both times."""
    first: dict[str | None, NewEvent] = {}
    for ev in offered:
        other = first.setdefault(ev.id, ev)
        if other is ev:
            continue  # identities are worked out only for an id offered twice
        differs = identity_differences(ev, identity(other))
        if differs:
            where = other.origin or "earlier in the batch"
            reject(ev, "id", f"conflict: id {ev.id} is also used at {where} with other "
                             f"content ({', '.join(differs)} differ); give one of them "
                             f"another id (or none). Nothing was written")


def superseded(conn: Connection, ids: list[str], batch: Sequence[NewEvent]) -> dict[str, tuple]:
    """id -> (stream, effective, type) for superseded ids found in the log or the batch."""
    wanted = set(ids)
    out = {e.id: (e.stream, e.effective.isoformat(), e.type) for e in batch if e.id in wanted}
    missing = [i for i in ids if i not in out]
    for i in range(0, len(missing), IN_CHUNK):
        for r in conn.execute(select(events.c.id, events.c.stream, events.c.effective,
                                     events.c.type)
                              .where(events.c.id.in_(missing[i:i + IN_CHUNK]))):
            out[r.id] = (r.stream, r.effective, r.type)
    return out


def check_references(batch: Sequence[NewEvent], rows, sup_rows) -> None:
    """Streams must exist before non-opening events; references must resolve."""
    firsts: dict[str, str] = {}
    for ev in sorted(batch, key=lambda e: e.effective):
        if EVENT_TYPES[ev.type][0]:
            firsts.setdefault(ev.stream, ev.effective.isoformat())
    new_streams = set(firsts)
    for ev in batch:
        mr = rows[ev.stream]
        eff = ev.effective.isoformat()
        start = min(d for d in (mr.first_effective if mr.exists else None,
                                firsts.get(ev.stream)) if d) if (mr.exists or ev.stream in firsts) \
            else None
        if not EVENT_TYPES[ev.type][0]:
            if start is None:
                reject(ev, "stream", f"measure {ev.stream!r} does not exist yet; its first event "
                                    f"must open it (imposed, announced, opened, observed, "
                                    f"meeting, statement or ruling)")
            if eff < start and ev.type not in SUPERSEDING_TYPES:
                reject(ev, "effective", f"{eff} is before measure {ev.stream!r} exists "
                                       f"(its first event is effective {start})")
        affects = list(ev.payload.get("affects", ()))
        if len(set(affects)) != len(affects):  # one link row per measure
            reject(ev, "affects", "names the same measure more than once")
        for s in affects:
            if not rows[s].exists and s not in new_streams:
                reject(ev, "affects", f"unknown measure {s!r}")
        for i in ev.payload.get("supersedes", ()):
            if i not in sup_rows:
                reject(ev, "supersedes", f"unknown event id {i!r}")
            if sup_rows[i][2] == "retraction":
                reject(ev, "supersedes", f"event {i} is itself a retraction; a retraction is "
                                        f"final (append the withdrawn event again instead)")
            if ev.type == "correction" and sup_rows[i][0] != ev.stream:
                reject(ev, "supersedes", f"a correction must be in the stream of the event it "
                                        f"corrects ({sup_rows[i][0]})")


def check_resolved(batch: Sequence[NewEvent], res_rows: dict[str, tuple]) -> None:
    """A settled dispute must be a report already in the log (or the batch), same measure."""
    for ev in batch:
        for i in ev.payload.get("resolves", ()):
            if i not in res_rows:
                reject(ev, "resolves", f"unknown event id {i!r}")
            if res_rows[i][0] != ev.stream:
                reject(ev, "resolves", f"event {i} reports on {res_rows[i][0]}: a resolution "
                                      f"settles disputes of its own measure")


def check_supersession_cycles(batch: Sequence[NewEvent]) -> None:
    """Refuse events that supersede each other, over any number of steps: the fold would
    withdraw them all. Only a batch can hold a cycle (a stored event names older ids)."""
    edges = {e.id: list(e.payload.get("supersedes", ())) for e in batch
             if e.type in SUPERSEDING_TYPES}
    by_id = {e.id: e for e in batch}
    done: set[str | None] = set()
    for start in edges:
        if start in done:
            continue
        # depth-first without recursion (a chain of corrections may be long)
        path, stack = [start], [iter(edges[start])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                done.add(path.pop())
            elif nxt in path:
                cycle = path[path.index(nxt):] + [nxt]
                reject(by_id[cycle[0]], "supersedes",
                      f"supersession cycle: {' -> '.join(cycle)}; events that supersede each "
                      f"other would all be withdrawn. Nothing was written")
            elif nxt in edges and nxt not in done:
                path.append(nxt)
                stack.append(iter(edges[nxt]))

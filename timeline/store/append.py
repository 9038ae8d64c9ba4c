"""The append: a checked batch becomes log rows, links and projections in one transaction.

`append_in` runs inside the writer's transaction (the caller holds the writers' lock and has
checked the projection head): it refuses what the log does not admit (admission.py), extends
the hash chain, writes the events and their links, and brings the projections of every
touched measure up to date. A dry run reports the state changes it would make.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Connection

from timeline.errors import ConcurrencyError
from timeline.log.db import run_sql
from timeline.log.events import SCHEMA_VERSION, CheckedEvent, Event, chain_hash, loads
from timeline.log.vocabulary import SUPERSEDING_TYPES
from timeline.projections import maintain
from timeline.projections.fold import FoldEvent
from timeline.projections.reader import Reader
from timeline.store.admission import (check_references, check_resolved,
                                      check_supersession_cycles, existing, same_as_stored,
                                      superseded)
from timeline.store.checks import log_head
from timeline.store.results import AppendResult, StateChange

__all__ = ["AppendResult", "StateChange", "append_in", "EVENT_COLS"]

EVENT_COLS = ("position", "id", "stream", "version", "type", "schema_version", "effective",
              "announced", "known", "recorded_at", "payload", "source", "prev_hash", "hash")
INSERT_EVENT = (f"INSERT INTO events ({', '.join(EVENT_COLS)}) "
                f"VALUES ({', '.join('?' * len(EVENT_COLS))})")


def histories(conn: Connection, streams: list[str]) -> dict[str, list[tuple[str, dict]]]:
    r = Reader(conn)
    return {s: [(row.valid_from, row.state) for row in r.history(s)] for s in streams}


def changes(before: dict, after: dict) -> list[StateChange]:
    """Per measure, each date whose state differs, and the fields that differ there."""
    out = []
    for stream in sorted(after):
        old, new = dict(before.get(stream, ())), dict(after[stream])
        diffs = []
        for day in sorted(set(old) | set(new)):
            a, b = _in_force(before.get(stream, ()), day), _in_force(after[stream], day)
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name) and name != "scheduled":
                    diffs.append((day, name, a.get(name), b.get(name)))
        if diffs or not old:
            out.append(StateChange(stream, not old, diffs))
    return out


def _in_force(intervals, day: str) -> dict:
    state = {}
    for start, st in intervals:
        if start <= day:
            state = st
    return state


def append_in(conn: Connection, offered: list[CheckedEvent], expected: dict[str, int],
              dry_run: bool = False) -> AppendResult:
    """Append admitted events (ids assigned) inside the writer's transaction on `conn`: the
    stored payload and source are the JSON text admission checked."""
    present = existing(conn, [e.id for e in offered])  # type: ignore[misc]  # ids given
    batch, seen = [], set()
    for ev in offered:
        if ev.id in present:
            same_as_stored(ev, present[ev.id])
            continue
        if ev.id in seen:
            continue
        seen.add(ev.id)
        batch.append(ev)
    skipped = len(offered) - len(batch)
    own_streams = {e.stream for e in batch}
    referenced = {s for e in batch for s in e.payload.get("affects", ())}
    sup_ids = [i for e in batch if e.type in SUPERSEDING_TYPES for i in e.payload["supersedes"]]
    sup_rows = superseded(conn, sup_ids, batch)
    res_rows = superseded(conn, [i for e in batch for i in e.payload.get("resolves", ())], batch)
    rows = maintain.load_measures(
        conn, own_streams | referenced | {r[0] for r in sup_rows.values()} | set(expected))
    for stream, want in expected.items():
        if rows[stream].version != want:
            raise ConcurrencyError(stream, want, rows[stream].version)
    if not batch:
        return AppendResult([], skipped, dry_run=dry_run)
    check_references(batch, rows, sup_rows)
    check_resolved(batch, res_rows)
    check_supersession_cycles(batch)
    touched = sorted(own_streams | referenced | {r[0] for r in sup_rows.values()})
    before = histories(conn, touched) if dry_run else {}

    head = log_head(conn)
    now = dt.datetime.now(dt.timezone.utc)
    recorded_at = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    today = now.date().isoformat()
    prev, pos = head.hash, head.position
    ev_rows, link_rows, fold_events = [], [], []
    reach: dict[str, list[FoldEvent]] = {}
    for ev in batch:
        pos += 1
        mr = rows[ev.stream]
        mr.version += 1
        if (mr.title is None and not mr.exists) or ev.type == "retitled":
            mr.title = ev.payload["title"]
        eff = ev.effective.isoformat()
        if ev.type != "retraction" and (mr.first_effective is None or eff < mr.first_effective):
            mr.first_effective = eff
        row = {
            "position": pos, "id": ev.id, "stream": ev.stream, "version": mr.version,
            "type": ev.type, "schema_version": SCHEMA_VERSION, "effective": eff,
            "announced": ev.announced.isoformat() if ev.announced else None,
            "known": ev.known.isoformat() if ev.known else today,
            "recorded_at": recorded_at,
            "payload": ev.payload_json, "source": ev.source_json,
        }
        row["prev_hash"] = prev
        row["hash"] = prev = chain_hash(prev, row)
        ev_rows.append(row)
        for s in ev.payload.get("affects", ()):
            link_rows.append((s, pos, "affects"))
        for s in sorted({sup_rows[i][0] for i in ev.payload.get("supersedes", ())}
                        - {ev.stream}):
            link_rows.append((s, pos, "supersedes"))
        # checked events: ids assigned, `known` a date's text, payload and source dicts
        fold_events.append(FoldEvent(pos, ev.id, ev.stream,  # type: ignore[arg-type]
                                     ev.type, eff, row["known"],  # type: ignore[arg-type]
                                     ev.payload, ev.source))  # type: ignore[arg-type]
        for s in {sup_rows[i][0] for i in ev.payload.get("supersedes", ())} - {ev.stream}:
            reach.setdefault(s, []).append(fold_events[-1])
    tuples = [tuple(r[c] for c in EVENT_COLS) for r in ev_rows]
    run_sql(conn, INSERT_EVENT, tuples)
    if link_rows:
        run_sql(conn, "INSERT INTO event_links (stream, position, role) VALUES (?, ?, ?)",
                link_rows)
    withdrawn: dict[str, list[str]] = {}
    for i in sup_ids:
        stream, eff, _ = sup_rows[i]
        withdrawn.setdefault(stream, []).append(eff)
    maintain.apply_batch(conn, fold_events, rows, withdrawn, reach)
    maintain.record_head(conn, pos, prev)
    diffs = changes(before, histories(conn, touched)) if dry_run else []
    # EVENT_COLS is Event's field order: positional construction, no dict per event
    # (a checker sees the row tuple's element union, not the columns' types)
    return AppendResult([Event(*t[:10], loads(t[10]),  # type: ignore[arg-type, call-arg]
                               loads(t[11]), t[12], t[13])  # type: ignore[arg-type]
                         for t in tuples], skipped, diffs, dry_run)

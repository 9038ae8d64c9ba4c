"""Projection maintenance: keeps `intervals` and `measures` equal to a fold of the log.

Called by the store inside the append transaction (so readers never see the log ahead of
its projections) and by `rebuild`. Both paths write through `_write_stream`, and a test
dumps both to prove they produce byte-identical tables.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.engine import Connection

from .events import SUPERSEDING_TYPES, canonical_json
from .fold import FoldEvent, Interval, fold, superseded_ids
from .schema import event_links, events, intervals, measures

CHUNK = 500
_EVENT_COLS = "e.position, e.id, e.stream, e.type, e.effective, e.known, e.payload, e.source"


@dataclass(slots=True)
class MeasureRow:
    """The catalogue row of a stream, as the maintainer tracks it."""

    stream: str
    version: int = 0
    title: str | None = None
    first_effective: str | None = None
    tail_date: str | None = None
    tail_state: dict | None = None
    pending: int = 0
    exists: bool = False
    derived: dict = field(default_factory=dict)


def load_measures(conn: Connection, streams: Iterable[str]) -> dict[str, MeasureRow]:
    """Catalogue rows for `streams` (missing ones come back as empty rows)."""
    wanted = sorted(set(streams))
    out = {s: MeasureRow(s) for s in wanted}
    m = measures.c
    for i in range(0, len(wanted), CHUNK):
        rows = conn.execute(
            select(m.stream, m.version, m.title, m.first_effective, m.tail_date, m.tail_state,
                   m.pending).where(m.stream.in_(wanted[i:i + CHUNK]))
        )
        for r in rows:
            out[r.stream] = MeasureRow(r.stream, r.version, r.title, r.first_effective,
                                       r.tail_date,
                                       json.loads(r.tail_state) if r.tail_state else None,
                                       r.pending, True)
    return out


def to_fold_event(row) -> FoldEvent:
    """FoldEvent from a row with position, id, stream, type, effective, known, payload, source."""
    src = row.source if isinstance(row.source, dict) else json.loads(row.source)
    payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
    return FoldEvent(row.position, row.id, row.stream, row.type, row.effective, row.known,
                     payload, src.get("name", ""))


def touching_events(conn: Connection, stream: str, *, since: str | None = None,
                    until: str | None = None, known_on: str | None = None) -> list[FoldEvent]:
    """Events that touch `stream` (its own and those linking to it), optionally bounded.

    Retractions and corrections are always included, whatever their dates, because they
    withdraw events regardless of when they take effect.
    """
    conds, params = [], {"s": stream}
    if since is not None:
        conds.append("e.effective >= :since")
        params["since"] = since
    if until is not None:
        conds.append("e.effective <= :until")
        params["until"] = until
    where = ""
    if conds:
        where = " AND (" + " AND ".join(conds) + " OR e.type IN ('retraction', 'correction'))"
    if known_on is not None:
        where += " AND e.known <= :k"
        params["k"] = known_on
    sql = text(
        f"SELECT {_EVENT_COLS} FROM events e WHERE e.stream = :s{where} "
        f"UNION ALL SELECT {_EVENT_COLS} FROM event_links l "
        f"JOIN events e ON e.position = l.position WHERE l.stream = :s{where}"
    )
    return [to_fold_event(r) for r in conn.execute(sql, params)]


def _derive(stream: str, state: dict | None) -> dict:
    state = state or {}
    parts = stream.split(".")
    kind = state.get("kind") or (parts[1] if len(parts) > 2 and parts[0] in ("us", "cn")
                                 else parts[0])
    return {"kind": kind, "imposer": state.get("imposer"), "target": state.get("target"),
            "scope": state.get("scope")}


def _interval_rows(ivs: list[Interval]) -> list[dict]:
    return [{
        "stream": iv.stream, "valid_from": iv.valid_from, "valid_to": iv.valid_to,
        "rate": iv.state.get("rate") if isinstance(iv.state.get("rate"), (int, float)) else None,
        "status": iv.state.get("status"), "legal_status": iv.state.get("legal_status"),
        "state": canonical_json(iv.state), "event_ids": canonical_json(iv.event_ids),
    } for iv in ivs]


def _measure_row(mr: MeasureRow) -> dict:
    d = _derive(mr.stream, mr.tail_state)
    return {
        "stream": mr.stream, "kind": d["kind"], "imposer": d["imposer"], "target": d["target"],
        "scope": d["scope"], "title": mr.title, "version": mr.version,
        "first_effective": mr.first_effective, "tail_date": mr.tail_date,
        "tail_state": canonical_json(mr.tail_state) if mr.tail_state is not None else None,
        "pending": mr.pending,
    }


def apply_batch(conn: Connection, new: list[FoldEvent], rows: dict[str, MeasureRow],
                superseded_effective: dict[str, list[str]]) -> None:
    """Bring the projections of every stream the batch touches up to date.

    `rows` are the streams' catalogue rows with version/title/first_effective already
    advanced by the store; `superseded_effective` maps a stream to the effective dates of
    events that this batch withdraws from it.
    """
    by_stream: dict[str, list[FoldEvent]] = {}
    for ev in new:
        by_stream.setdefault(ev.stream, []).append(ev)
        for other in ev.payload.get("affects", ()):
            by_stream.setdefault(other, []).append(ev)
    for s in superseded_effective:
        by_stream.setdefault(s, [])

    fast_updates, fast_inserts, fast_deletes = [], [], []
    for stream, evs in by_stream.items():
        mr = rows[stream]
        own_dates = [e.effective for e in evs if e.type != "retraction"]
        withdrawn = superseded_effective.get(stream, [])
        d0 = min(own_dates + withdrawn) if (own_dates or withdrawn) else None
        if d0 is None:
            continue
        simple = not withdrawn and not any(e.type in SUPERSEDING_TYPES for e in evs)
        brand_new = not mr.exists
        if simple and (brand_new or (mr.tail_date is not None and d0 > mr.tail_date)):
            # appended at the end of valid time: fold on from the stored tail, no reads
            res = fold(stream, evs, start_state=mr.tail_state)
            if mr.pending:
                fast_deletes.append({"s": stream, "d": mr.tail_date})
            if not brand_new:
                fast_updates.append({"s": stream, "d": mr.tail_date,
                                     "to": res.intervals[0].valid_from})
            fast_inserts.extend(res.intervals)
            mr.tail_date, mr.tail_state = res.tail_date, res.tail_state
            mr.pending = sum(1 for iv in res.intervals if iv.valid_from > res.tail_date)
        else:
            _refold_from(conn, stream, d0, max(own_dates + withdrawn), mr)
    i = intervals.c
    if fast_deletes:
        conn.execute(delete(intervals).where(i.stream == bindparam("s"),
                                             i.valid_from > bindparam("d")), fast_deletes)
    if fast_updates:
        conn.execute(update(intervals).where(i.stream == bindparam("s"),
                                             i.valid_from == bindparam("d"))
                     .values(valid_to=bindparam("to")), fast_updates)
    if fast_inserts:
        conn.execute(insert(intervals), _interval_rows(fast_inserts))
    _save_measures(conn, [rows[s] for s in by_stream])


def _save_measures(conn: Connection, mrs: list[MeasureRow]) -> None:
    fresh = [_measure_row(m) for m in mrs if not m.exists]
    known = [_measure_row(m) for m in mrs if m.exists]
    if fresh:
        conn.execute(insert(measures), fresh)
    if known:
        m = measures.c
        cols = [c for c in known[0] if c != "stream"]
        conn.execute(
            update(measures).where(m.stream == bindparam("b_stream"))
            .values({c: bindparam("v_" + c) for c in cols}),
            [{"b_stream": r["stream"], **{"v_" + c: r[c] for c in cols}} for r in known],
        )
    for mr in mrs:
        mr.exists = True


def _refold_from(conn: Connection, stream: str, d0: str, horizon: str, mr: MeasureRow) -> None:
    """Re-fold one stream from day `d0`, starting from the state in force the day before.

    `horizon` is the latest day any changed event touches; past it the re-fold stops at the
    first interval equal to the stored one, so a retroactive event rewrites only the
    intervals it actually changes.
    """
    i = intervals.c
    prev = conn.execute(
        select(i.valid_from, i.state).where(i.stream == stream, i.valid_from < d0)
        .order_by(i.valid_from.desc()).limit(1)
    ).first()
    start = json.loads(prev.state) if prev else None
    stored = {r.valid_from: (r.state, r.event_ids) for r in conn.execute(
        select(i.valid_from, i.state, i.event_ids).where(i.stream == stream, i.valid_from >= d0))}

    def same_as_stored(day: str, state: dict, ids: list[str]) -> bool:
        row = stored.get(day)
        return row is not None and row[1] == canonical_json(ids) and \
            row[0] == canonical_json(state)

    touching = touching_events(conn, stream, since=d0)
    excluded = superseded_ids(touching)
    later = [e for e in touching if e.effective >= d0]
    res = fold(stream, later, start_state=start, excluded=excluded,
               converge=same_as_stored, converge_after=horizon)
    stop = res.converged_at
    gone = delete(intervals).where(i.stream == stream, i.valid_from >= d0)
    conn.execute(gone.where(i.valid_from < stop) if stop else gone)
    if prev is not None:
        first = res.intervals[0].valid_from if res.intervals else stop
        conn.execute(update(intervals).where(i.stream == stream, i.valid_from == prev.valid_from)
                     .values(valid_to=first))
    if res.intervals:
        conn.execute(insert(intervals), _interval_rows(res.intervals))
    if stop and mr.tail_date is not None and mr.tail_date >= stop:
        pass  # the stored tail lies in the unchanged part
    elif res.tail_date is not None:
        mr.tail_date, mr.tail_state = res.tail_date, res.tail_state
    else:
        mr.tail_date = _last_event_day(conn, stream, d0, excluded)
        mr.tail_state = None
        if mr.tail_date is not None:
            mr.tail_state = json.loads(conn.execute(
                select(i.state).where(i.stream == stream, i.valid_from == mr.tail_date)
            ).scalar_one())
    mr.pending = conn.execute(
        text("SELECT COUNT(*) FROM intervals WHERE stream = :s AND valid_from > :d"),
        {"s": stream, "d": mr.tail_date},
    ).scalar_one() if mr.tail_date else 0


def _last_event_day(conn: Connection, stream: str, before: str, excluded: set[str]) -> str | None:
    rows = conn.execute(text(
        "SELECT e.id, e.effective FROM events e WHERE e.stream = :s AND e.effective < :d "
        "AND e.type != 'retraction' UNION ALL SELECT e.id, e.effective FROM event_links l "
        "JOIN events e ON e.position = l.position WHERE l.stream = :s AND l.role = 'affects' "
        "AND e.effective < :d ORDER BY 2 DESC"), {"s": stream, "d": before})
    for r in rows:
        if r.id not in excluded:
            return r.effective
    return None


def _all_touching(conn: Connection) -> Iterator[tuple[str, list[FoldEvent]]]:
    """Every stream with the events touching it, streamed in stream order."""
    sql = text(
        f"SELECT e.stream AS k, {_EVENT_COLS} FROM events e UNION ALL "
        f"SELECT l.stream AS k, {_EVENT_COLS} FROM event_links l "
        f"JOIN events e ON e.position = l.position ORDER BY 1"
    )
    current, batch = None, []
    # per-statement options: conn.execution_options() would switch every later statement
    # on this connection (the inserts too) to server-side cursors on PostgreSQL
    for r in conn.execute(sql, execution_options={"stream_results": True, "yield_per": 5000}):
        if r.k != current:
            if current is not None:
                yield current, batch
            current, batch = r.k, []
        batch.append(to_fold_event(r))
    if current is not None:
        yield current, batch


def rebuild(conn: Connection, progress: Callable[[int, int], None] | None = None) -> int:
    """Drop and recompute every projection row from the log; returns the number of streams."""
    conn.execute(delete(intervals))
    conn.execute(delete(measures))
    total = conn.execute(text("SELECT COUNT(*) FROM events")).scalar_one()
    done, streams = 0, 0
    iv_buf, m_buf = [], []
    for stream, evs in _all_touching(conn):
        own = [e for e in evs if e.stream == stream]
        res = fold(stream, evs, excluded=superseded_ids(evs))
        non_retraction = [e.effective for e in own if e.type != "retraction"]
        mr = MeasureRow(
            stream, version=len(own),
            title=min(own, key=lambda e: e.position).payload.get("title") if own else None,
            first_effective=min(non_retraction) if non_retraction else None,
            tail_date=res.tail_date, tail_state=res.tail_state,
        )
        mr.pending = sum(1 for iv in res.intervals
                         if res.tail_date is not None and iv.valid_from > res.tail_date)
        iv_buf.extend(_interval_rows(res.intervals))
        m_buf.append(_measure_row(mr))
        done += len(own)
        streams += 1
        if len(iv_buf) >= 5000:
            conn.execute(insert(intervals), iv_buf)
            iv_buf.clear()
            if progress:
                progress(done, total)
        if len(m_buf) >= 5000:
            conn.execute(insert(measures), m_buf)
            m_buf.clear()
    if iv_buf:
        conn.execute(insert(intervals), iv_buf)
    if m_buf:
        conn.execute(insert(measures), m_buf)
    if progress:
        progress(total, total)
    return streams

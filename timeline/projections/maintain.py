"""Projection maintenance: keeps `intervals` and `measures` equal to a fold of the log.

Called by the store inside the append transaction (so readers never see the log ahead of
its projections) and by `rebuild`. Both paths write through `_write_stream`, and a test
dumps both to prove they produce byte-identical tables.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import msgspec
from sqlalchemy import delete, text
from sqlalchemy.engine import Connection

from timeline.log.db import IN_CHUNK, TRACE, run_sql
from timeline.log.events import (GENESIS_HASH, canonical_json, canonical_json_plain,
                                 loads, plain_float)
from timeline.log.vocabulary import SUPERSEDING_TYPES
from timeline.projections.fold import FoldEvent, Interval, fold, order_key, superseded_ids
from timeline.projections.head import FOLD_VERSION, recorded_head
from timeline.projections.touching import FOLD_EVENT_COLS as _EVENT_COLS
from timeline.projections.touching import touching_events
from timeline.projections.knowledge import (KNOWN_COLS, epoch_changes, holding_before,
                                            known_fold, known_rows, window_bounds)
from timeline.log.schema import known_intervals

INTERVAL_COLS = ("stream", "valid_from", "valid_to", "rate", "status", "legal_status", "state",
                 "event_ids")
MEASURE_COLS = ("stream", "kind", "imposer", "target", "scope", "title", "version",
                "first_effective", "tail_date", "tail_state", "pending", "known_through")


def _marks(n: int) -> str:
    return ", ".join("?" * n)


INSERT_INTERVAL = f"INSERT INTO intervals ({', '.join(INTERVAL_COLS)}) VALUES ({_marks(8)})"
INSERT_MEASURE = f"INSERT INTO measures ({', '.join(MEASURE_COLS)}) VALUES ({_marks(12)})"
INSERT_KNOWN = f"INSERT INTO known_intervals ({', '.join(KNOWN_COLS)}) VALUES ({_marks(6)})"
UPDATE_MEASURE = ("UPDATE measures SET " + ", ".join(f"{c} = ?" for c in MEASURE_COLS[1:])
                  + " WHERE stream = ?")


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
    known_through: str | None = None
    exists: bool = False
    derived: dict = field(default_factory=dict)


def load_measures(conn: Connection, streams: Iterable[str]) -> dict[str, MeasureRow]:
    """Catalogue rows for `streams` (missing ones come back as empty rows)."""
    wanted = sorted(set(streams))
    out = {s: MeasureRow(s) for s in wanted}
    for i in range(0, len(wanted), IN_CHUNK):
        part = wanted[i:i + IN_CHUNK]
        rows = run_sql(conn, "SELECT stream, version, title, first_effective, tail_date, "
                             f"tail_state, pending, known_through FROM measures WHERE stream IN "
                             f"({_marks(len(part))})", tuple(part))
        for r in rows:
            out[r[0]] = MeasureRow(r[0], r[1], r[2], r[3], r[4],
                                   loads(r[5]) if r[5] else None, r[6], r[7], True)
    return out


def _derive(stream: str, state: dict | None) -> dict:
    state = state or {}
    parts = stream.split(".")
    kind = state.get("kind") or (parts[1] if len(parts) > 2 and parts[0] in ("us", "cn")
                                 else parts[0])
    return {"kind": kind, "imposer": state.get("imposer"), "target": state.get("target"),
            "scope": state.get("scope")}


def _interval_rows(ivs: list[Interval], memo: dict | None = None) -> list[tuple]:
    """Rows for INSERT_INTERVAL; `memo` collects id(state) -> JSON so the catalogue row can
    reuse the tail state's serialisation instead of encoding it a second time."""
    out = []
    for iv in ivs:
        text_ = canonical_json(iv.state)
        if memo is not None:
            memo[id(iv.state)] = text_
        out.append(_interval_row(iv.stream, iv.valid_from, iv.valid_to, iv.state, text_,
                                 canonical_json(iv.event_ids)))
    return out


def _interval_row(stream: str, valid_from: str, valid_to: str | None, state: dict,
                  state_json: str, ids_json: str) -> tuple:
    rate = state.get("rate")
    return (stream, valid_from, valid_to,
            rate if isinstance(rate, (int, float)) and not isinstance(rate, bool) else None,
            state.get("status"), state.get("legal_status"), state_json, ids_json)


def _measure_row(mr: MeasureRow, memo: dict | None = None) -> tuple:
    d = _derive(mr.stream, mr.tail_state)
    tail = None
    if mr.tail_state is not None:
        tail = (memo or {}).get(id(mr.tail_state)) or canonical_json(mr.tail_state)
    return (mr.stream, d["kind"], d["imposer"], d["target"], d["scope"], mr.title, mr.version,
            mr.first_effective, mr.tail_date, tail, mr.pending, mr.known_through)


def apply_batch(conn: Connection, new: list[FoldEvent], rows: dict[str, MeasureRow],
                superseded_effective: dict[str, list[str]],
                reach: dict[str, list[FoldEvent]] | None = None) -> None:
    """Bring the projections of every stream the batch touches up to date.

    `rows` are the streams' catalogue rows with version/title/first_effective already
    advanced by the store; `superseded_effective` maps a stream to the effective dates of
    events that this batch withdraws from it, `reach` to the batch's retractions and
    corrections that withdraw them (they are events touching it, for its knowledge rows).
    """
    by_stream: dict[str, list[FoldEvent]] = {}
    for ev in new:
        by_stream.setdefault(ev.stream, []).append(ev)
        for other in ev.payload.get("affects", ()):
            by_stream.setdefault(other, []).append(ev)
    for s in superseded_effective:
        by_stream.setdefault(s, [])
    touching = {s: evs + [e for e in (reach or {}).get(s, ()) if e not in evs]
                for s, evs in by_stream.items()}

    iw = IntervalWrites()
    fast_inserts: list[Interval] = []
    # stream -> (known day, or valid_from -> known day when several epochs, tail, pending)
    extended: dict[str, tuple[str | dict[str, str], str | None, int]] = {}
    windowed: list[tuple] = []  # (stream, old tail, its state, pending): later knowledge only
    recomputed: list[tuple[str, bool]] = []
    for stream, evs in by_stream.items():
        mr = rows[stream]
        own_dates = [e.effective for e in evs if e.type != "retraction"]
        withdrawn = superseded_effective.get(stream, [])
        d0 = min(own_dates + withdrawn) if (own_dates or withdrawn) else None
        days = epoch_changes(touching[stream])
        if d0 is None:  # retractions of other streams' events: new knowledge, no new rows
            mr.known_through = max([mr.known_through or "", *days])
            continue
        simple = not withdrawn and not any(e.type in SUPERSEDING_TYPES for e in evs)
        brand_new = not mr.exists
        if simple and (brand_new or (mr.tail_date is not None and d0 > mr.tail_date)):
            # appended at the end of valid time: fold on from the stored tail, no reads
            res = fold(stream, evs, start_state=mr.tail_state)
            pending = 0 if brand_new else mr.pending
            if mr.known_through is not None and min(days) <= mr.known_through:
                recomputed.append((stream, brand_new))
            elif len(days) == 1:  # one new epoch: its rows are the new intervals
                extended[stream] = (min(days), mr.tail_date, pending)
                mr.known_through = min(days)
            else:
                # several epochs: when knowledge follows valid time, the same fold gives
                # every epoch's rows (one fold per stream, not one per epoch)
                by_day = None if pending else _known_by_day(evs, res.intervals)
                if by_day is not None:
                    extended[stream] = (by_day, mr.tail_date, 0)
                else:
                    windowed.append((stream, mr.tail_date, mr.tail_state, pending))
                mr.known_through = max(days)
            if mr.pending:
                iw.after.append((stream, mr.tail_date))
            if not brand_new:
                iw.closes.append((res.intervals[0].valid_from, stream, mr.tail_date))
            fast_inserts.extend(res.intervals)
            mr.tail_date, mr.tail_state = res.tail_date, res.tail_state
            # a fold of new events has a tail
            mr.pending = sum(1 for iv in res.intervals  # type: ignore[misc]
                             if iv.valid_from > res.tail_date)  # type: ignore[operator]  # folded
        else:
            recomputed.append((stream, brand_new))
            _refold_from(conn, iw, stream, d0, max(own_dates + withdrawn), mr)
    kw = KnownWrites()
    for stream, brand_new in recomputed:
        _recompute_known(conn, kw, stream, touching[stream], brand_new, rows[stream])
    for stream, tail, tail_state, pending in windowed:
        _later_known(conn, kw, stream, touching[stream], tail, tail_state, pending)
    memo: dict[int, str] = {}
    if fast_inserts:
        iv_rows = _interval_rows(fast_inserts, memo)
        iw.added.extend(iv_rows)
        _extend_known(conn, kw, extended, iv_rows)
    iw.flush(conn)
    kw.flush(conn)
    _save_measures(conn, [rows[s] for s in by_stream], memo)


@dataclass(slots=True)
class IntervalWrites:
    """The batch's changes to `intervals`, written together at its end: a statement per
    re-folded stream cost a round trip each on PostgreSQL (three for each stream a
    retroactive event reaches). Each stream is written once a batch, and what the batch
    reads of `intervals` afterwards lies before the rows it changes (the day before a
    re-fold, a tail before it), so no read of the batch needs a buffered change."""

    after: list = field(default_factory=list)    # (stream, day): rows after the day go
    spans: list = field(default_factory=list)    # (stream, from, to): rows in [from, to) go
    froms: list = field(default_factory=list)    # (stream, from): rows from the day on go
    closes: list = field(default_factory=list)   # (valid_to, stream, valid_from)
    added: list = field(default_factory=list)    # INTERVAL_COLS rows

    def flush(self, conn: Connection) -> None:
        """Delete, close, then insert (an interval deleted may come back re-folded)."""
        for sql, params in (
                ("DELETE FROM intervals WHERE stream = ? AND valid_from > ?", self.after),
                ("DELETE FROM intervals WHERE stream = ? AND valid_from >= ? AND "
                 "valid_from < ?", self.spans),
                ("DELETE FROM intervals WHERE stream = ? AND valid_from >= ?", self.froms),
                ("UPDATE intervals SET valid_to = ? WHERE stream = ? AND valid_from = ?",
                 self.closes),
                (INSERT_INTERVAL, self.added)):
            if params:
                run_sql(conn, sql, params)


@dataclass(slots=True)
class KnownWrites:
    """The batch's changes to `known_intervals`, written together at its end (a statement
    per stream cost a round trip each on PostgreSQL). Each stream is written once a batch,
    so no read of the batch sees a buffered change."""

    gone: list = field(default_factory=list)     # (stream, valid_from, known_from)
    closes: list = field(default_factory=list)   # (known_to, stream, valid_from)
    added: list = field(default_factory=list)    # KNOWN_COLS rows

    def flush(self, conn: Connection) -> None:
        """Delete, close, then insert (a deleted key may come back with new content)."""
        if self.gone:
            run_sql(conn, "DELETE FROM known_intervals WHERE stream = ? AND valid_from = ? "
                          "AND known_from = ?", self.gone)
        if self.closes:
            run_sql(conn, "UPDATE known_intervals SET known_to = ? WHERE stream = ? AND "
                          "valid_from = ? AND known_to IS NULL", self.closes)
        if self.added:
            run_sql(conn, INSERT_KNOWN, self.added)


def _later_known(conn: Connection, kw: KnownWrites, stream: str, new: list[FoldEvent],
                 tail: str | None, tail_state: dict | None, pending: int) -> None:
    """Knowledge rows for events after the stream's tail that became known after all
    earlier ones, over several epochs: the window is what follows the old tail (the
    scheduled changes still open), folded epoch by epoch from the tail's state."""
    stored = [] if not pending or tail is None else run_sql(
        conn, f"SELECT {', '.join(KNOWN_COLS)} FROM known_intervals WHERE stream = ? AND "
              f"known_to IS NULL AND valid_from > ?", (stream, tail)).all()
    window = {r[1]: [r[2], loads(r[4]), r[4], r[5]] for r in stored}
    rows, _ = known_fold(stream, new, since=min(epoch_changes(new)), start_state=tail_state,
                         window=window)
    _write_known(kw, stream, stored, rows)


def _known_by_day(evs: list[FoldEvent], ivs: list[Interval]) -> dict[str, str] | None:
    """The knowledge day of each interval of `ivs` (the fold of `evs` from a tail with
    nothing scheduled) when each epoch's `known on` fold is a prefix of that fold; else None.

    It is when knowledge follows valid time: the events of a day share their knowledge day,
    later days never became known earlier, no day is known only within a range, and
    nothing is scheduled at the end of an epoch (a `known on` fold would go on past the
    epoch's last day, where a later epoch's events may change what comes). The fold is
    causal in valid time, so each epoch's fold then equals this one up to its last day.
    """
    known: dict[str, str] = {}
    for e in evs:
        if "known_between" in e.payload or known.setdefault(e.effective, e.known) != e.known:
            return None
    out: dict[str, str] = {}
    k, last = None, None
    for iv in ivs:
        day = known.get(iv.valid_from)
        if day is not None and day != k:
            if k is not None and (day < k or (last is not None and last.get("scheduled"))):
                return None
            k = day
        if k is None:  # an interval before the first event: the tail's schedule
            return None
        out[iv.valid_from] = k
        if day is not None:
            last = iv.state
    return out


def _extend_known(conn: Connection, kw: KnownWrites, extended: dict,
                  iv_rows: list[tuple]) -> None:
    """Knowledge rows for streams whose new intervals all start after their old tail and
    whose new events became known after all earlier ones: open a row per new interval; an
    old open row after the tail (a scheduled change) goes on when equal, else closes."""
    inserts, closes = [], []
    olds: dict[str, dict[str, tuple]] = {}
    for stream, (_k, tail, pending) in extended.items():
        if pending and tail is not None:
            olds[stream] = {r[0]: (r[1], r[2]) for r in run_sql(
                conn, "SELECT valid_from, state, event_ids FROM known_intervals WHERE "
                      "stream = ? AND known_to IS NULL AND valid_from > ?", (stream, tail))}
    for r in iv_rows:
        plan = extended.get(r[0])
        if plan is None:
            continue
        k = plan[0] if isinstance(plan[0], str) else plan[0][r[1]]
        old = olds.get(r[0], {}).pop(r[1], None)
        if old == (r[6], r[7]):
            continue
        if old is not None:
            closes.append((k, r[0], r[1]))
        inserts.append((r[0], r[1], k, None, r[6], r[7]))
    closes += [(extended[s][0], s, vf) for s, rest in olds.items() for vf in rest]
    kw.closes += closes
    kw.added += inserts


def _recompute_known(conn: Connection, kw: KnownWrites, stream: str, new: list[FoldEvent],
                     brand_new: bool, mr: MeasureRow) -> None:
    """Recompute a stream's knowledge rows where the new events' knowledge can reach them
    (`knowledge.window_bounds`), or whole when that cannot be bounded, and write only the
    rows that differ from the stored ones."""
    if brand_new:  # every event touching it is in the batch
        _write_known(kw, stream, [], known_rows(stream, new))
        mr.known_through = max(epoch_changes(new), default=None)
        return
    days = epoch_changes(new)
    since = min(days, default=None)
    later = [] if since is None else touching_events(conn, stream, known_from=since)
    bounds = window_bounds(new, later)
    if bounds is None:
        evs = touching_events(conn, stream)
        stored = run_sql(conn, f"SELECT {', '.join(KNOWN_COLS)} FROM known_intervals "
                               f"WHERE stream = ?", (stream,)).all()
        _write_known(kw, stream, stored, known_rows(stream, evs))
        mr.known_through = max(epoch_changes(evs), default=None)
        return
    since, first = bounds
    region = run_sql(conn, f"SELECT {', '.join(KNOWN_COLS)} FROM known_intervals WHERE "
                           f"stream = ? AND valid_from >= ? AND (known_to IS NULL OR "
                           f"known_to >= ?)", (stream, first, since)).all()
    start = run_sql(conn, "SELECT state FROM known_intervals WHERE stream = ? AND "
                          "valid_from < ? AND known_from < ? AND (known_to IS NULL OR "
                          "known_to >= ?) ORDER BY valid_from DESC LIMIT 1",
                    (stream, first, since, since)).first()
    window = {r[1]: [r[2], loads(r[4]), r[4], r[5]] for r in holding_before(region, since)}
    rows, _ = known_fold(stream, touching_events(conn, stream, since=first), since=since,
                         start_state=loads(start[0]) if start else None, window=window,
                         excluded=superseded_ids([e for e in later if e.known < since]))
    _write_known(kw, stream, region, rows)
    mr.known_through = max([mr.known_through or "", *days])


def _write_known(kw: KnownWrites, stream: str, stored: list, wanted: list[tuple]) -> None:
    """Replace the `stored` knowledge rows of `stream` by `wanted`, writing only changes."""
    want = {(r[1], r[2]): r for r in wanted}
    have = {(r[1], r[2]): tuple(r) for r in stored}
    kw.gone += [(stream, *key) for key, row in have.items() if want.get(key) != row]
    kw.added += [row for key, row in want.items() if have.get(key) != row]


def _save_measures(conn: Connection, mrs: list[MeasureRow], memo: dict | None = None) -> None:
    fresh = [_measure_row(m, memo) for m in mrs if not m.exists]
    known = [_measure_row(m, memo) for m in mrs if m.exists]
    if fresh:
        run_sql(conn, INSERT_MEASURE, fresh)
    if known:
        run_sql(conn, UPDATE_MEASURE, [r[1:] + (r[0],) for r in known])
    for mr in mrs:
        mr.exists = True


def _refold_from(conn: Connection, iw: IntervalWrites, stream: str, d0: str, horizon: str,
                 mr: MeasureRow) -> None:
    """Re-fold one stream from day `d0`, starting from the state in force the day before;
    its writes go to `iw`, written at the end of the batch.

    `horizon` is the latest day any changed event touches; past it the re-fold stops at the
    first interval equal to the stored one, so a retroactive event rewrites only the
    intervals it actually changes.
    """
    # the interval in force the day before d0 and every stored interval from d0 on, in one read
    rows = run_sql(conn, "SELECT valid_from, state, event_ids FROM intervals WHERE stream = ? "
                         "AND valid_from >= coalesce((SELECT max(valid_from) FROM intervals "
                         "WHERE stream = ? AND valid_from < ?), ?) ORDER BY valid_from",
                   (stream, stream, d0, d0)).all()
    prev = rows[0] if rows and rows[0][0] < d0 else None
    start = loads(prev[1]) if prev else None
    stored = {r[0]: (r[1], r[2]) for r in rows if r[0] >= d0}

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
    if stop:
        iw.spans.append((stream, d0, stop))
    else:
        iw.froms.append((stream, d0))
    if prev is not None:
        first = res.intervals[0].valid_from if res.intervals else stop
        iw.closes.append((first, stream, prev[0]))
    if res.intervals:
        iw.added.extend(_interval_rows(res.intervals))
    if stop and mr.tail_date is not None and mr.tail_date >= stop:
        pass  # the stored tail lies in the unchanged part
    elif res.tail_date is not None:
        mr.tail_date, mr.tail_state = res.tail_date, res.tail_state
    else:
        mr.tail_date = _last_event_day(conn, stream, d0, excluded)
        mr.tail_state = None
        if mr.tail_date is not None:
            mr.tail_state = loads(run_sql(
                conn, "SELECT state FROM intervals WHERE stream = ? AND valid_from = ?",
                (stream, mr.tail_date)).scalar_one())
    # the stream's intervals now: those before d0 (unchanged), the re-folded ones, and the
    # stored ones from the convergence day on
    starts = [r[0] for r in rows if r[0] < d0] + [iv.valid_from for iv in res.intervals] + \
        ([d for d in stored if d >= stop] if stop else [])
    if not mr.tail_date:
        mr.pending = 0
    elif starts and mr.tail_date >= starts[0]:
        mr.pending = sum(1 for d in starts if d > mr.tail_date)
    else:  # the tail lies before what was read: count what follows it, the stored rows
        # before those read (the buffered writes change none of them) and the ones above
        before = rows[0][0] if rows else d0
        mr.pending = run_sql(
            conn, "SELECT COUNT(*) FROM intervals WHERE stream = ? AND valid_from > ? AND "
                  "valid_from < ?", (stream, mr.tail_date, before)).scalar_one() + \
            sum(1 for d in starts if d > mr.tail_date)


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
    for stream, evs, _plain in _scan_streams(conn):
        yield stream, evs


_CHECKED = msgspec.json.Decoder(float_hook=plain_float)


def _scan_streams(conn: Connection) -> Iterator[tuple[str, list[FoldEvent], bool]]:
    """Every stream with the events touching it, streamed in stream order, and whether all
    their payloads are plain: decoded by msgspec with every float one `json` writes without
    an exponent, so that the fold's states and ids (payload values, event ids and names)
    can be written by `canonical_json_plain`."""
    sql = (f"SELECT e.stream AS k, {_EVENT_COLS} FROM events e UNION ALL "
           f"SELECT l.stream AS k, {_EVENT_COLS} FROM event_links l "
           f"JOIN events e ON e.position = l.position ORDER BY 1")
    if conn.dialect.name == "sqlite" and not conn.info.get(TRACE):
        # the driver's cursor reads lazily; Core's Row objects were a fifth of a rebuild
        # (a connection in a transaction has its driver connection)
        rows: Iterable = conn.connection.dbapi_connection.execute(sql)  # type: ignore[union-attr]
    else:
        # per-statement options: conn.execution_options() would switch every later
        # statement on this connection (the inserts too) to server-side cursors
        rows = conn.execute(text(sql), execution_options={"stream_results": True,
                                                          "yield_per": 5000})
    decode = _CHECKED.decode
    batch: list[FoldEvent]
    current, batch, plain = None, [], True
    for k, position, id_, stream, type_, effective, known, payload, source in rows:
        if k != current:
            if current is not None:
                yield current, batch, plain
            current, batch, plain = k, [], True
        if isinstance(payload, dict):
            plain = False
        else:
            try:
                payload = decode(payload)
            except (msgspec.DecodeError, ValueError):
                plain, payload = False, loads(payload)
        batch.append(FoldEvent(position, id_, stream, type_, effective, known, payload, source))
    if current is not None:
        yield current, batch, plain


def record_head(conn: Connection, position: int, hash_: str) -> None:
    """Note, in the projections' own transaction, the log head they now reflect and the
    fold version that made them."""
    run_sql(conn, "UPDATE projection_head SET position = ?, hash = ?, fold_version = ? "
                  "WHERE id = 1", (position, hash_, FOLD_VERSION))


# -- event_links: derived from the chained events, never trusted as stored (issue 24) -------
_LINK_PAYLOADS = ("%\"affects\"%", "%\"supersedes\"%")


def derived_links(conn: Connection) -> set[tuple[str, int, str]]:
    """Every (stream, position, role) link the chained events imply, from their payloads
    alone: what `Store.append` writes (`affects`, and the other streams of the events a
    correction or retraction supersedes)."""
    out: set[tuple[str, int, str]] = set()
    wanted: list[tuple[int, str, list[str]]] = []
    rows = conn.execute(text("SELECT position, stream, payload FROM events WHERE payload LIKE "
                             ":a OR payload LIKE :s ORDER BY position"),
                        {"a": _LINK_PAYLOADS[0], "s": _LINK_PAYLOADS[1]})
    for position, stream, payload in rows:
        try:
            p = payload if isinstance(payload, dict) else loads(payload)
        except ValueError:
            continue  # not JSON: verify names that event on its own
        affects, sup = p.get("affects"), p.get("supersedes")
        for s in affects if isinstance(affects, list) else ():
            if isinstance(s, str):
                out.add((s, position, "affects"))
        if isinstance(sup, list):
            wanted.append((position, stream, [i for i in sup if isinstance(i, str)]))
    ids = sorted({i for _, _, sup in wanted for i in sup})
    stream_of: dict[str, str] = {}
    for i in range(0, len(ids), IN_CHUNK):
        part = ids[i:i + IN_CHUNK]
        stream_of.update(run_sql(conn, f"SELECT id, stream FROM events WHERE id IN "
                                       f"({_marks(len(part))})", tuple(part)).all())
    for position, stream, sup in wanted:
        for s in {stream_of[i] for i in sup if i in stream_of} - {stream}:
            out.add((s, position, "supersedes"))
    return out


def stored_links(conn: Connection) -> set[tuple[str, int, str]]:
    """Every row of event_links as (stream, position, role)."""
    return {tuple(r) for r in conn.execute(text(
        "SELECT stream, position, role FROM event_links"))}


def link_difference(conn: Connection) -> str | None:
    """What event_links holds that no event implies, or lacks that one does; None if equal."""
    want, have = derived_links(conn), stored_links(conn)
    forged, missing = sorted(have - want, key=_by_pos), sorted(want - have, key=_by_pos)
    parts = []
    if forged:
        parts.append(f"{len(forged)} link(s) no event implies (first: {_link(forged[0])})")
    if missing:
        parts.append(f"{len(missing)} link(s) an event implies are missing (first: "
                     f"{_link(missing[0])})")
    return "; ".join(parts) or None


# the link row `l` is implied by the event at its position (the triggers of migration 0011
# say the same: a row they would refuse is what this finds)
_IMPLIED = {
    "sqlite": (
        "EXISTS (SELECT 1 FROM events e WHERE e.position = l.position AND ("
        "(l.role = 'affects' AND EXISTS (SELECT 1 FROM json_each(e.payload, '$.affects') j "
        "WHERE j.value = l.stream)) OR (l.role = 'supersedes' AND l.stream != e.stream AND "
        "EXISTS (SELECT 1 FROM json_each(e.payload, '$.supersedes') j JOIN events s "
        "ON s.id = j.value WHERE s.stream = l.stream))))"),
    "postgresql": (
        "EXISTS (SELECT 1 FROM events e WHERE e.position = l.position AND ("
        "(l.role = 'affects' AND COALESCE((e.payload::jsonb -> 'affects') @> "
        "to_jsonb(l.stream::text), false)) OR (l.role = 'supersedes' AND l.stream <> e.stream "
        "AND EXISTS (SELECT 1 FROM events s WHERE s.stream = l.stream AND "
        "COALESCE((e.payload::jsonb -> 'supersedes') @> to_jsonb(s.id::text), false)))))"),
}


def forged_links(conn: Connection, limit: int = 1) -> list[tuple[str, int, str]]:
    """Link rows no event implies, found by the database itself (verify --quick: no fold)."""
    return [tuple(r) for r in conn.execute(text(
        f"SELECT l.stream, l.position, l.role FROM event_links l WHERE NOT "
        f"{_IMPLIED[conn.dialect.name]} ORDER BY l.position, l.stream LIMIT {int(limit)}"))]


def repair_links(conn: Connection) -> tuple[int, int]:
    """Make event_links exactly the links the events imply (removed, added): rebuild's first
    step, so a forged row never reaches a fold (the triggers let only this happen)."""
    want, have = derived_links(conn), stored_links(conn)
    forged, missing = sorted(have - want, key=_by_pos), sorted(want - have, key=_by_pos)
    if forged:
        run_sql(conn, "DELETE FROM event_links WHERE stream = ? AND position = ? AND role = ?",
                forged)
    if missing:
        run_sql(conn, "INSERT INTO event_links (stream, position, role) VALUES (?, ?, ?)",
                missing)
    return len(forged), len(missing)


def _by_pos(link: tuple[str, int, str]) -> tuple:
    return link[1], link[0], link[2]


def _link(link: tuple[str, int, str]) -> str:
    return f"{link[0]!r} at position {link[1]}, role {link[2]!r}"


def fresh_rows(conn: Connection) -> Iterator[tuple[str, list[tuple], tuple, int, list[tuple]]]:
    """Per stream, in stream order: (stream, interval rows, measure row, own events,
    knowledge rows) exactly as a rebuild writes them: one definition for `rebuild` and
    `verify`'s comparison."""
    for stream, evs, plain in _scan_streams(conn):
        evs.sort(key=order_key)  # as known_fold takes them (then its sort finds them sorted)
        own = [e for e in evs if e.stream == stream]
        changes = epoch_changes(evs)
        # the knowledge fold's last epoch is the plain fold: one pass gives both
        krows, final = known_fold(stream, evs, changes=changes,
                                  encode=canonical_json_plain if plain else canonical_json)
        gone = superseded_ids(evs)
        tail_date = max((e.effective for e in evs if e.type != "retraction" and e.id not in gone),
                        default=None)
        ivs, memo, tail_state, pending = [], {}, None, 0
        last = len(final) - 1
        for i, (day, state, state_json, ids_json) in enumerate(final):
            ivs.append(_interval_row(stream, day, final[i + 1][0] if i < last else None,
                                     state, state_json, ids_json))
            if day == tail_date:
                tail_state, memo[id(state)] = state, state_json
            elif tail_date is not None and day > tail_date:
                pending += 1
        non_retraction = [e.effective for e in own if e.type != "retraction"]
        mr = MeasureRow(
            stream, version=len(own),
            title=catalogue_title(own),
            first_effective=min(non_retraction) if non_retraction else None,
            tail_date=tail_date, tail_state=tail_state,
            known_through=max(changes, default=None), pending=pending,
        )
        yield stream, ivs, _measure_row(mr, memo), len(own), krows


def catalogue_title(own: list[FoldEvent]) -> str | None:
    """A measure's catalogue title: its last `retitled` event's title, else its first
    event's (what the store keeps as events are appended, in log order)."""
    if not own:
        return None
    retitled = [e for e in own if e.type == "retitled"]
    return max(retitled or [min(own, key=lambda e: e.position)],
               key=lambda e: e.position).payload.get("title")


def first_difference(conn: Connection) -> str | None:
    """Where the stored projections first differ from a fresh fold of the log, or None."""
    # a row of any projection for a stream the log does not hold is a finding too
    stored_streams = set(conn.execute(text(
        "SELECT stream FROM measures UNION SELECT stream FROM intervals UNION "
        "SELECT stream FROM known_intervals")).scalars())
    for stream, ivs, mrow, _, krows in fresh_rows(conn):
        stored_streams.discard(stream)
        got = [tuple(r) for r in conn.execute(text(
            f"SELECT {', '.join(INTERVAL_COLS)} FROM intervals WHERE stream = :s "
            f"ORDER BY valid_from"), {"s": stream})]
        for want, have in zip(ivs + [None] * len(got), got + [None] * len(ivs)):
            if want != have:
                day = (want or have)[1]  # type: ignore[index]  # one of them is a row
                field_ = next((c for c, a, b in zip(INTERVAL_COLS, want or (), have or ())
                               if a != b), "the whole interval")
                return (f"measure {stream}, interval from {day}: {field_} is "
                        f"{_show(have, field_)} in the projection, {_show(want, field_)} in a "
                        f"fresh fold of the log")
        have_k = [tuple(r) for r in conn.execute(text(
            f"SELECT {', '.join(KNOWN_COLS)} FROM known_intervals WHERE stream = :s "
            f"ORDER BY valid_from, known_from"), {"s": stream})]
        if have_k != krows:
            row: Any = next(a or b for a, b in zip(krows + [None] * len(have_k),
                                                   have_k + [None] * len(krows)) if a != b)
            return (f"measure {stream}: the `known on` index row of the interval from "
                    f"{row[1]} known from {row[2]} differs from a fresh fold of the log")
        have_m = conn.execute(text(f"SELECT {', '.join(MEASURE_COLS)} FROM measures WHERE "
                                   f"stream = :s"), {"s": stream}).first()
        if have_m is None or tuple(have_m) != mrow:
            field_ = next((c for c, a, b in zip(MEASURE_COLS, mrow, have_m or ()) if a != b),
                          "the row")
            return (f"measure {stream}: its catalogue row ({field_}) differs from a fresh fold "
                    f"of the log")
    if stored_streams:
        return (f"measure {min(stored_streams)} is in the projection but not in the log")
    return None


def _show(row, field_: str) -> str:
    if row is None:
        return "missing"
    return repr(row[INTERVAL_COLS.index(field_)]) if field_ in INTERVAL_COLS else "present"


# what a rebuild writes: each projection table, its columns (the rows `fresh_rows` gives)
# and how many of the first are its key
_REBUILT = (("intervals", INTERVAL_COLS, 2), ("known_intervals", KNOWN_COLS, 3),
            ("measures", MEASURE_COLS, 1))
_REBUILD_BATCH = 5000  # rows of a table buffered before the streams so far are written


def rebuild(conn: Connection, progress: Callable[[int, int], None] | None = None) -> int:
    """Recompute every projection row from the log; returns the number of streams.

    The projections end equal to `fresh_rows`, as if dropped and rewritten, but only the rows
    that differ are written: batch by batch of streams (in stream order), the stored rows of
    those streams are read and compared with the fresh ones, and only changed, missing or
    extra rows are deleted and inserted. Rewriting every row was most of SQLite's share of
    a rebuild; projections that already equal the log are read, not written again. One
    transaction (the caller's), so a rebuild killed half way leaves the old projections."""
    repair_links(conn)  # the links too are recomputed from the events, never trusted
    total = conn.execute(text("SELECT COUNT(*) FROM events")).scalar_one()
    done, streams = 0, 0
    bufs: tuple[list[tuple], list[tuple], list[tuple]] = ([], [], [])
    after: str | None = None  # the last stream written
    for stream, ivs, mrow, n_own, krows in fresh_rows(conn):
        bufs[0].extend(ivs)
        bufs[1].extend(krows)
        bufs[2].append(mrow)
        done += n_own
        streams += 1
        if max(len(b) for b in bufs) >= _REBUILD_BATCH:
            _converge(conn, bufs, after, stream)
            after = stream
            if progress:
                progress(done, total)
    _converge(conn, bufs, after, None)
    head = conn.execute(text("SELECT position, hash FROM events ORDER BY position DESC "
                             "LIMIT 1")).first()
    record_head(conn, *(tuple(head) if head else (0, GENESIS_HASH)))
    if progress:
        progress(total, total)
    return streams


def _converge(conn: Connection, bufs: tuple[list[tuple], ...], after: str | None,
              upto: str | None) -> None:
    """Make the rows of the streams after `after` up to `upto` (inclusive; None: no bound)
    of each rebuilt table equal the rows of `bufs`, writing only the differences, and empty
    the buffers."""
    bounds = [(c, v) for c, v in (("stream > ?", after), ("stream <= ?", upto)) if v is not None]
    where = (" WHERE " + " AND ".join(c for c, _ in bounds)) if bounds else ""
    params = tuple(v for _, v in bounds)
    for (table, cols, n), want in zip(_REBUILT, bufs):
        stored = run_sql(conn, f"SELECT {', '.join(cols)} FROM {table}{where} ORDER BY "
                               f"{', '.join(cols[:n])}", params).all()
        if stored == want:  # the usual case: nothing to write
            want.clear()
            continue
        have = {tuple(r[:n]): tuple(r) for r in stored}
        gone, added = [], []
        for row in want:
            old = have.pop(row[:n], None)
            if old != row:
                if old is not None:
                    gone.append(row[:n])
                added.append(row)
        gone.extend(have)  # rows of streams or days the log no longer gives
        if gone:
            run_sql(conn, f"DELETE FROM {table} WHERE "
                          + " AND ".join(f"{c} = ?" for c in cols[:n]), gone)
        if added:
            run_sql(conn, f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({_marks(len(cols))})",
                    added)
        want.clear()


def refold_if_stale(conn: Connection) -> int | None:
    """Rebuild when another fold version (or none recorded: an upgraded database) built the
    projections and they otherwise reflect the log's head; returns the version found, or
    None when nothing was done. A log changed behind the store's back is left for
    `timeline verify` to name: rebuilding would hide it."""
    recorded = recorded_head(conn)
    head: Any = conn.execute(text("SELECT position, hash FROM events ORDER BY position DESC "
                                  "LIMIT 1")).first()
    head = tuple(head) if head else (0, GENESIS_HASH)
    if recorded is None or recorded[2] == FOLD_VERSION or recorded[:2] != head:
        return None
    rebuild(conn)
    return recorded[2] or 0


def rebuild_knowledge(conn: Connection) -> None:
    """Fill `known_intervals` and `measures.known_through` from the log (migration 0008)."""
    conn.execute(delete(known_intervals))
    buf, through = [], []
    for stream, evs in _all_touching(conn):
        buf.extend(known_rows(stream, evs))
        through.append((max(epoch_changes(evs), default=None), stream))
        if len(buf) >= 5000:
            run_sql(conn, INSERT_KNOWN, buf)
            buf.clear()
    if buf:
        run_sql(conn, INSERT_KNOWN, buf)
    if through:
        run_sql(conn, "UPDATE measures SET known_through = ? WHERE stream = ?", through)

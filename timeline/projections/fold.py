"""The fold: how a stream's events become its state over valid time.

Pure functions, no database. The projection maintainer, the rebuild, `known on` queries and
the property tests all call `fold`, so there is exactly one definition of the semantics.

States are updated copy-on-write: a field is replaced, never mutated in place (lists such
as `scheduled` and `disputed` are rebuilt), so an interval's snapshot is a shallow copy of
the running state. Values taken from payloads are shared, not copied: callers must treat
states as read-only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from timeline.log.events import TERMINAL_TYPES, canonical_json
from timeline.log.validation import EVENT_TYPES, SUPERSEDING_TYPES


@dataclass(frozen=True, slots=True)
class FoldEvent:
    """The part of a stored event the fold needs."""

    position: int
    id: str
    stream: str
    type: str
    effective: str
    known: str
    payload: dict
    source: dict | str = ""  # the citation, or its stored JSON text (decoded on demand)

    @property
    def source_name(self) -> str:
        """The citation's source name (only disputed reports need it, so it is lazy)."""
        src = json.loads(self.source) if isinstance(self.source, str) and self.source else \
            self.source
        return src.get("name", "") if isinstance(src, dict) else ""


@dataclass(slots=True)
class Interval:
    """A stretch of valid time over which a stream's state is constant."""

    stream: str
    valid_from: str
    valid_to: str | None
    state: dict
    event_ids: list[str]

    def state_json(self) -> str:
        """Canonical JSON of the state, as stored."""
        return canonical_json(self.state)


@dataclass(slots=True)
class FoldResult:
    """Intervals produced by a fold, and the state right after the stream's last event day."""

    intervals: list[Interval]
    tail_date: str | None
    tail_state: dict | None
    converged_at: str | None = None


def order_key(ev: FoldEvent) -> tuple:
    """Same-day ordering: effective date, then known date, then log position."""
    return (ev.effective, ev.known, ev.position)


def superseded_ids(events: Iterable[FoldEvent], known_on: str | None = None) -> set[str]:
    """Ids withdrawn by retractions/corrections known by `known_on` (all, when None)."""
    out: set[str] = set()
    for ev in events:
        if ev.type in SUPERSEDING_TYPES and (known_on is None or ev.known <= known_on):
            out.update(ev.payload.get("supersedes", ()))
    return out


# Fields the fold itself maintains: a stored `set` that names them (only a database written
# before the schema refused it could hold one) must not break the structure queries read.
DERIVED_FIELDS = frozenset({"disputed", "scheduled"})


def _apply_fields(state: dict, values: dict | None, unset: Sequence[str] | None) -> None:
    if isinstance(values, dict):
        state.update({k: v for k, v in values.items() if k not in DERIVED_FIELDS})
    for key in unset if isinstance(unset, (list, tuple)) else ():
        if isinstance(key, str) and key not in DERIVED_FIELDS:
            state.pop(key, None)


def apply_event(state: dict, ev: FoldEvent, stream: str) -> None:
    """Apply one event to `stream`'s state in place."""
    p = ev.payload
    if ev.stream != stream:
        # a ruling (or other cross-stream event) that names this measure in `affects`
        _apply_fields(state, p.get("affects_set"), None)
        return
    if p.get("disputed"):
        claims = dict(p.get("set") or {})
        state["disputed"] = state.get("disputed", []) + [{
            "event": ev.id, "claims": claims, "source": ev.source_name,
            **({"note": p["note"]} if p.get("note") else {}),
        }]
        return
    implied = EVENT_TYPES.get(ev.type, (False, None))[1]
    if implied:
        state["status"] = implied
    _apply_fields(state, p.get("set"), p.get("unset"))
    if ev.type in TERMINAL_TYPES:
        state.pop("scheduled", None)
    if "schedule" in p:
        items = [{"on": it["on"], "set": it.get("set", {}), "unset": it.get("unset", []),
                  "by": ev.id} for it in p["schedule"]]
        if items:
            state["scheduled"] = sorted(items, key=lambda it: it["on"])
        else:
            state.pop("scheduled", None)


# A measure in one of these states has no rate in force: its rate is kept as `last_rate`.
ENDED_STATUSES = frozenset({"lifted", "expired", "withdrawn"})
ENDED_LEGAL_STATUSES = frozenset({"invalidated"})


def ended(state: dict) -> bool:
    """Whether a state has no rate in force (lifted, expired, withdrawn or invalidated)."""
    return (state.get("status") in ENDED_STATUSES
            or state.get("legal_status") in ENDED_LEGAL_STATUSES)


def settle_rate(state: dict) -> None:
    """Move `rate` to `last_rate` while the measure has no rate in force, and back when it
    is in force again without a new rate: `rate > 20` must never match an ended measure."""
    if ended(state):
        if "rate" in state:
            state["last_rate"] = state.pop("rate")
    elif "last_rate" in state:
        last = state.pop("last_rate")
        state.setdefault("rate", last)


def _apply_due(state: dict, day: str, applied: list[str]) -> None:
    pending = state.get("scheduled") or []
    due = [it for it in pending if it["on"] <= day]
    if not due:
        return
    rest = [it for it in pending if it["on"] > day]
    for item in due:
        _apply_fields(state, item["set"], item["unset"])
        if item["by"] not in applied:
            applied.append(item["by"])
    if rest:
        state["scheduled"] = rest
    else:
        state.pop("scheduled", None)


def fold(stream: str, events: Iterable[FoldEvent], *, start_state: dict | None = None,
         excluded: set[str] | None = None, until: str | None = None,
         converge: Callable[[str, dict, list[str]], bool] | None = None,
         converge_after: str | None = None) -> FoldResult:
    """Fold `events` (those touching `stream`) into intervals.

    `start_state` is the state in force before the first event given (for incremental
    re-folds); `excluded` are superseded ids; `until` stops after that day (inclusive),
    which bounds the work of point queries. `converge(day, state, event_ids)` lets an
    incremental re-fold stop at the first day after `converge_after` whose interval equals
    the stored one: from there on nothing can differ, since no changed event lies beyond.
    """
    excluded = excluded or set()
    # a retraction changes no state itself: it only removes what it supersedes
    evs = sorted((e for e in events if e.id not in excluded and e.type != "retraction"),
                 key=order_key)
    state = dict(start_state) if start_state else {}
    intervals: list[Interval] = []
    tail_date, tail_state = None, None
    i, n = 0, len(evs)
    while True:
        next_ev = evs[i].effective if i < n else None
        pending = state.get("scheduled")
        next_sched = pending[0]["on"] if pending else None
        day = min(d for d in (next_ev, next_sched) if d is not None) if (next_ev or next_sched) \
            else None
        if day is None:
            break
        if until is not None and day > until:
            if intervals:
                intervals[-1].valid_to = day  # the next change is known, just not applied
            break
        applied: list[str] = []
        _apply_due(state, day, applied)
        had_event = False
        while i < n and evs[i].effective == day:
            apply_event(state, evs[i], stream)
            if evs[i].id not in applied:
                applied.append(evs[i].id)
            had_event = True
            i += 1
        settle_rate(state)
        snapshot = dict(state)
        if intervals:
            intervals[-1].valid_to = day
        if converge is not None and (converge_after is None or day > converge_after) \
                and converge(day, snapshot, applied):
            return FoldResult(intervals, tail_date, tail_state, converged_at=day)
        intervals.append(Interval(stream, day, None, snapshot, applied))
        if had_event:
            tail_date, tail_state = day, snapshot
    return FoldResult(intervals, tail_date, tail_state)


def state_at(intervals: Sequence[Interval], day: str) -> Interval | None:
    """The interval in force on `day`, if any."""
    found = None
    for iv in intervals:
        if iv.valid_from <= day:
            found = iv
        else:
            break
    if found is not None and (found.valid_to is None or day < found.valid_to):
        return found
    return None

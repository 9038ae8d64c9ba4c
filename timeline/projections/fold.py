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
from operator import attrgetter
from typing import Callable, Iterable, Sequence

from timeline.errors import FoldError
from timeline.log.events import TERMINAL_TYPES, canonical_json
from timeline.log.vocabulary import CONFIDENCES, EVENT_TYPES, SUPERSEDING_TYPES


@dataclass(slots=True)
class FoldEvent:
    """The part of a stored event the fold needs. Read-only by convention (not frozen: a
    frozen dataclass's constructor cost a rebuild a twentieth of its time)."""

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


# Same-day ordering: effective date, then known date, then log position (`order_key(ev)`
# is that tuple; an attrgetter, so that sorting calls no Python function per event).
order_key = attrgetter("effective", "known", "position")


def superseded_ids(events: Iterable[FoldEvent], known_on: str | None = None) -> set[str]:
    """Ids withdrawn by retractions/corrections known by `known_on` (all, when None)."""
    out: set[str] = set()
    for ev in events:
        if ev.type in SUPERSEDING_TYPES and (known_on is None or ev.known <= known_on):
            out.update(ev.payload.get("supersedes", ()))
    return out


# Fields the fold itself maintains: a stored `set` that names them (only a database written
# before the schema refused it could hold one) must not break the structure queries read.
DERIVED_FIELDS = frozenset({"disputed", "resolved", "scheduled", "uncertain", "confidence",
                            "unconfirmed"})
_UNKNOWN_TYPE = (False, None)


def _apply_fields(state: dict, values: dict | None, unset: Sequence[str] | None) -> None:
    if isinstance(values, dict):
        if DERIVED_FIELDS.isdisjoint(values):
            state.update(values)
        else:
            state.update({k: v for k, v in values.items() if k not in DERIVED_FIELDS})
    for key in unset if isinstance(unset, (list, tuple)) else ():
        if isinstance(key, str) and key not in DERIVED_FIELDS:
            state.pop(key, None)


def apply_event(state: dict, ev: FoldEvent, stream: str, known_on: str | None = None) -> None:
    """Apply one event to `stream`'s state in place (`known_on`: the knowledge date of a
    `known on` fold, against which `known_between` is judged)."""
    p = ev.payload
    if ev.stream != stream:
        # a ruling (or other cross-stream event) that names this measure in `affects`
        _apply_fields(state, p.get("affects_set"), None)
        if "affects_schedule" in p:
            # a court's deadline replaces the one an earlier ruling set (a stay: `[]`),
            # never the measure's own schedule
            own = [it for it in state.get("scheduled") or () if not it.get("affects")]
            due = [{"on": it["on"], "set": it.get("set", {}), "unset": it.get("unset", []),
                    "by": ev.id, "affects": True} for it in p["affects_schedule"]]
            _set_scheduled(state, own + due)
        return
    if p.get("disputed"):
        claims = dict(p.get("set") or {})
        entry = {"event": ev.id, "claims": claims, "source": ev.source_name,
                 **({"note": p["note"]} if p.get("note") else {})}
        settled = [r for r in state.get("resolved") or () if r["event"] == ev.id]
        if settled:
            # settled before this report's day of effect: it arrives resolved
            state["resolved"] = [r for r in state["resolved"] if r["event"] != ev.id] + [
                {**entry, **{k: settled[0][k] for k in ("resolved_by", "resolution")}}]
        else:
            state["disputed"] = state.get("disputed", []) + [entry]
        return
    if p.get("resolves"):
        _resolve(state, ev)
    implied = EVENT_TYPES.get(ev.type, _UNKNOWN_TYPE)[1]
    _track_confidence(state, ev, implied)
    between = p.get("effective_between")
    known_between = p.get("known_between")
    unsure = (bool(known_between) and known_on is not None
              and known_on < known_between[1])  # type: ignore[index]  # bool() checked it
    if between or unsure:
        _open_uncertain(state, ev, implied, between, known_between if unsure else None)
        return
    if implied:
        state["status"] = implied
    _apply_fields(state, p.get("set"), p.get("unset"))
    # an uncertain change still waiting for its latest day is kept: it is not the
    # stream's schedule but the rest of an event already applied; so is a court's deadline
    # (only the court's next word, or the measure's end, replaces it)
    if "schedule" in p or ev.type in TERMINAL_TYPES:
        pending = state.get("scheduled") or ()
        kept = [it for it in pending if it.get("settles")
                or (it.get("affects") and ev.type not in TERMINAL_TYPES)]
        if "schedule" in p:
            kept += [{"on": it["on"], "set": it.get("set", {}), "unset": it.get("unset", []),
                      "by": ev.id} for it in p["schedule"]]
        _set_scheduled(state, kept)


def _set_scheduled(state: dict, items: list[dict]) -> None:
    if items:
        state["scheduled"] = sorted(items, key=lambda it: it["on"])
    else:
        state.pop("scheduled", None)


def _resolve(state: dict, ev: FoldEvent) -> None:
    """Move the disputed reports `ev` settles from `disputed` to `resolved` (reports not yet
    seen are remembered as resolved, so one arriving later in valid time arrives settled)."""
    ids = set(ev.payload["resolves"])
    how = {"resolved_by": ev.id, "resolution": ev.payload.get("resolution", "")}
    disputed = list(state.get("disputed") or ())
    moved = [{**d, **how} for d in disputed if d["event"] in ids]
    seen = {d["event"] for d in moved}
    pending = [{"event": i, "claims": {}, **how} for i in sorted(ids - seen)]
    rest = [d for d in disputed if d["event"] not in ids]
    if rest:
        state["disputed"] = rest
    else:
        state.pop("disputed", None)
    state["resolved"] = list(state.get("resolved") or ()) + moved + pending


IDENTITY_FIELDS = ("imposer", "target", "kind", "scope", "authority")


def _track_confidence(state: dict, ev: FoldEvent, implied: str | None = None) -> None:
    """`unconfirmed` lists the qualified events whose fields the state still holds;
    `confidence` is the weakest of their levels. A confirmed event that sets all of a
    qualified event's fields (or, when it set none, any event of the stream) clears it."""
    p = ev.payload
    confidence = p.get("confidence")
    if not confidence and not state.get("unconfirmed"):
        # the common case: nothing qualified before, nothing now
        state.pop("unconfirmed", None)
        state.pop("confidence", None)
        return
    fields = sorted(p.get("set") or {})
    if implied or "status" in fields:
        fields = sorted(set(fields) | {"status"})
    entries = list(state.get("unconfirmed") or ())
    if confidence:
        entries.append({"event": ev.id, "confidence": confidence, "fields": fields})
    else:
        kept = []
        for entry in entries:
            left = [f for f in entry["fields"] if f not in fields]
            if entry["fields"] and left:
                kept.append({**entry, "fields": left})
        entries = kept
    if entries:
        state["unconfirmed"] = entries
        # CONFIDENCES runs from the weakest level
        state["confidence"] = min((e["confidence"] for e in entries),
                                  key=lambda c: CONFIDENCES.index(c) if c in CONFIDENCES else -1)
    else:
        state.pop("unconfirmed", None)
        state.pop("confidence", None)


def _open_uncertain(state: dict, ev: FoldEvent, implied: str | None, between,
                    known_between) -> None:
    """The start of a change whose day (or whose publication, as of `known on`) is only a
    range: the state's `uncertain` names it, its fields stay unchanged and its status is
    `uncertain` when the change would move it; with a day range the change is applied on the
    latest day, so it is never shown in force early."""
    p = ev.payload
    prior = state.get("uncertain")
    was = prior.get("was") if prior else state.get("status")
    becomes = (p.get("set") or {}).get("status") or implied or was
    info: dict = {"event": ev.id, "becomes": becomes,
                  "fields": sorted(k for k in p.get("set") or {} if k != "status")}
    if was:
        info["was"] = was
    if between:
        info["between"] = list(between)
    if known_between:
        info["known_between"] = list(known_between)
    if p.get("date_qualifier"):
        info["qualifier"] = p["date_qualifier"]
    state["uncertain"] = info
    for key in IDENTITY_FIELDS:
        # what the measure is (not whether it is in force) is known from the start, so a
        # stream opened by an uncertain event is catalogued and found by `total`
        if key in (p.get("set") or {}) and key not in state:
            state[key] = p["set"][key]
    if becomes != was:
        # only a change of status can be in force early; a change of other fields keeps
        # the status and is flagged by `uncertain` alone
        state["status"] = "uncertain"
    if between and not known_between:
        values = {**(p.get("set") or {}), **({"status": becomes} if becomes else {})}
        unset = list(p.get("unset") or ()) + ([] if becomes else ["status"])
        item = {"on": between[1], "set": values, "unset": unset, "by": ev.id, "settles": True}
        state["scheduled"] = sorted([*(state.get("scheduled") or ()), item],
                                    key=lambda it: it["on"])


# A measure in one of these states has no rate in force: its rate is kept as `last_rate`.
# A court's ruling is not among them: duties are collected at entry until collection itself
# changes (an `invalidated` measure still in force still charges, and is refundable).
ENDED_STATUSES = frozenset({"lifted", "expired", "withdrawn"})
# A measure announced or threatened has no rate yet: what it would charge is kept apart, so
# `rate >= 50` never matches a threat.
PENDING_RATES = {"announced": "announced_rate", "threatened": "threatened_rate"}
# Rate fields the fold moves `rate` into while no rate is in force.
MOVED_RATES = ("last_rate", *PENDING_RATES.values())


def ended(state: dict) -> bool:
    """Whether a state has ended (lifted, expired or withdrawn): no rate in force."""
    return state.get("status") in ENDED_STATUSES


def settle_rate(state: dict) -> None:
    """Keep `rate` for measures that charge it: an announced or threatened measure holds it
    as `announced_rate`/`threatened_rate`, a suspended or ended one as `last_rate`, and a
    measure in force again without a new rate takes its last (or announced) one back.
    A measure that ends without ever coming into force keeps what was announced or
    threatened. An `uncertain` state keeps all of them as they were until the change settles."""
    status = state.get("status")
    if status == "uncertain":
        return
    if status in PENDING_RATES:
        if "rate" in state:
            state[PENDING_RATES[status]] = state.pop("rate")
        return
    if status in ENDED_STATUSES:
        if "rate" in state:
            state["last_rate"] = state.pop("rate")
        return
    for key in MOVED_RATES:
        if key in state:
            # the first kept rate is the one a measure in force again resumes
            kept = state.pop(key)
            state.setdefault("rate", kept)
    if status == "suspended":
        if "rate" in state:
            state["last_rate"] = state.pop("rate")
        return
    if status == "in_force" and state.get("kind") == "tariff" and "rate" not in state \
            and state.get("legal_status") == "invalidated" \
            and not (state.get("hts_rates") or state.get("rates")):
        raise FoldError("a tariff in force whose authority was invalidated has no rate: "
                        "collection and legality are separate (set the rate collected, or "
                        "end the measure on the day collection stopped)")


def _apply_due(state: dict, day: str, applied: list[str]) -> None:
    pending = state.get("scheduled") or []
    due = [it for it in pending if it["on"] <= day]
    if not due:
        return
    rest = [it for it in pending if it["on"] > day]
    for item in due:
        _apply_fields(state, item["set"], item["unset"])
        if item.get("settles"):
            state.pop("uncertain", None)
        if item["by"] not in applied:
            applied.append(item["by"])
    if rest:
        state["scheduled"] = rest
    else:
        state.pop("scheduled", None)


def fold(stream: str, events: Iterable[FoldEvent], *, start_state: dict | None = None,
         excluded: set[str] | None = None, until: str | None = None,
         converge: Callable[[str, dict, list[str]], bool] | None = None,
         converge_after: str | None = None, known_on: str | None = None) -> FoldResult:
    """Fold `events` (those touching `stream`) into intervals.

    `start_state` is the state in force before the first event given (for incremental
    re-folds); `excluded` are superseded ids; `until` stops after that day (inclusive),
    which bounds the work of point queries. `converge(day, state, event_ids)` lets an
    incremental re-fold stop at the first day after `converge_after` whose interval equals
    the stored one: from there on nothing can differ, since no changed event lies beyond.
    `known_on` is the knowledge date of a `known on` fold (see `known_between`).
    """
    # a retraction changes no state itself: it only removes what it supersedes
    if excluded:
        evs = [e for e in events if e.type != "retraction" and e.id not in excluded]
    else:
        evs = [e for e in events if e.type != "retraction"]
    evs.sort(key=order_key)
    state = dict(start_state) if start_state else {}
    intervals: list[Interval] = []
    tail_date, tail_state = None, None
    i, n = 0, len(evs)
    while True:
        pending = state.get("scheduled")
        if i < n:
            day = evs[i].effective
            if pending and pending[0]["on"] < day:
                day = pending[0]["on"]
        elif pending:
            day = pending[0]["on"]
        else:
            break
        if until is not None and day > until:
            if intervals:
                intervals[-1].valid_to = day  # the next change is known, just not applied
            break
        applied: list[str] = []
        if pending:
            _apply_due(state, day, applied)
        had_event = False
        while i < n and evs[i].effective == day:
            ev = evs[i]
            apply_event(state, ev, stream, known_on)
            if ev.id not in applied:
                applied.append(ev.id)
            had_event = True
            i += 1
        try:
            settle_rate(state)
        except FoldError as exc:
            raise FoldError(f"{stream} on {day}: {exc.message}",
                            event=applied[-1] if applied else None) from None
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

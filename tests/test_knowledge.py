"""Knowledge rows (the `known on` index) equal a `known on` fold on every day, on random
streams with late knowledge, known ranges, schedules, retractions and cross-stream events."""
from __future__ import annotations

import datetime as dt
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from timeline.log.events import canonical_json
from timeline.projections.fold import FoldEvent, fold, superseded_ids
from timeline.log.validation import SUPERSEDING_TYPES
from timeline.projections.knowledge import (epoch_changes, holding_before, known_fold, known_rows,
                                            known_through, window_bounds)

BASE = dt.date(2025, 1, 1)
S = "x.tariff.a.cn"


def day(n: int) -> str:
    return (BASE + dt.timedelta(days=n)).isoformat()


@st.composite
def stream_events(draw):
    n = draw(st.integers(1, 14))
    evs: list[FoldEvent] = []
    for pos in range(1, n + 1):
        eff = draw(st.integers(0, 30))
        known = max(0, eff + draw(st.sampled_from([0, 0, 0, -3, 5, 12, -10])))
        kind = draw(st.sampled_from(["amended", "amended", "suspended", "resumed", "lifted",
                                     "schedule", "ranged", "link", "retract", "between"]))
        payload: dict = {"title": kind}
        etype, stream = kind, S
        if kind in ("amended", "schedule", "ranged", "between"):
            etype = "amended"
            payload["set"] = {"rate": draw(st.integers(0, 5))}
        if kind == "schedule":
            payload["schedule"] = [{"on": day(eff + draw(st.integers(1, 8))),
                                    "set": {"rate": draw(st.integers(0, 5))}}]
        elif kind == "ranged":
            payload["known_between"] = [day(known), day(known + draw(st.integers(1, 9)))]
        elif kind == "between":
            payload["effective_between"] = [day(eff), day(eff + draw(st.integers(1, 4)))]
        elif kind == "link":
            etype, stream = "ruling", "x.case.c"
            payload["affects"] = [S]
            payload["affects_set"] = {"legal_status": draw(st.sampled_from(["stayed",
                                                                             "pending"]))}
        elif kind == "retract":
            if not evs:
                continue
            etype = "retraction"
            payload["supersedes"] = [draw(st.sampled_from(evs)).id]
        if pos == 1:
            etype, eff = "imposed", 0
        evs.append(FoldEvent(pos, f"e{pos}", stream, etype, day(eff), day(known), payload))
    return evs


def slice_at(rows: list[tuple], known_on: str) -> list[tuple[str, str | None, str, str]]:
    """The rows holding on `known_on` as intervals: (valid_from, valid_to, state, ids)."""
    held = sorted((r[1], r[4], r[5]) for r in rows
                  if r[2] <= known_on and (r[3] is None or r[3] > known_on))
    return [(vf, held[i + 1][0] if i + 1 < len(held) else None, s, ids)
            for i, (vf, s, ids) in enumerate(held)]


def expected_slice(evs, k):
    known = [e for e in evs if e.known <= k]
    res = fold(S, known, excluded=superseded_ids(known, k), known_on=k)
    return [(iv.valid_from, iv.valid_to, canonical_json(iv.state), canonical_json(iv.event_ids))
            for iv in res.intervals]


@settings(max_examples=int(__import__("os").environ.get("TIMELINE_PROPERTY_EXAMPLES", "300")),
          deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream_events())
def test_rows_holding_on_each_day_are_the_known_on_fold(evs):
    rows = known_rows(S, evs)
    for k in range(-1, 50):
        assert slice_at(rows, day(k)) == expected_slice(evs, day(k)), day(k)


@settings(max_examples=100, deadline=None)
@given(stream_events())
def test_rows_are_well_formed(evs):
    rows = known_rows(S, evs)
    keys = [(r[1], r[2]) for r in rows]
    assert keys == sorted(set(keys))  # one row per (valid_from, known_from), in key order
    assert all(r[3] is None or r[3] > r[2] for r in rows)  # a row holds at least one day
    last = known_through(evs)
    # from the last epoch on, the rows still open are the current intervals
    assert slice_at(rows, last) == [(vf, vt, s, i) for vf, vt, s, i in slice_at(
        [r for r in rows if r[3] is None], "9999-12-31")]


def test_a_known_range_is_uncertain_until_its_end_then_settles():
    evs = [FoldEvent(1, "a", S, "imposed", day(0), day(0), {"title": "t", "set": {"rate": 1}}),
           FoldEvent(2, "b", S, "amended", day(5), day(5),
                     {"title": "t", "set": {"rate": 2}, "known_between": [day(5), day(9)]})]
    rows = known_rows(S, evs)
    during = dict((vf, s) for vf, _, s, _ in slice_at(rows, day(6)))
    after = dict((vf, s) for vf, _, s, _ in slice_at(rows, day(9)))
    assert '"uncertain"' in during[day(5)] and '"rate":1' in during[day(5)]
    assert '"rate":2' in after[day(5)] and "uncertain" not in after[day(5)]
    assert slice_at(rows, day(4)) == [(day(0), None, '{"rate":1,"status":"in_force"}', '["a"]')]
    assert known_through(evs) == day(9)


@settings(max_examples=int(__import__("os").environ.get("TIMELINE_PROPERTY_EXAMPLES", "300")),
          deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream_events(), st.integers(1, 13))
def test_recomputing_a_window_after_an_append_equals_recomputing_the_stream(evs, m):
    """What the maintainer does on an append: the window the new events' knowledge can
    reach, re-folded from the rows that held before it, plus the rows outside it, equals a
    from-scratch computation of the whole stream."""
    old, new = evs[:m], evs[m:]
    if not old or not new:
        return
    stored, want = known_rows(S, old), known_rows(S, evs)
    since = min(epoch_changes(new))
    later = [e for e in evs if e.known >= since or e.payload.get("known_between")
             or e.type in SUPERSEDING_TYPES]
    bounds = window_bounds(new, later)
    if bounds is None:
        return  # the maintainer recomputes the whole stream: known_rows itself
    since, first = bounds
    region = [r for r in stored if r[1] >= first and (r[3] is None or r[3] >= since)]
    kept = [r for r in stored if r not in region]
    before = holding_before([r for r in stored if r[1] < first], since)
    start = json.loads(max(before)[4]) if before else None
    window = {r[1]: [r[2], json.loads(r[4]), r[4], r[5]] for r in holding_before(region, since)}
    excluded = superseded_ids([e for e in evs if e.known < since])
    window_evs = [e for e in evs if e.effective >= first or e.type in SUPERSEDING_TYPES]
    rows, _ = known_fold(S, window_evs, since=since, start_state=start, window=window,
                         excluded=excluded)
    assert sorted(kept + rows, key=lambda r: (r[1], r[2])) == want


def rows_by_definition(evs) -> list[tuple]:
    """The knowledge rows straight from their definition: the `known on` fold on every epoch
    day, a row per interval for as long as it stays the same (valid_from, state, ids)."""
    open_: dict[str, tuple[str, str, str]] = {}  # valid_from -> (known_from, state, ids)
    out = []
    for k in sorted(epoch_changes(evs)):
        now = {vf: (s, i) for vf, _, s, i in expected_slice(evs, k)}
        for vf, (kf, s, i) in list(open_.items()):
            if now.get(vf) != (s, i):
                out.append((S, vf, kf, k, s, i))
                del open_[vf]
        for vf, (s, i) in now.items():
            if vf not in open_:
                open_[vf] = (k, s, i)
    out += [(S, vf, kf, None, s, i) for vf, (kf, s, i) in open_.items()]
    return sorted(out, key=lambda r: (r[1], r[2]))


@st.composite
def mostly_in_order(draw):
    """Streams whose knowledge mostly follows valid time (each event known on its day, days
    rising), with frequent schedules that later events overtake or not, and now and then an
    event out of order, a known range, a ruling or a retraction: the epochs a rebuild folds
    together, and every way such a run is cut."""
    n = draw(st.integers(1, 16))
    evs: list[FoldEvent] = []
    eff = 0
    for pos in range(1, n + 1):
        eff += draw(st.sampled_from([0, 1, 1, 2, 3, 5]))
        e, known = eff, eff
        kind = draw(st.sampled_from(["amended", "amended", "schedule", "schedule", "lifted",
                                     "late", "back", "ranged", "link", "retract", "confident"]))
        payload: dict = {"title": kind, "set": {"rate": draw(st.integers(0, 3))}}
        etype, stream = "amended", S
        if kind == "schedule":
            payload["schedule"] = [{"on": day(e + draw(st.integers(1, 6))),
                                    "set": {"rate": draw(st.integers(0, 3))}}]
        elif kind == "lifted":
            etype = "lifted"
            payload = {"title": kind}
        elif kind == "late":
            known = e + draw(st.integers(1, 6))
        elif kind == "back":
            e = max(0, eff - draw(st.integers(1, 6)))
        elif kind == "ranged":
            payload["known_between"] = [day(known), day(known + draw(st.integers(1, 5)))]
        elif kind == "confident":
            payload["confidence"] = "single-source"
        elif kind == "link":
            etype, stream = "ruling", "x.case.c"
            payload = {"title": kind, "affects": [S], "affects_set": {"legal_status": "stayed"}}
        elif kind == "retract":
            if not evs:
                continue
            etype = "retraction"
            payload = {"title": kind, "supersedes": [draw(st.sampled_from(evs)).id]}
        if pos == 1:
            etype, e, known = "imposed", 0, 0
        evs.append(FoldEvent(pos, f"e{pos}", stream, etype, day(e), day(known), payload))
    return evs


@settings(max_examples=int(__import__("os").environ.get("TIMELINE_PROPERTY_EXAMPLES", "300")),
          deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(stream_events(), mostly_in_order()))
def test_rows_equal_their_definition_and_the_last_epoch_is_the_plain_fold(evs):
    """The epochs that only add events after all known ones are folded together (one fold
    resumed from the last known state, cut where a change is still scheduled): the rows
    are exactly those of a `known on` fold on every epoch, and the final intervals those of
    the plain fold."""
    rows, final = known_fold(S, evs)
    assert rows == rows_by_definition(evs)
    plain = fold(S, evs, excluded=superseded_ids(evs))
    assert final == [(iv.valid_from, iv.state, canonical_json(iv.state),
                      canonical_json(iv.event_ids)) for iv in plain.intervals]

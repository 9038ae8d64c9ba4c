"""Projections: incremental maintenance equals a from-scratch fold; knowledge time and
valid time behave as promised, on random logs (hypothesis) and on the bundled seeds."""
from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import text

import json

import pytest

from timeline.log.events import NewEvent
from timeline.projections.fold import fold, superseded_ids
from timeline.store.store import Store

from .backends import (any_empty_store, any_seeded_store,  # noqa: F401
                       PgSession, backend, make_db, new_event, only_postgres,  # noqa: F401
                       projections_match_rebuild)

STREAMS = ["x.tariff.a.cn", "x.tariff.b.cn", "x.case.c"]
BASE = dt.date(2025, 1, 1)
SRC = {"name": "property test"}


def dump(store):
    with store.reading() as c:
        return (c.conn.execute(text("SELECT * FROM intervals ORDER BY stream, valid_from")).all(),
                c.conn.execute(text("SELECT * FROM measures ORDER BY stream")).all(),
                c.conn.execute(text("SELECT * FROM known_intervals ORDER BY stream, valid_from, "
                                    "known_from")).all())


def day(n: int) -> dt.date:
    return BASE + dt.timedelta(days=n)


@st.composite
def raw_event(draw):
    stream = draw(st.sampled_from(STREAMS[:2]))
    eff = draw(st.integers(0, 40))
    known = eff - draw(st.integers(0, 10)) + draw(st.sampled_from([0, 0, 0, 15]))
    kind = draw(st.sampled_from(["amended", "amended", "suspended", "resumed", "lifted",
                                 "schedule", "ruling", "retract", "ranged"]))
    return (stream, kind, eff, known, draw(st.integers(0, 200)), draw(st.integers(1, 20)))


def build(raw, existing_ids):
    """Turn a drawn tuple into a NewEvent (retractions pick an id appended earlier)."""
    stream, kind, eff, known, rate, gap = raw
    payload = {"title": f"{kind} {eff}"}
    etype = kind
    target = stream
    if kind == "schedule":
        etype = "amended"
        payload["set"] = {"rate": rate}
        payload["schedule"] = [{"on": day(eff + 1 + gap).isoformat(), "set": {"rate": rate + 1}}]
    elif kind == "ruling":
        etype, target = "ruling", "x.case.c"
        payload["set"] = {"stage": f"r{eff}"}
        payload["affects"] = [stream]
        payload["affects_set"] = {"legal_status": "stayed" if rate % 2 else "ruled_unlawful"}
    elif kind == "retract":
        if not existing_ids:
            return None
        etype = "retraction"
        payload["supersedes"] = [existing_ids[rate % len(existing_ids)][1]]
        target = existing_ids[rate % len(existing_ids)][0]
    elif kind in ("amended", "ranged"):
        etype = "amended"
        payload["set"] = {"rate": rate}
        if kind == "ranged":  # known on some day of a range: uncertain until its end
            payload["known_between"] = [day(max(known, 0)).isoformat(),
                                        day(max(known, 0) + gap).isoformat()]
    return NewEvent(target, etype, day(eff + 1), payload, SRC, known=day(max(known, 0)))


def opening():
    return [NewEvent(s, "imposed" if "tariff" in s else "opened", BASE, {"title": "open",
                     "set": {"rate": 1} if "tariff" in s else {}}, SRC, known=BASE)
            for s in STREAMS]


def make_store(tmp: str) -> Store:
    p = Path(tmp) / "p.db"
    return Store.create(f"sqlite:///{p}", seeds=False)


batches = st.lists(st.lists(raw_event(), min_size=1, max_size=6), min_size=1, max_size=6)


def append_batches(store, drawn):
    ids = []
    for batch in drawn:
        evs = []
        for raw in batch:
            e = build(raw, ids)
            if e is not None:
                evs.append(e)
        if evs:
            for e in store.append(evs).appended:
                if e.type not in ("retraction", "correction", "ruling"):
                    ids.append((e.stream, e.id))
    return ids


def _incremental_equals_rebuild_and_pure_fold(store, drawn):
    """Appending batch by batch leaves the projections a rebuild and a pure fold produce."""
    try:
        store.append(opening())
        append_batches(store, drawn)
        incremental = dump(store)
        with store.reading() as c:
            for s in STREAMS:
                evs = c.touching_events(s)
                pure = fold(s, evs, excluded=superseded_ids(evs)).intervals
                stored = c.history(s, None, None)
                assert [(i.valid_from, i.valid_to, i.state) for i in pure] == \
                       [(r.valid_from, r.valid_to, r.state) for r in stored]
                # `known on` by index equals `known on` by a fold of the events, every day
                for k in range(-1, 62, 3):
                    known = day(k).isoformat()
                    folded = c.fold_known(s, known)
                    assert [(i.valid_from, i.valid_to, i.state, i.event_ids) for i in folded] \
                        == [(r.valid_from, r.valid_to, r.state, r.event_ids)
                            for r in c.history(s, None, None, known)]
                    for d in range(0, 62, 4):
                        as_of = day(d).isoformat()
                        want = next((i for i in reversed(folded) if i.valid_from <= as_of), None)
                        got = c.state(s, as_of, known)
                        assert (got and (got.valid_from, got.valid_to, got.state)) == \
                            (want and (want.valid_from, want.valid_to, want.state))
        store.rebuild()
        assert dump(store) == incremental
    finally:
        store.close()


@pytest.mark.slow  # 50 random logs (150 under TIMELINE_LONG_TESTS=1), about 0.1 s each
@settings(max_examples=int(os.environ.get("TIMELINE_PROPERTY_EXAMPLES")
                           or (150 if os.environ.get("TIMELINE_LONG_TESTS") == "1" else 50)),
          deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_incremental_equals_rebuild_and_pure_fold(drawn):
    with tempfile.TemporaryDirectory() as tmp:
        _incremental_equals_rebuild_and_pure_fold(make_store(tmp), drawn)


@only_postgres
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_incremental_equals_rebuild_and_pure_fold_on_postgres(drawn):
    # a schema per example: fewer examples than on SQLite, the same property
    _incremental_equals_rebuild_and_pure_fold(
        Store.create(PgSession.get().new_url(), seeds=False), drawn)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches, st.integers(0, 60), st.integers(0, 60))
def test_known_on_never_shows_later_knowledge(drawn, k, d):
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(tmp)
        store.append(opening())
        append_batches(store, drawn)
        known_on, as_of = day(k).isoformat(), day(d).isoformat()
        with store.reading() as c:
            later = {r.id for r in c.conn.execute(text("SELECT id FROM events WHERE known > :k"),
                                             {"k": known_on})}
            for s in STREAMS:
                for row in c.history(s, None, as_of, known_on):
                    assert not later & set(row.event_ids)
                    assert not later & {it["by"] for it in row.state.get("scheduled", [])}
        store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches, st.lists(raw_event(), min_size=1, max_size=5), st.integers(0, 45))
def test_appending_after_d_never_changes_state_as_of_d(drawn, extra, d):
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(tmp)
        store.append(opening())
        append_batches(store, drawn)
        as_of = day(d).isoformat()

        def states():
            # the state and where it came from; `until` may legitimately become known
            with store.reading() as c:
                rows = {s: c.state_at(s, as_of) for s in STREAMS}
                return {s: r and (r.valid_from, r.state, r.event_ids) for s, r in rows.items()}
        before = states()
        later = []
        for raw in extra:
            if raw[1] == "retract":
                continue  # a retraction rewrites the past by design; not an 'after D' change
            stream, kind, _eff, _known, rate, gap = raw
            e = build((stream, kind, d + 1 + gap, d + gap, rate, gap), [])
            later.append(e)
        if later:
            store.append(later)
        assert states() == before
        store.close()


def test_seeded_projections_equal_a_rebuild(seeded_store):
    before = dump(seeded_store)
    assert before[0], "the seeds produce intervals"
    seeded_store.rebuild()
    assert dump(seeded_store) == before


def test_retraction_withdraws_an_event_and_known_on_respects_it(empty_store):
    s = "us.tariff.r.cn"
    D = dt.date.fromisoformat
    a = empty_store.append([NewEvent(s, "imposed", D("2025-01-01"),
                                     {"title": "a", "set": {"rate": 10}},
                                     SRC, known=D("2025-01-01"))]).appended[0]
    b = empty_store.append([NewEvent(s, "amended", D("2025-02-01"),
                                     {"title": "b", "set": {"rate": 99}},
                                     SRC, known=D("2025-01-20"))]).appended[0]
    empty_store.append([NewEvent(s, "retraction", D("2025-03-01"),
                                 {"title": "b was wrong", "supersedes": [b.id]}, SRC,
                                 known=D("2025-03-01"))])
    with empty_store.reading() as c:
        assert c.state(s, "2025-02-15").state["rate"] == 10
        assert c.state(s, "2025-02-15", "2025-02-01").state["rate"] == 99
        assert c.state(s, "2025-02-15", "2025-03-01").state["rate"] == 10
        assert a.id in c.state(s, "2025-02-15").event_ids
    before = dump(empty_store)
    empty_store.rebuild()
    assert dump(empty_store) == before


def test_projections_follow_appends_and_equal_a_rebuild(make_db):
    store = Store.open(make_db())
    try:
        s = "us.tariff.contract-test.cn"
        store.append([new_event(s, "imposed", "2025-03-01", set={"rate": 10},
                                schedule=[{"on": "2025-06-01", "set": {"rate": 15}}])])
        wrong = store.append([new_event(s, "amended", "2025-04-01", set={"rate": 99})])
        back = store.append([new_event(s, "amended", "2025-03-15", set={"rate": 5})])  # backdated
        store.append([new_event(s, "correction", "2025-04-01", set={"rate": 12},
                                supersedes=[wrong.appended[0].id])])
        store.append([new_event("case.contract-test", "ruling", "2025-05-01",
                                affects=[s, "us.tariff.ieepa-reciprocal.cn"],
                                affects_set={"legal_status": "ruled_unlawful"})])
        store.append([new_event(s, "retraction", "2025-03-15",
                                supersedes=[back.appended[0].id])])
        assert projections_match_rebuild(store)
        with store.reading() as c:
            row = c.conn.execute(text("SELECT state FROM intervals WHERE stream = :s "
                                 "AND valid_from <= '2025-05-02' ORDER BY valid_from DESC"),
                            {"s": s}).first()
        assert json.loads(row.state)["legal_status"] == "ruled_unlawful"
    finally:
        store.close()


def test_several_epochs_in_valid_order_take_one_fold_and_equal_a_rebuild(monkeypatch):
    # a batch whose knowledge follows valid time gets every epoch's `known on` rows from the
    # one fold of its intervals (maintain._known_by_day); the cases where it must not (a
    # schedule open at an epoch's end, knowledge against valid time, one day known twice, a
    # known range) fall back to the fold per epoch; both equal a rebuild and a `known on` fold
    from timeline.projections import maintain

    taken = []
    real = maintain._known_by_day

    def spy(evs, ivs):
        out = real(evs, ivs)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(maintain, "_known_by_day", spy)
    a, b = STREAMS[0], STREAMS[1]
    cases = [
        [[(a, "amended", 5, 5, 10, 1), (a, "amended", 8, 8, 20, 1), (a, "suspended", 12, 12, 0, 1),
          (b, "amended", 4, 4, 7, 1), (b, "ruling", 9, 9, 1, 1)],
         [(a, "resumed", 20, 20, 0, 1), (a, "schedule", 22, 22, 40, 3)]],
        [[(a, "amended", 3, 3, 5, 1), (a, "schedule", 6, 6, 7, 2)],
         [(a, "amended", 15, 15, 9, 1), (a, "amended", 18, 18, 11, 1)]],
        [[(a, "schedule", 5, 5, 10, 10), (a, "amended", 9, 9, 30, 1)],
         [(a, "amended", 30, 30, 3, 1), (a, "amended", 33, 33, 4, 1)]],
        [[(a, "amended", 9, 4, 1, 1), (a, "amended", 5, 7, 2, 1)]],
        [[(a, "amended", 6, 5, 1, 1), (a, "amended", 6, 7, 2, 1), (a, "amended", 9, 8, 3, 1)]],
        [[(a, "amended", 6, 5, 1, 1), (a, "ranged", 9, 8, 3, 4)]],
        [[(a, "amended", 6, 5, 1, 1), (a, "ruling", 9, 8, 3, 4)],
         [(b, "lifted", 10, 10, 0, 1), (b, "resumed", 14, 14, 0, 1)]],
    ]
    for drawn in cases:
        with tempfile.TemporaryDirectory() as tmp:
            _incremental_equals_rebuild_and_pure_fold(make_store(tmp), drawn)
    assert True in taken and False in taken

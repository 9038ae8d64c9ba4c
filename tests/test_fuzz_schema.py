"""Fuzzing from the declared schema: strategies are derived from the msgspec structs of
timeline.log.validation (types, patterns, ranges, lengths, literals), so a new field or
rule is fuzzed without touching this file.

Valid events must pass the schema; near-valid ones (one hostile change) are refused with
the file and the field named. Files of either kind are then loaded into a store: every
accepted batch folds (projections equal a rebuild) and every query form answers over it;
every refused file leaves the log exactly as it was.

CI runs TIMELINE_FUZZ_EXAMPLES (10,000) examples of the schema check, 300 without it; the
store round trip takes a tenth of that (at least 50). TIMELINE_LONG_TESTS=1 starts from
1,000 and multiplies both by ten.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import string

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from timeline.errors import EventValidationError, QueryError
from timeline.log import validation
from timeline.log.loader import load_file
from timeline.query.execute import Context, run
from timeline.query.parser import parse
from timeline.store.store import Store

from .backends import QUERIES, projections_match_rebuild

LONG = os.environ.get("TIMELINE_LONG_TESTS") == "1"
EXAMPLES = int(os.environ.get("TIMELINE_FUZZ_EXAMPLES") or (1000 if LONG else 300)) * \
    (10 if LONG else 1)
STORE_EXAMPLES = max(EXAMPLES // 10, 50)
TEXT = st.text(alphabet=string.ascii_letters + string.digits + " .,;:'%-()é–’\u00a0", min_size=1,
               max_size=40)


def strategy(t) -> st.SearchStrategy:
    """A strategy for one msgspec type-info node: the schema decides what is generated."""
    i = msgspec.inspect
    if isinstance(t, i.Metadata):  # a description on a type: generate the type
        return strategy(t.type)
    if isinstance(t, i.StructType):
        required = {f.name: strategy(f.type) for f in t.fields if f.required}
        optional = {f.name: strategy(f.type) for f in t.fields if not f.required}
        # a few optional fields at a time: a struct with ninety declared fields stays small
        return st.fixed_dictionaries(required).flatmap(lambda req: st.lists(
            st.sampled_from(sorted(optional)), max_size=4, unique=True).flatmap(
            lambda names: st.fixed_dictionaries({n: optional[n] for n in names}).map(
                lambda opt: {**req, **opt}))) if optional else st.fixed_dictionaries(required)
    if isinstance(t, i.UnionType):
        return st.one_of([strategy(x) for x in t.types if not isinstance(x, i.UnsetType)])
    if isinstance(t, i.LiteralType):
        return st.sampled_from(list(t.values))
    if isinstance(t, i.StrType):
        if t.pattern == validation.STREAM_PATTERN:
            return st.sampled_from(["us.tariff.fuzz.cn", "cn.tariff.fuzz.us", "case.fuzz",
                                    "us.tariff.ieepa-reciprocal.cn", "diplomacy.us-cn"])
        if t.pattern == validation.ID_PATTERN:
            return st.uuids().map(str)
        if t.pattern:
            return st.from_regex(t.pattern, fullmatch=True).filter(lambda s: "\n" not in s)
        hi = min(t.max_length or 40, 40)
        return TEXT.filter(lambda s: (t.min_length or 0) <= len(s.strip()) and len(s) <= hi)
    if isinstance(t, i.FloatType):
        lo = t.ge if t.ge is not None else -1e9
        hi = t.le if t.le is not None else 1e9
        return st.one_of(st.integers(int(lo), int(hi)),
                         st.floats(lo, hi, allow_nan=False, allow_infinity=False))
    if isinstance(t, i.IntType):
        return st.integers(-1000, 1000)
    if isinstance(t, i.BoolType):
        return st.booleans()
    if isinstance(t, i.DateType):
        return st.dates(dt.date(2018, 1, 1), dt.date(2031, 12, 31)).map(dt.date.isoformat)
    if isinstance(t, i.ListType):
        lo = t.min_length or 0
        hi = max(lo, 3) if t.max_length is None else min(t.max_length, max(lo, 3))
        return st.lists(strategy(t.item_type), min_size=lo, max_size=hi)
    if isinstance(t, i.DictType):  # hts_rates, mfn_rates: HTS prefix -> rate
        lo = t.min_length or 0
        return st.dictionaries(strategy(t.key_type), strategy(t.value_type), min_size=lo,
                               max_size=max(lo, 3))
    raise TypeError(f"no strategy for {t!r}: extend tests/test_fuzz_schema.py")


EVENT = strategy(msgspec.inspect.type_info(validation.Event))

HOSTILE = [float("nan"), float("inf"), 2 ** 70, -1, 5000, "20250601", "2025-02-30",
           "bell\u0007", "x" * 400, True, None, [], {}, {"deep": {"er": 1}}, "us.tariff.x.cn\n"]


@st.composite
def near_valid(draw):
    """A valid event with one hostile change: a value replaced, a key dropped or added."""
    ev = draw(EVENT)
    how = draw(st.sampled_from(["replace", "drop", "add", "set"]))
    if how == "replace":
        key = draw(st.sampled_from(sorted(ev)))
        ev[key] = draw(st.sampled_from(HOSTILE))
    elif how == "drop":
        ev.pop(draw(st.sampled_from(["stream", "type", "effective", "title", "source"])))
    elif how == "add":
        ev[draw(st.sampled_from(["colour", "Stream", "rate", "payload"]))] = 1
    else:
        ev["set"] = {draw(st.sampled_from(["rate", "status", "colour", "kind", "disputed"])):
                     draw(st.sampled_from(HOSTILE))}
    return ev


def _file(tmp_path, events) -> "os.PathLike":
    p = tmp_path / "fuzz.json"
    p.write_text(json.dumps({"events": events}, allow_nan=True), encoding="utf-8")
    return p


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(case=st.one_of(st.tuples(st.just("valid"), EVENT), st.tuples(st.just("near"),
                                                                   near_valid())))
def test_valid_events_pass_and_near_valid_ones_are_refused_with_their_field(case):
    kind, ev = case
    try:
        checked = validation.convert(ev, validation.Event, native_dates=False)
    except validation.Invalid as inv:
        assert kind == "near", f"a valid event was refused: {inv}"
        assert inv.describe() and (inv.path or "missing" in inv.message or inv.value)
        return
    try:
        validation.check_rules(checked)
    except validation.Invalid as inv:  # rules across fields are not in the structs
        assert inv.path and inv.message
    # a hostile value can still be valid where the schema allows it (True for `disputed`)


@pytest.fixture
def store(tmp_path):
    s = Store.create(f"sqlite:///{tmp_path / 'fuzz.db'}", seeds=True)
    yield s
    s.close()


@pytest.mark.slow
@settings(max_examples=STORE_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(events=st.lists(st.one_of(EVENT, near_valid()), min_size=1, max_size=4))
def test_files_from_the_schema_load_whole_or_not_at_all(store, tmp_path, events):
    path = _file(tmp_path, events)
    before = store.head()
    try:
        store.append(load_file(path))
    except EventValidationError as exc:
        assert store.head() == before, "a refused file wrote something"
        assert exc.file and exc.file.endswith("fuzz.json") or "fuzz.json" in str(exc)
        assert exc.field or exc.event, str(exc)
        return
    assert projections_match_rebuild(store)
    with store.reading() as r:
        for q in QUERIES[:18]:
            try:
                run(r, parse(q), q, Context(today=dt.date(2026, 1, 1)))
            except QueryError:
                assume(False)

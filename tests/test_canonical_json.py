"""The canonical encoder's fast path (msgspec) writes byte for byte what the `json` encoder
wrote before it, so every stored hash and content id stays what it was (issue 15)."""
from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timeline.errors import EventValidationError
from timeline.log.events import GENESIS_HASH, canonical_json, chain_hash, content_id, loads
from timeline.log.loader import load_paths
from timeline.resources import seeds_path
from timeline.store.append import EVENT_COLS


def _json_default(value):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def reference(value) -> str:
    """The encoder every stored hash was computed with before msgspec (kept here verbatim)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default, allow_nan=False)


floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [1e16, 1.5e16, 1e-5, 9.99e-5, 1e-4, -1e-7, 1e300, 5e-324, 0.1, 25.0, -0.0, 1e15])
scalars = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | floats
           | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8), inner,
        max_size=5), max_leaves=30)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_values)
def test_canonical_json_equals_the_json_encoder_on_generated_values(value):
    assert canonical_json(value) == reference(value)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_loads_reads_back_what_json_loads_reads(value):
    text = reference(value)
    got, want = loads(text), json.loads(text)
    assert got == want and json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


@pytest.mark.parametrize("value", [
    {"rate": 1e16}, [1e-05], {"a": [0.00001, "x"]}, -1.5e-7, 1.7976931348623157e308,
    (1, 2), {"d": dt.date(2020, 1, 2)}, {"t": dt.datetime(2020, 1, 2, 3, 4, 5, 6000)},
    {"t": dt.datetime(2020, 1, 2, tzinfo=dt.timezone.utc)}, {1: "int key"},
    {"text": "tab\there, nul \x00, del \x7f, line sep \u2028, quote \" and \\ and /"},
    {"é": 1, "e": 2, "Z": 3, "a": {"ß": [None, True, False]}},
], ids=repr)
def test_values_msgspec_writes_differently_take_the_json_path(value):
    """Exponent floats, tuples, dates and datetimes, non-text keys: same text as before."""
    assert canonical_json(value) == reference(value)


@pytest.mark.parametrize("value", [{"x": {1, 2}}, {"b": b"bytes"}, {"d": decimal.Decimal("1.5")},
                                   {"u": uuid.UUID(int=1)}], ids=repr)
def test_values_json_refused_are_still_refused(value):
    """msgspec would write sets, bytes, decimals and UUIDs; the canonical form never did."""
    with pytest.raises(TypeError):
        canonical_json(value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {"rate": float("-inf")},
                                 [1, {"x": float("nan")}]], ids=repr)
def test_non_finite_numbers_are_refused_not_written_as_null(bad):
    with pytest.raises(EventValidationError, match="non-finite"):
        canonical_json(bad)


def test_loads_still_reads_what_only_json_reads():
    """An earlier version may have stored NaN; msgspec refuses it, reading must not."""
    assert loads('{"a": NaN}')["a"] != loads('{"a": NaN}')["a"]
    assert loads("[1e400]") == [float("inf")]


def test_seed_hash_chain_and_content_ids_are_unchanged(seeded_store):
    """The stored chain of the bundled seeds, recomputed with the old encoder, is the
    stored one; so are the seeds' content ids."""
    offered = load_paths([seeds_path()])
    by_id = {ev.id: ev for ev in offered}
    prev = GENESIS_HASH
    with seeded_store.reading() as r:
        rows = list(r.iter_events())
    assert len(rows) == len(offered) > 100
    for stored in rows:
        ev = by_id[stored.id]
        row = {c: getattr(stored, c) for c in EVENT_COLS}
        row["payload"], row["source"] = reference(ev.payload), reference(ev.source)
        assert row["prev_hash"] == prev
        prev = chain_hash(prev, row)
        assert stored.hash == prev, stored.id
        body = reference({"stream": ev.stream, "type": ev.type, "effective": ev.effective,
                          "announced": ev.announced, "known": ev.known,
                          "payload": ev.payload, "source": ev.source})
        assert canonical_json(json.loads(body)) == body
        assert content_id(ev.with_id(None)) == ev.id


def test_plain_payloads_take_the_fast_path():
    """What events and states usually hold is encoded by msgspec, not sent back to json."""
    from timeline.log.events import _fast_canonical

    value = {"title": "Steel — 25 %", "set": {"rate": 25.0, "status": "in_force"},
             "affects": ["us.s232.steel"], "count": 3, "flag": True, "note": "line\nbreak"}
    assert _fast_canonical(value) == reference(value)
    assert _fast_canonical({"x": None}) == '{"x":null}'

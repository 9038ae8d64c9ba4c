"""One admission path (issue 27, part 3): each event is checked once per append, wherever it
comes from; what a file's loader admitted is what the store writes; one definition of the
same event serves every same-id check; one builder names the file, line and field.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from timeline.errors import EventValidationError
from timeline.log import validation
from timeline.log.events import (CheckedEvent, NewEvent, canonical_json, identity,
                                 identity_differences)
from timeline.log.loader import load_file, load_paths
from timeline.log.validation import admit, validate
from timeline.resources import seeds_path

from .conftest import run_cli

DEMO = {"stream": "us.tariff.demo.cn", "type": "imposed", "effective": "2025-03-01",
        "known": "2025-03-01", "title": "A demo tariff",
        "set": {"rate": 5, "imposer": "us", "target": "cn"}, "source": {"name": "demo"}}


def _file(tmp_path, name, *events):
    path = tmp_path / name
    path.write_text(json.dumps({"events": list(events)}), encoding="utf-8")
    return path


def _plain(ev: NewEvent) -> NewEvent:
    return NewEvent(ev.stream, ev.type, ev.effective, json.loads(json.dumps(ev.payload)),
                    dict(ev.source), ev.known, ev.announced, ev.id, ev.origin)


@pytest.fixture
def count_checks(monkeypatch):
    """How many times an event document is checked against the schema."""
    calls = []
    real = validation.convert

    def counting(doc, typ, **kw):
        calls.append(doc.get("stream") if isinstance(doc, dict) else None)
        return real(doc, typ, **kw)

    monkeypatch.setattr(validation, "convert", counting)
    return calls


def test_a_loaded_file_is_checked_once_per_event_not_twice(empty_store, tmp_path, count_checks):
    path = _file(tmp_path, "a.json", DEMO, dict(DEMO, effective="2025-04-01",
                                                 known="2025-04-01", type="amended",
                                                 title="Raised", set={"rate": 10}))
    events = load_paths([path])
    assert len(count_checks) == 2 and all(isinstance(e, CheckedEvent) for e in events)
    res = empty_store.append(events)
    assert len(res.appended) == 2
    assert len(count_checks) == 2  # the store took the loader's admission as it was


def test_the_seeds_are_checked_once_each_through_the_api(tmp_path, count_checks):
    import timeline

    n = len(load_paths([seeds_path()]))
    count_checks.clear()
    with timeline.init(tmp_path / "t.db") as tl:
        assert tl.head.position == n
    assert len(count_checks) == n


def test_an_event_built_in_python_is_checked_by_the_store(empty_store, count_checks):
    bad = NewEvent("us.tariff.demo.cn", "imposed", dt.date(2025, 3, 1),
                   {"title": "x", "set": {"rate": -5}}, {"name": "demo"},
                   known=dt.date(2025, 3, 1))
    with pytest.raises(EventValidationError, match=r"set\.rate"):
        empty_store.append([bad])
    assert empty_store.count() == 0 and len(count_checks) == 1


def test_a_payload_changed_after_loading_is_checked_again(empty_store, tmp_path):
    (ev,) = load_file(_file(tmp_path, "a.json", DEMO))
    ev.payload["set"]["rate"] = -5  # the dict is the caller's: it can change after the load
    with pytest.raises(EventValidationError, match=r"set\.rate"):
        empty_store.append([ev])
    assert empty_store.count() == 0


def test_what_is_stored_is_what_was_checked(empty_store, tmp_path):
    (ev,) = load_file(_file(tmp_path, "a.json", DEMO))
    ev.payload["set"]["rate"] = 7  # valid, and changed after the load: checked again
    (stored,) = empty_store.append([ev]).appended
    assert stored.payload["set"]["rate"] == 7
    with empty_store.reading() as r:
        row = r.state("us.tariff.demo.cn", "2025-03-02")
    assert row.state["rate"] == 7  # the fold saw the same payload the log holds


def test_a_checked_event_made_outside_admission_is_checked(empty_store):
    forged = CheckedEvent("us.tariff.demo.cn", "imposed", dt.date(2025, 3, 1),
                          {"title": "x", "set": {"rate": 5000}}, {"name": "demo"},
                          dt.date(2025, 3, 1), None, None, None,
                          canonical_json({"title": "x", "set": {"rate": 5000}}),
                          canonical_json({"name": "demo"}), object())
    with pytest.raises(EventValidationError, match=r"set\.rate"):
        empty_store.append([forged])
    unsealed = dataclasses.replace(forged, seal=None)
    with pytest.raises(EventValidationError, match=r"set\.rate"):
        admit(unsealed)


def test_a_new_id_on_a_checked_event_makes_it_unchecked(tmp_path):
    (ev,) = load_file(_file(tmp_path, "a.json", DEMO))
    other = ev.with_id("not an id!")
    assert type(other) is NewEvent
    with pytest.raises(EventValidationError, match="'id'"):
        admit(other)


def test_what_the_loader_admits_the_schema_admits(tmp_path):
    # the loader checks a file's own document (TOML dates as dates); the store checks the
    # stored document: for every seed event both must agree, or a loaded event would be
    # one the store alone refuses
    for ev in load_paths([seeds_path()]):
        plain = _plain(ev)
        validate(plain)
        assert identity(plain) == identity(ev)
        assert ev.payload_json == canonical_json(ev.payload)


def test_one_definition_of_the_same_event():
    a = NewEvent("us.tariff.demo.cn", "imposed", dt.date(2025, 3, 1), {"title": "x"},
                 {"name": "demo"}, known=dt.date(2025, 3, 2), id="e1")
    assert identity_differences(a, identity(dataclasses.replace(a, origin="f:9"))) == []
    b = dataclasses.replace(a, payload={"title": "y"}, known=None)
    assert identity_differences(b, identity(a)) == ["known", "payload"]
    # against the log, a `known` left out matches the date the log assigned
    assert identity_differences(b, identity(a), stored=True) == ["payload"]


def test_one_id_twice_in_a_load_names_both_places_and_the_fields(seeded_db, tmp_path):
    ident = "01900000-0000-7000-8000-00000000abcd"
    a = _file(tmp_path, "a.json", dict(DEMO, id=ident))
    b = _file(tmp_path, "b.json", dict(DEMO, id=ident, title="Other"))
    r = run_cli("load", str(a), str(b), "--db", str(seeded_db))
    assert r.returncode == 1
    assert "b.json:" in r.stderr and "also used at" in r.stderr and "a.json:" in r.stderr
    assert "payload differ" in r.stderr and "Traceback" not in r.stderr
    # the same event offered twice is one event
    r = run_cli("load", str(a), str(a), "--db", str(seeded_db))
    assert r.returncode == 0, r.stderr


def test_a_refusal_names_the_file_line_and_field_from_either_door(empty_store, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"events": [\n' + json.dumps(DEMO) + ",\n"
                    + json.dumps(dict(DEMO, set={"rate": "high"})) + "\n]}", encoding="utf-8")
    with pytest.raises(EventValidationError) as loaded:
        load_paths([path])
    assert (loaded.value.file, loaded.value.line, loaded.value.field) == (str(path), 3,
                                                                          "set.rate")
    assert loaded.value.event.startswith("#2")
    ev = NewEvent("us.tariff.demo.cn", "imposed", dt.date(2025, 3, 1),
                  {"title": "x", "set": {"rate": "high"}}, {"name": "demo"},
                  known=dt.date(2025, 3, 1), origin="notebook:12")
    with pytest.raises(EventValidationError) as appended:
        empty_store.append([ev])
    e = appended.value
    assert (e.file, e.line, e.field) == ("notebook", 12, "set.rate")
    assert e.event == "us.tariff.demo.cn imposed 2025-03-01"
    # an API caller may pass anything: the label still prints
    odd = NewEvent(5, None, "soon", {}, {"name": "demo"})  # type: ignore[arg-type]
    with pytest.raises(EventValidationError) as odd_err:
        empty_store.append([odd])
    assert odd_err.value.event == "? ? soon"


def test_a_pretty_printed_json_file_names_the_line_the_event_starts_on(tmp_path):
    path = tmp_path / "pretty.json"
    bad = dict(DEMO, note="a { brace [ in \" text", set={"rate": "high"})
    path.write_text(json.dumps({"events": [DEMO, bad]}, indent=2), encoding="utf-8")
    want = path.read_text().splitlines().index("    {", 3) + 1  # the second event's brace
    with pytest.raises(EventValidationError) as err:
        load_paths([path])
    assert (err.value.line, err.value.field) == (want, "set.rate")

"""Event-file fuzzing: mutated TOML and JSON event files never write anything unless valid.

Every mutation of a valid file either loads and appends cleanly, or fails with an
EventValidationError that names the file and the field (or, for a syntax error, the line),
and leaves the log's event count and head hash unchanged. The same holds through the real
`timeline load` command: exit 1, one clear message, no traceback.

TIMELINE_FUZZ_EVENT_EXAMPLES (default 150; TIMELINE_LONG_TESTS=1 raises it to 5000) sets
the in-process example count.
"""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timeline.errors import EventValidationError
from timeline.log.loader import load_paths
from timeline.store.store import Store

from .conftest import run_cli

LONG = os.environ.get("TIMELINE_LONG_TESTS") == "1"
EXAMPLES = int(os.environ.get("TIMELINE_FUZZ_EVENT_EXAMPLES") or (5000 if LONG else 150))
CLI_EXAMPLES = 150 if LONG else 12

BASE_TOML = '''\
[[events]]
stream = "us.tariff.fuzz.cn"
type = "imposed"
effective = 2025-03-01
announced = 2025-02-27
known = 2025-02-27
title = "Fuzz tariff imposed"
set = { rate = 10, status = "in_force", authority = "IEEPA", scope = "all goods" }
schedule = [{ on = 2025-06-01, set = { rate = 20 } }]

[events.source]
name = "Fuzz Gazette"
file = "sources/fuzz.txt"
quote = "a tariff of 10 percent"

[[events]]
stream = "us.tariff.fuzz.cn"
type = "amended"
effective = 2025-04-01
known = 2025-04-01
title = "Fuzz tariff raised"
set = { rate = 15 }
source = { name = "Fuzz Gazette", published = 2025-04-01 }

[[events]]
stream = "case.fuzz"
type = "ruling"
effective = 2025-05-01
known = 2025-05-01
title = "Court rules on the fuzz tariff"
affects = ["us.tariff.fuzz.cn", "us.tariff.ieepa-reciprocal.cn"]
affects_set = { legal_status = "ruled_unlawful" }
source = { name = "Fuzz Court", url = "https://example.org/ruling" }
'''
BASE_JSON = json.dumps(tomllib.loads(BASE_TOML), indent=1, default=str)

JUNK = ['"', "'", "[", "]", "{", "}", "=", ",", "", " ", "\\", "2025-13-01", "2025-02-30",
        "0001-01-01", "9999-12-31", "2025-01-01T10:00:00", "-1", "1e400", "nan", "true",
        "null", '"in_force"', '"lifted"', '"bogus"', "[]", "{}", '"US.Tariff.X"',
        '"us.tariff.fuzz.cn"', '"no.such.measure"', '"retraction"', '"correction"',
        '"imposed"', '["x"]', "{ rate = \"ten\" }", "{ status = 1 }", '"\\u0000"',
        '"' + "x" * 300 + '"', "\ufeff", "\u2028", "\x00", "é", "[[events]]"]
KEYS = ["stream", "type", "effective", "known", "announced", "title", "set", "unset",
        "schedule", "affects", "affects_set", "supersedes", "disputed", "note", "precision",
        "source", "id", "bogus", "events", "name", "quote", "file", "rate", "status"]


def mutate(text: str, ops: list[tuple]) -> str:
    lines = text.split("\n")
    for kind, a, b, junk in ops:
        if not lines:
            lines = [""]
        i, j = a % len(lines), b % len(lines)
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "value":
            key, sep, _ = lines[i].partition("=") if "=" in lines[i] else (lines[i], "", "")
            lines[i] = f"{key}= {junk}" if sep else lines[i] + junk
        elif kind == "key":
            _, sep, value = lines[i].partition("=")
            lines[i] = f"{junk} ={value}" if sep else junk
        elif kind == "insert":
            pos = b % (len(lines[i]) + 1)
            lines[i] = lines[i][:pos] + junk + lines[i][pos:]
        elif kind == "truncate":
            text = "\n".join(lines)
            return text[: b % (len(text) + 1)]
    return "\n".join(lines)


ops_strategy = st.lists(st.tuples(
    st.sampled_from(["delete", "duplicate", "swap", "value", "key", "insert", "truncate"]),
    st.integers(0, 200), st.integers(0, 200),
    st.one_of(st.sampled_from(JUNK), st.sampled_from(KEYS), st.text(max_size=12))),
    min_size=1, max_size=3)


def json_mutations():
    """Structural mutations of the JSON form: a field replaced, removed or added."""
    value = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                                   st.text(max_size=20), st.sampled_from(JUNK)),
                         lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                 st.dictionaries(st.sampled_from(KEYS), inner,
                                                                 max_size=3)),
                         max_leaves=6)
    return st.lists(st.tuples(st.integers(0, 2), st.sampled_from(KEYS),
                              st.one_of(st.just("<delete>"), value)), min_size=1, max_size=3)


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "fuzz.txt").write_text(
        "The gazette reported a tariff of 10 percent on all goods.\n", encoding="utf-8")
    return tmp_path


def check_one(store: Store, path: Path) -> str:
    """Load and append one file; 'ok' or 'rejected', asserting the failure contract."""
    before = (store.count(), store.head())
    try:
        events = load_paths([path])
        store.append(events)
        return "ok"
    except EventValidationError as exc:
        assert (store.count(), store.head()) == before, "a rejected file wrote something"
        assert exc.file and Path(exc.file).name == path.name, (str(exc), exc.file)
        msg = str(exc)
        assert path.name in msg
        assert exc.field or exc.line or "syntax error" in msg or "not UTF-8" in msg, msg
        return "rejected"


FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def test_base_files_are_valid(seeded_store, workdir):
    for name, body in (("base.toml", BASE_TOML), ("base.json", BASE_JSON)):
        (workdir / name).write_text(body, encoding="utf-8")
    assert check_one(seeded_store, workdir / "base.toml") == "ok"
    assert check_one(seeded_store, workdir / "base.json") == "ok"  # same ids: appends nothing
    assert seeded_store.verify()


@pytest.mark.slow
@FUZZ
@given(ops=ops_strategy, as_json=st.booleans())
def test_mutated_event_files_write_nothing_or_load_cleanly(seeded_store, workdir, ops, as_json):
    path = workdir / ("mutant.json" if as_json else "mutant.toml")
    path.write_text(mutate(BASE_JSON if as_json else BASE_TOML, ops), encoding="utf-8",
                    errors="surrogatepass")
    check_one(seeded_store, path)


@pytest.mark.slow
@FUZZ
@given(changes=json_mutations())
def test_structurally_mutated_json_writes_nothing_or_loads_cleanly(seeded_store, workdir,
                                                                   changes):
    doc = json.loads(BASE_JSON)
    for n, key, value in changes:
        ev = doc["events"][n]
        if value == "<delete>":
            ev.pop(key, None)
        elif key in ("name", "quote", "file") and isinstance(ev.get("source"), dict):
            ev["source"][key] = value
        else:
            ev[key] = value
    path = workdir / "structural.json"
    path.write_text(json.dumps(doc, allow_nan=True), encoding="utf-8")
    check_one(seeded_store, path)


@pytest.mark.slow
@settings(max_examples=CLI_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=ops_strategy, as_json=st.booleans())
def test_timeline_load_on_mutated_files(seeded_db, workdir, ops, as_json):
    path = workdir / ("cli.json" if as_json else "cli.toml")
    path.write_text(mutate(BASE_JSON if as_json else BASE_TOML, ops), encoding="utf-8",
                    errors="surrogatepass")
    store = Store.open(str(seeded_db), readonly=True)
    before = (store.count(), store.head())
    store.close()
    r = run_cli("load", "--db", str(seeded_db), str(path))
    assert "Traceback" not in r.stderr, r.stderr
    if r.returncode == 0:
        assert r.stdout.startswith("appended")
        return
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("error: ") and path.name in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3, r.stderr  # one message, not a dump
    store = Store.open(str(seeded_db), readonly=True)
    assert (store.count(), store.head()) == before
    store.close()


def test_non_text_citation_file_is_rejected(seeded_store, workdir):
    doc = json.loads(BASE_JSON)
    doc["events"][0]["source"]["file"] = True
    path = workdir / "file-true.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert check_one(seeded_store, path) == "rejected"


def test_duplicate_affects_is_a_validation_error(seeded_store, workdir):
    doc = json.loads(BASE_JSON)
    doc["events"][2]["affects"] = ["us.tariff.ieepa-reciprocal.cn"] * 2
    path = workdir / "dup.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(EventValidationError, match="more than once"):
        seeded_store.append(load_paths([path]))


def test_fuzz_outcomes_are_mixed(seeded_store, workdir):
    """The mutation strategy produces both loadable and refused files (else the fuzz tests
    above would be testing only one path): checked on its own sample, in any test order."""
    outcomes: dict[str, int] = {}

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(ops=ops_strategy, as_json=st.booleans())
    def sample(ops, as_json):
        path = workdir / ("mixed.json" if as_json else "mixed.toml")
        path.write_text(mutate(BASE_JSON if as_json else BASE_TOML, ops), encoding="utf-8",
                        errors="surrogatepass")
        outcome = check_one(seeded_store, path)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    sample()
    assert outcomes.get("rejected", 0) > 0 and outcomes.get("ok", 0) > 0, outcomes

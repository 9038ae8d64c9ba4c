"""Event files: every kind of bad input is refused with file, event and field named, and
nothing from that invocation is written."""
from __future__ import annotations

import textwrap

import pytest
from sqlalchemy import text

from timeline.store.store import Store

from .conftest import run_cli


@pytest.fixture(autouse=True)
def _known_dates_in_2030(monkeypatch):
    """This file's events are known in 2030, later than admission allows today (issue 24):
    the margin is widened for them; tests/test_reliability2.py keeps the bound itself."""
    monkeypatch.setenv("TIMELINE_KNOWN_MARGIN_DAYS", "10000")


GOOD = """
[[events]]
stream = "us.tariff.demo.cn"
type = "imposed"
effective = 2030-01-01
known = 2029-12-01
title = "A demo tariff"
[events.set]
rate = 5
scope = "all goods"
[events.source]
name = "demo"
"""


def write(tmp_path, name, body):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body), encoding="utf-8")
    return p


def state(db):
    s = Store.open(str(db))
    with s.reading() as c:
        out = (s.head(), c.conn.execute(text("SELECT COUNT(*) FROM intervals")).scalar())
    s.close()
    return out


BAD = {
    "toml-syntax": ("[[events]\nstream = 1", "TOML syntax error", None),
    "unknown-type": (GOOD.replace('type = "imposed"', 'type = "imposd"'),
                     "unknown event type 'imposd'", "type"),
    "missing-field": (GOOD.replace('title = "A demo tariff"\n', ""), "missing", "title"),
    "bad-date": (GOOD.replace("effective = 2030-01-01", 'effective = "1st of Jan"'),
                 "must be a date", "effective"),
    "bad-rate": (GOOD.replace("rate = 5", 'rate = "five"'), "must be a number", "set.rate"),
    "before-measure-exists": (GOOD + GOOD.replace('type = "imposed"', 'type = "amended"')
                              .replace("2030-01-01", "2029-06-01"),
                              "before measure 'us.tariff.demo.cn' exists", "effective"),
    "unknown-affects": (GOOD.replace('[events.set]', 'affects = ["us.tariff.nope.cn"]\n'
                                     '[events.affects_set]\nlegal_status = "stayed"\n'
                                     '[events.set]'), "unknown measure 'us.tariff.nope.cn'",
                        "affects"),
    "unknown-supersedes": (GOOD + """
[[events]]
stream = "us.tariff.demo.cn"
type = "retraction"
effective = 2030-02-01
known = 2030-02-01
title = "withdrawn"
supersedes = ["0190a1b2-0000-7000-8000-000000000000"]
[events.source]
name = "demo"
""", "unknown event id", "supersedes"),
    "no-source": (GOOD.split("[events.source]")[0], "missing", "source"),
    "bad-quote": (GOOD.replace('name = "demo"', 'name = "demo"\nfile = "sources/x.txt"\n'
                               'quote = "never said"'), "not found", "source.file"),
    "unknown-key": (GOOD.replace('title =', 'colour = "red"\ntitle ='), "unknown key", "colour"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_event_file_writes_nothing(seeded_db, tmp_path, case):
    body, message, field = BAD[case]
    good = write(tmp_path, "0-good.toml", GOOD.replace("demo", "first"))
    bad = write(tmp_path, "1-bad.toml", body)
    before = state(seeded_db)
    r = run_cli("load", "--db", str(seeded_db), str(good), str(bad))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "1-bad.toml" in r.stderr and message in r.stderr
    if field:
        assert f"field {field!r}" in r.stderr
    assert state(seeded_db) == before  # not even the good file's event was written


def test_error_names_the_line_of_the_event(seeded_db, tmp_path):
    bad = write(tmp_path, "bad.toml", GOOD + GOOD.replace('type = "imposed"', 'type = "nope"'))
    r = run_cli("load", "--db", str(seeded_db), str(bad))
    line = [i + 1 for i, l in enumerate(bad.read_text().splitlines()) if "[[events]]" in l][1]
    assert f"bad.toml:{line}" in r.stderr


def test_load_is_idempotent(seeded_db, tmp_path):
    good = write(tmp_path, "good.toml", GOOD)
    first = run_cli("load", "--db", str(seeded_db), str(good))
    assert first.returncode == 0 and "appended 1 events" in first.stdout
    head = state(seeded_db)
    again = run_cli("load", "--db", str(seeded_db), str(good))
    assert again.returncode == 0 and "appended 0 events (1 already in the log)" in again.stdout
    assert state(seeded_db) == head


def test_json_event_files_load_too(seeded_db, tmp_path):
    import json

    body = {"events": [{"stream": "us.tariff.json.cn", "type": "imposed",
                        "effective": "2030-01-01", "known": "2030-01-01", "title": "via JSON",
                        "set": {"rate": 1}, "source": {"name": "demo"}}]}
    p = tmp_path / "e.json"
    p.write_text(json.dumps(body))
    r = run_cli("load", "--db", str(seeded_db), str(p))
    assert r.returncode == 0, r.stderr
    p.write_text(json.dumps(body)[:-3])
    r = run_cli("load", "--db", str(seeded_db), str(p))
    assert r.returncode == 1 and "JSON syntax error" in r.stderr and "e.json" in r.stderr


def test_a_json_key_given_twice_is_refused_not_kept_last(seeded_db, tmp_path):
    # issue 24, item 5: `"rate": 5, "rate": 999` must not quietly load as 999 (TOML refuses
    # a repeated key itself)
    path = tmp_path / "dup.json"
    path.write_text('{"events": [{"stream": "us.tariff.x.cn", "stream": "us.tariff.y.cn", '
                    '"type": "imposed", "effective": "2025-01-01", "known": "2025-01-01", '
                    '"title": "t", "set": {"rate": 5, "rate": 999}, '
                    '"source": {"name": "n"}}]}', encoding="utf-8")
    before = seeded_db.read_bytes()
    r = run_cli("load", "--db", str(seeded_db), str(path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "dup.json" in r.stderr and "duplicate key 'rate'" in r.stderr, r.stderr
    assert seeded_db.read_bytes() == before
    path.write_text(path.read_text(encoding="utf-8").replace('"rate": 5, ', ""),
                    encoding="utf-8")
    r = run_cli("load", "--db", str(seeded_db), str(path))
    assert r.returncode == 1 and "duplicate key 'stream'" in r.stderr, r.stderr
    assert seeded_db.read_bytes() == before


def test_a_byte_order_mark_is_not_part_of_the_file(seeded_db, tmp_path):
    from timeline.resources import seeds_path

    seed = seeds_path() / "2025-04-09-cn-retaliation-84.toml"
    for suffix, body in ((".toml", seed.read_text(encoding="utf-8")),):
        path = tmp_path / ("bom" + suffix)
        path.write_text("\ufeff" + body, encoding="utf-8")
        r = run_cli("load", "--db", str(seeded_db), "--dry-run", "--sources",
                    str(seeds_path()), str(path))
        assert r.returncode == 0, r.stderr

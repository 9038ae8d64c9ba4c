"""`timeline serve` reads and never writes, escapes what it echoes and refuses abuse clearly.

Issue 26, items 4 and 5: every page and endpoint (and every refused method) leaves the store
as it was — head hash, and on SQLite the file's bytes and mtime; hostile parameters (script
in a query, a huge query, bad dates, unknown products) get a 400 whose message is escaped.
"""
from __future__ import annotations

import hashlib
import html
import os
from pathlib import Path
from urllib.parse import quote

import pytest

from .backends import backend, make_db  # noqa: F401 - fixtures
from .serve_client import client

EVERY_URL = [
    "/", "/?date=2025-06-12&known=2025-05-01", "/ask", "/ask?q=" + quote("events limit 3"),
    "/ask?q=" + quote("state of us.tariff.* as of 2025-05-14") + "&known=2025-04-01&explain=1",
    "/product", "/product?p=smartphones&on=2025-04-15&known=2025-04-10", "/product?p=8471",
    "/measure", "/measure?id=us.tariff.ieepa-reciprocal.cn&known=2025-06-10",
    "/events", "/events?type=imposed&stream=us.*&known_from=2025-01-01&known_to=2025-12-31",
    "/api/query?q=" + quote("total tariff by us on cn as of 2025-04-10"),
    "/api/query?format=csv&q=" + quote("history of cn.tariff.retaliatory.us"),
    "/api/query?q=" + quote("state of x"), "/api/complete?q=state+of+us",
    "/sql?q=" + quote("SELECT COUNT(*) FROM v_events"),
    "/api/sql?q=" + quote("DELETE FROM events"), "/api/sql?q=" + quote("DROP VIEW v_events"),
    "/api/sql?q=" + quote("INSERT INTO events (id) VALUES ('x')"),
    "/static/serve.js", "/static/serve.css", "/nothing",
]


def _sqlite_file(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _fingerprint(url: str) -> tuple:
    import timeline

    with timeline.open(url, readonly=True) as tl:
        head = tl.head
    path = _sqlite_file(url)
    if path is None:
        return head.position, head.hash
    files = sorted(p.name for p in path.parent.iterdir())
    return (head.position, head.hash, hashlib.sha256(path.read_bytes()).hexdigest(),
            os.stat(path).st_mtime_ns, files)


def test_nothing_the_server_does_writes_to_the_store(make_db):
    url = make_db(seeded=True)
    before = _fingerprint(url)
    c, tl = client(url, allow_sql=True)
    try:
        for path in EVERY_URL:
            assert c.get(path).status_code in (200, 400, 404), path
            for method in ("POST", "PUT", "DELETE"):
                assert c.request(method, path).status_code == 405
    finally:
        c.close()
        tl.close()
    assert _fingerprint(url) == before


@pytest.fixture
def served(make_db):
    c, tl = client(make_db(seeded=True))
    yield c
    c.close()
    tl.close()


def test_script_in_a_query_is_escaped(served):
    attack = "<script>alert(1)</script>"
    for path in ("/ask?q=" + quote(attack), "/ask?q=" + quote(f"events where title contains "
                                                            f"'{attack}'")):
        r = served.get(path)
        assert r.status_code in (200, 400)
        assert attack not in r.text and "<script>alert" not in r.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    api = served.get("/api/query?q=" + quote(attack))
    assert api.status_code == 400 and api.headers["content-type"].startswith("application/json")
    # a quote that closes the attribute, a tag in a product name, a javascript: source
    r = served.get("/product?p=" + quote('"><img src=x onerror=alert(1)>'))
    assert r.status_code == 400 and "<img" not in r.text and "&lt;img" in r.text


def test_huge_queries_are_refused_clearly(served):
    r = served.get("/ask?q=" + "a" * 20_000)
    assert r.status_code == 400 and "20,000 characters, more than 10,000" in r.text
    assert len(r.text) < 10_000  # the refusal does not echo the whole query back
    api = served.get("/api/query?q=" + "state of x " * 1100)
    assert api.json() == {"error": "error: parameter q: 12,100 characters, more than 10,000"}
    assert api.status_code == 400


@pytest.mark.parametrize("path, words", [
    ("/product?p=smartphones&on=2025-13-45", "parameter on: invalid date '2025-13-45'"),
    ("/?date=someday", "parameter date: invalid date 'someday'"),
    ("/ask?q=events&known=04/05/2025", "parameter known: invalid date"),
    ("/events?known_from=2025-02-30", "parameter known_from: invalid date"),
    ("/measure?id=us.tariff.ieepa-reciprocal.cn&known=" + "9" * 50, "parameter known"),
    ("/product?p=85171&on=2025-04-15", "is not an HTS code"),
    ("/product?p=unicorns", "unknown product group 'unicorns'"),
    ("/measure?id=" + quote("us.tariff.*"), "is not a measure id"),
    ("/events?stream=" + quote("us.tariff.* where 1"), "is not a measure id or glob"),
    ("/api/query?q=events&as_of=not-a-date", "parameter as_of: invalid date"),
])
def test_bad_parameters_are_a_clear_400(served, path, words):
    r = served.get(path)
    assert r.status_code == 400, (path, r.text[:500])
    assert words in html.unescape(r.text), r.text[:3000]
    assert "Traceback" not in r.text


def test_only_this_machines_names_are_served_when_bound_to_loopback(make_db):
    c, tl = client(make_db(seeded=True), trusted_hosts=["127.0.0.1", "localhost"])
    try:
        assert c.get("/ask", headers={"host": "127.0.0.1:8765"}).status_code == 200
        # a DNS-rebinding page names its own host: refused
        assert c.get("/ask", headers={"host": "attacker.example"}).status_code == 400
    finally:
        c.close()
        tl.close()


def test_a_store_that_fails_is_a_503_and_a_refused_write_a_400():
    from timeline.errors import ReadOnlyError, StoreError
    from timeline.surfaces.serve.replies import error_json, status_of

    stopped = StoreError("db: statement stopped after 30 s (the --timeout); narrow the query")
    assert status_of(stopped) == 503 and status_of(ReadOnlyError("DELETE refused")) == 400
    reply = error_json(stopped)
    assert reply.status_code == 503
    assert reply.body == (b'{"error": "error: db: statement stopped after 30 s (the --timeout); '
                          b'narrow the query"}\n')

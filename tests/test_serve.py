"""`timeline serve` (issue 26): every page and the JSON API, in process, on both backends.

The pages are permalinks (the whole question in the URL); /api/query gives exactly what
`timeline query --format json` prints, and its errors are the CLI's messages as JSON.
"""
from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

import timeline

from .backends import backend, make_db  # noqa: F401 - fixtures
from .conftest import run_cli
from .serve_client import client

STATE = "state of us.tariff.ieepa-reciprocal.cn as of 2025-08-13"


@pytest.fixture
def served(make_db):
    url = make_db(seeded=True)
    c, tl = client(url, allow_sql=True)
    yield c, url
    c.close()
    tl.close()


def get(c, path: str, status: int = 200):
    r = c.get(path)
    assert r.status_code == status, (path, r.status_code, r.text[:2000])
    return r


def text_of(html: str, element_id: str) -> str:
    """The text inside the element with this id (tags dropped)."""
    m = re.search(rf'id="{re.escape(element_id)}"[^>]*>(.*?)</', html, re.S)
    assert m, element_id
    return re.sub(r"<[^>]+>", "", m.group(1)).strip()


def test_home_is_the_briefing_for_a_date(served):
    c, _ = served
    html = get(c, "/?date=2025-06-12").text
    for section in ("headline", "changes", "coming-up"):
        assert f'<section id="{section}"' in html
    assert "Briefing for 2025-06-12" in html
    assert "30 %" in html  # the US all-goods total of 12 June 2025
    assert 'href="/product?p=smartphones&amp;on=2025-06-12"' in html
    then = get(c, "/?date=2025-06-12&known=2025-04-01").text
    assert "as known on 2025-04-01" in then
    assert get(c, "/").text.count("Briefing for 2026-01-01") == 2  # today: title and heading


def test_ask_answers_as_a_table_with_horizon_and_links(served):
    c, _ = served
    html = get(c, "/ask?q=" + quote(STATE)).text
    assert 'id="answer-table"' in html and "<td>10</td>" in html
    assert "known through 2026-06-22 (knowledge horizon)" in html
    assert f'href="/api/query?q={quote(STATE, safe="").replace("%20", "+")}"' in html
    assert "format=csv" in html and 'id="explain-link"' in html
    # the known-on control fills in a query's missing `known on`, as the REPL's \known
    then = get(c, "/ask?q=" + quote(STATE) + "&known=2025-06-10").text
    assert "<td>34</td>" in then
    explained = get(c, "/ask?q=" + quote(STATE) + "&explain=1").text
    assert "PLAN" in explained and 'id="answer-text"' in explained
    warned = get(c, "/ask?q=" + quote("state of us.tariff.* as of 2027-01-01")).text
    assert "warning: as of 2027-01-01 is after the knowledge horizon" in warned
    assert 'id="answer-table"' not in get(c, "/ask").text  # the empty form


def test_product_lookup_moves_with_both_dates(served):
    c, _ = served
    now = get(c, "/product?p=smartphones&on=2025-04-15").text
    then = get(c, "/product?p=smartphones&on=2025-04-15&known=2025-04-10").text
    assert text_of(now, "total") == "20" and text_of(then, "total") == "145"
    assert "exempt: Electronics memorandum (9903.01.32)" in now
    assert 'class="not-applies"' in now and 'class="applies"' in now
    for html in (now, then):
        assert html.count("<svg") >= 2 and 'class="after-horizon"' in html
        assert 'type="range"' in html and 'min="2018-' in html and 'max="2026-' in html
    assert 'stroke-dasharray="6 4"' in then  # the knowledge overlay, only when asked
    assert 'stroke-dasharray="6 4"' not in now
    code = get(c, "/product?p=8517.13.00&on=2025-04-15").text
    assert text_of(code, "total") == "20"
    assert 'id="product-form"' in get(c, "/product").text


def test_measure_page_shows_history_chart_and_sources(served):
    c, _ = served
    html = get(c, "/measure?id=us.tariff.ieepa-reciprocal.cn").text
    assert 'id="history-table"' in html and "<svg" in html
    assert "<blockquote>" in html  # the events' quotes
    assert re.search(r'<a href="https://[^"]+" rel="noopener noreferrer"', html)
    known = get(c, "/measure?id=us.tariff.ieepa-reciprocal.cn&known=2025-06-10").text
    assert "History as known on 2025-06-10" in known and 'stroke-dasharray="6 4"' in known
    listing = get(c, "/measure").text
    assert 'href="/measure?id=us.tariff.ieepa-reciprocal.cn"' in listing
    gone = get(c, "/measure?id=us.tariff.nothing-here", 404).text
    assert "unknown measure" in gone


def test_events_filter_by_type_stream_and_known_dates(served):
    c, _ = served
    every = get(c, "/events").text
    n_all = int(text_of(every, "event-count"))
    assert n_all > 200
    imposed = get(c, "/events?type=imposed&stream=us.tariff.*").text
    n = int(text_of(imposed, "event-count"))
    assert 0 < n < n_all
    assert imposed.count("· imposed ·") == n
    assert "events for us.tariff.* where type = imposed" in imposed
    window = get(c, "/events?known_from=2025-04-01&known_to=2025-04-30").text
    knowns = re.findall(r"known (\d{4}-\d\d-\d\d) ·", window)
    assert knowns and all("2025-04-01" <= k <= "2025-04-30" for k in knowns)
    bad = get(c, "/events?type=bogus", 400).text
    assert "is not an event type" in bad


@pytest.mark.parametrize("q", [
    STATE,
    "state of us.tariff.* as of 2025-05-14",
    "total tariff by us on cn as of 2025-04-10",
    "tariff on smartphones from cn as of 2025-04-15 known on 2025-04-10",
    "history of cn.tariff.retaliatory.us",
    "events where rate > 20 limit 3",
    "measures where status = in_force and imposer = us",
])
def test_api_query_is_exactly_the_cli_json(make_db, q):
    url = make_db(seeded=True)
    c, tl = client(url, today=None)  # the real today, as the CLI's
    r = get(c, "/api/query?q=" + quote(q))
    assert r.headers["content-type"].startswith("application/json")
    cli = run_cli("--db", url, "query", q, "--format", "json")
    assert cli.returncode == 0, cli.stderr
    assert r.text == cli.stdout
    csv = get(c, "/api/query?format=csv&q=" + quote(q))
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.content.decode() == run_cli("--db", url, "query", q, "--format", "csv").stdout \
        .replace("\n", "\r\n")
    c.close()
    tl.close()


@pytest.mark.parametrize("q", ["state of us.tariff.ieepa-fentanyl.cn as off 2025-05-28",
                               "state of us.tariff.ieepa-reciprocal.cm", "tariff on unicorns"
                               " from cn", "events where rate > 'x"])
def test_api_errors_are_the_cli_messages_with_the_caret(served, q):
    c, url = served
    r = get(c, "/api/query?q=" + quote(q), 400)
    body = r.json()
    cli = run_cli("--db", url, "query", q, "--format", "json")
    assert cli.returncode == 1
    assert body["error"] == cli.stderr.rstrip("\n")
    assert "^" in body["error"] and body["line"] == 1 and body["column"] >= 1
    assert body["error"].splitlines()[2].index("^") - 2 == body["column"] - 1


def test_statuses_of_the_api_and_pages(served):
    c, _ = served
    assert get(c, "/api/query", 400).json()["error"].startswith("error: parameter q:")
    assert "format" in get(c, "/api/query?q=events&format=xml", 400).json()["error"]
    assert get(c, "/api/nothing", 404).json() == {"error": "error: no page /api/nothing"}
    assert "no page /nothing" in get(c, "/nothing", 404).text
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", "/api/query?q=events", "/nothing"):
            r = c.request(method, path)
            assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD", (method, path)
    assert c.head("/ask?q=events").status_code == 200


def test_completion_is_the_repls_engine(served):
    from timeline.surfaces.completion import load_catalogue, suggest

    c, url = served
    import timeline

    with timeline.open(url, readonly=True) as tl, tl.snapshot() as s:
        cat = load_catalogue(s)
    for text in ("", "sta", "state of us.tariff.ieepa-r", "tariff on sm",
                 "events where type = "):
        body = get(c, "/api/complete?q=" + quote(text)).json()
        assert body["suggestions"] == suggest(text, cat)[:40], text
    body = get(c, "/api/complete?q=" + quote("state of us.tariff.ieepa-r")).json()
    assert body["word"] == "us.tariff.ieepa-r"
    assert "us.tariff.ieepa-reciprocal.cn" in body["suggestions"]
    assert body["titles"]["us.tariff.ieepa-reciprocal.cn"].startswith("'Liberation Day'")


def test_sql_only_with_allow_sql(served, make_db):
    c, url = served
    page = get(c, "/sql?q=" + quote("SELECT COUNT(*) AS n FROM v_events")).text
    with timeline.open(url) as tl:
        count = tl.head.position
    assert f"<td>{count}</td>" in page
    api = get(c, "/api/sql?q=" + quote("SELECT stream FROM v_events ORDER BY position LIMIT 2"))
    assert api.json()["columns"] == ["stream"] and len(api.json()["rows"]) == 2
    refused = get(c, "/api/sql?q=" + quote("DELETE FROM events"), 400).json()
    assert "DELETE" in refused["error"] and "refused" in refused["error"]
    plain, tl = client(url)
    try:
        assert plain.get("/sql?q=SELECT+1").status_code == 404
        assert plain.get("/api/sql?q=SELECT+1").status_code == 404
        assert 'href="/sql"' not in plain.get("/").text
    finally:
        plain.close()
        tl.close()


def test_security_headers_and_no_inline_script(served):
    c, _ = served
    for path in ("/", "/ask?q=events+limit+2", "/product?p=steel", "/api/query?q=events",
                 "/nothing", "/static/serve.js"):
        r = c.get(path)
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        if r.headers["content-type"].startswith("text/html"):
            assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), path
            assert " style=" not in r.text and "<style" not in r.text, path
            assert not re.search(r"\son[a-z]+=", r.text), path  # no inline handlers


def test_many_requests_at_once_get_each_its_own_answer(make_db):
    """Handlers run in Starlette's threadpool, each read on its own snapshot."""
    import asyncio

    from benchmarks.serve import call

    c, tl = client(make_db(seeded=True), max_rows=100)
    count = tl.head.position
    app = c.app
    days = [f"2025-{m:02d}-15" for m in range(1, 13)]

    async def all_at_once():
        return await asyncio.gather(*(call(app, "/api/query?q=" + quote(
            f"total tariff by us on cn as of {d}")) for d in days * 3),
            call(app, "/ask?q=events"), call(app, "/api/query?q=events"))
    try:
        replies = asyncio.run(all_at_once())
    finally:
        c.close()
        tl.close()
    for d, (status, body) in zip(days * 3, replies):
        assert status == 200 and json.loads(body)["as_of"] == d
    page, api = replies[-2:]
    assert page[0] == 200 and f"showing the first 100 of {count} rows".encode() in page[1]
    assert api[0] == 400 and f"the answer has {count} rows, more than this server".encode() \
        in api[1]

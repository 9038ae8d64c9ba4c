"""report.html: well-formed, self-contained, deterministic, and every value cites its events."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from tests.backends import backend, make_db  # noqa: F401
from tests.conftest import snapshot_of
from timeline.log.loader import load_paths
from timeline.resources import seeds_path
from timeline.api import Timeline
from timeline.store.store import Store
from timeline.surfaces import chart
from timeline.surfaces.report import (FILTER_SCRIPT, REPORT, event_item, render_report,
                                      write_report)

needs_mpl = pytest.mark.skipif(not chart.available(), reason="matplotlib (the chart extra) "
                               "is not installed")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
AS_OF = "2025-06-12"


class _Balance(HTMLParser):
    """Checks that every non-void element is closed in order, as an HTML parser reads it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.attrs = [], [], []

    def handle_starttag(self, tag, attrs):
        self.attrs += [(tag, k, v) for k, v in attrs]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.attrs += [(tag, k, v) for k, v in attrs]

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'} at "
                               f"{self.getpos()}")
        else:
            self.stack.pop()


@pytest.fixture
def conn(seeded_store):
    with snapshot_of(seeded_store) as c:
        yield c


@pytest.fixture(scope="module")
def page(_seeded_template, tmp_path_factory) -> str:
    """The page of the seeded log, drawn once for the tests that only read it (0.5 s each)."""
    store = Store.open(str(_seeded_template), readonly=True)
    folder = tmp_path_factory.mktemp("report")
    try:
        with snapshot_of(store) as c:
            assert write_report(c, folder, AS_OF, None) == [REPORT]
    finally:
        store.close()
    return (folder / REPORT).read_text(encoding="utf-8")


def _root(page: str):
    return ET.fromstring(page.split("\n", 1)[1])  # after <!DOCTYPE html>


def _ids(root) -> dict:
    return {el.get("id"): el for el in root.iter() if el.get("id")}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def test_report_is_well_formed_html(page):
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    checker = _Balance()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    _root(page)  # also well-formed XML: every element closed, every attribute quoted
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "duplicate ids"


def test_report_has_no_external_resources(page):
    checker = _Balance()
    checker.feed(page)
    for tag, name, value in checker.attrs:
        if name.startswith("xmlns"):
            continue  # namespace names identify, they are never fetched
        if tag == "a" and name == "href" and (value or "").startswith(("https://", "http://")):
            continue  # a source's address: a link the reader follows, never loaded
        assert "http:" not in (value or "") and "https:" not in (value or ""), (tag, name)
        if name in ("src", "href", "xlink:href", "action", "srcset", "poster"):
            assert (value or "").startswith("#"), (tag, name, value)
    tags = {t for t, _, _ in checker.attrs} | set(re.findall(r"<([a-zA-Z]+)[\s>/]", page))
    assert not tags & {"link", "img", "iframe", "object", "embed", "base", "image"}
    assert "@import" not in page
    assert re.findall(r"url\(([^)]*)\)", page) and all(
        u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", page))
    # one script, inline, and the page's policy allows it by its hash and nothing else
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts == [("", FILTER_SCRIPT)]
    for word in ("fetch", "XMLHttpRequest", "import", "src", "http", "eval"):
        assert word not in FILTER_SCRIPT
    digest = base64.b64encode(hashlib.sha256(FILTER_SCRIPT.encode()).digest()).decode()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in policy and f"script-src 'sha256-{digest}'" in policy


def test_every_link_lands_on_the_page(page):
    root = _root(page)
    ids = _ids(root)
    targets = [v for el in root.iter() for k, v in el.attrib.items()
               if _local(k) == "href" and not v.startswith(("https://", "http://"))]
    assert targets
    web = ("https://", "http://")
    outside = [el for el in root.iter() if any(_local(k) == "href" and v.startswith(web)
                                                for k, v in el.attrib.items())]
    # every link out of the page is a source's, and tells it nothing of the page
    assert outside and all(el.get("rel") == "noopener noreferrer nofollow"
                           and el.get("referrerpolicy") == "no-referrer"
                           and el.get("class") == "url" for el in outside)
    missing = sorted({t for t in targets if t[1:] not in ids})
    assert missing == []


@needs_mpl
def test_report_inlines_both_total_charts(page):
    ids = _ids(_root(page))
    for pair in ("us-cn", "cn-us"):
        svg = ids[f"chart-total-{pair}"]
        assert _local(svg.tag) == "svg"
        assert f"chart-total-{pair}-series-total" in ids
    assert "chart-total-us-cn-band-us.tariff.ieepa-reciprocal.cn" in ids
    assert "chart-total-cn-us-band-cn.tariff.retaliatory.us" in ids


def _state_rows(ids) -> dict:
    return {tr.get("id"): tr for tr in ids["state"].iter("tr") if tr.get("id")}


def test_state_lists_every_measure_grouped_and_collapsed(conn, page):
    ids = _ids(_root(page))
    rows = _state_rows(ids)
    streams = conn.measure_ids()
    assert sorted(rows) == sorted(f"m-{s}" for s in streams)
    assert len(streams) == len({e.stream for e in load_paths([seeds_path()])})
    assert "no state on 2025-06-12" in "".join(ids["m-agreement.us-cn.busan"].itertext())
    groups = [el for el in ids["state"].iter("details")]
    assert len(groups) > 4 and all(g.get("open") is None for g in groups)  # collapsed
    summaries = ["".join(g.find("summary").itertext()) for g in groups]
    assert "tariff · us → cn (" in " ".join(summaries)
    tariffs_us_cn = ids["group-tariff-us-cn"]
    assert "m-us.tariff.ieepa-reciprocal.cn" in {tr.get("id") for tr in tariffs_us_cn.iter("tr")}
    assert "m-cn.tariff.retaliatory.us" not in {tr.get("id") for tr in tariffs_us_cn.iter("tr")}
    assert ids["state-filter"].tag == "input"


def _cell_links(row, column: int) -> tuple[str, list[str]]:
    cell = row.findall("./td")[column]
    return "".join(cell.itertext()), [a.get("href") for a in cell.iter("a")]


def test_values_link_to_the_events_that_set_them(page):
    ids = _ids(_root(page))
    rate_text, links = _cell_links(ids["m-cn.tariff.retaliatory.us"], 2)
    assert rate_text.startswith("10")
    # the rate was set by the Geneva cut, not by whatever event touched the measure last
    source = ids[links[0][1:]]
    assert "Geneva: China cuts its tariff on US goods from 125% to 10%" in "".join(
        source.itertext())
    legal_text, links = _cell_links(ids["m-us.tariff.ieepa-reciprocal.cn"], 4)
    assert legal_text.startswith("stayed")
    # 'stayed' since the administrative stay; the en banc stay of 2025-06-10 kept it so
    assert "Federal Circuit administratively stays the CIT judgment" in "".join(
        ids[links[0][1:]].itertext())
    # every value cell of every measure with a state is a link
    for row in _state_rows(ids).values():
        cells = row.findall("./td")
        if len(cells) < 8:
            continue
        for cell in cells[2:6]:
            if "".join(cell.itertext()).strip():
                assert cell.find(".//a") is not None, (row.get("id"), ET.tostring(cell))


def test_sources_give_dates_source_and_verbatim_quote(conn, page):
    ids = _ids(_root(page))
    items = ids["events"].findall(".//li")
    assert items and all(li.get("id", "").startswith("ev-") for li in items)
    quoted = [li for li in items if li.find("blockquote") is not None]
    assert quoted
    (ev,) = [li for li in items if "Trump–Xi phone call" in "".join(li.itertext())
             and "effective 2025-06-05" in "".join(li.itertext())]
    text = "".join(ev.itertext())
    assert "effective 2025-06-05" in text and "known 2025-06-05" in text
    assert "Source: US, China hold trade talks in London" in text
    (stored,) = conn.events_by_id([ev.get("id")[3:]]).values()
    assert stored.source["quote"] == "".join(ev.find("blockquote").itertext())
    # numbered by effective date, as the superscript links say
    effective = [re.search(r"effective (\d{4}-\d\d-\d\d)", "".join(li.itertext())).group(1)
                 for li in items]
    assert effective == sorted(effective)


def _text(el) -> str:
    return "".join(el.itertext())


def test_headline_gives_totals_their_moves_and_the_horizon(conn, page):
    ids = _ids(_root(page))
    us = _text(ids["headline-us-cn"])
    # 30 % on 2025-06-12; 145 % thirty days before (2025-05-13), before the Geneva cut
    assert "30 %" in us and "−115 points" in us and "from 145 %" in us
    assert "10 %" in _text(ids["headline-cn-us"])
    assert f"Known through {conn.horizon()}" in _text(ids["horizon"])
    assert "projected" not in _text(ids["headline"])
    counts = _text(ids["headline-counts"])
    assert re.search(r"\d+ state changes and \d+ newly known events since 2025-05-13", counts)


def test_headline_flags_a_projected_state(conn):
    ids = _ids(_root(render_report(conn, "2025-08-13", "2025-06-10")))
    assert "Known through 2025-06-10" in _text(ids["horizon"])
    assert "projected" in _text(ids["horizon"]) and "after it" in _text(ids["horizon"])
    assert "projected" in _text(ids["headline-us-cn"])


def test_changes_cover_the_window_with_sources(page):
    ids = _ids(_root(page))
    changes = _text(ids["changes-table"])
    assert "us.tariff.ieepa-reciprocal.cn" in changes and "rate 125 → 10" in changes
    assert "legal_status ruled_unlawful → stayed" in changes  # 2025-05-29
    assert "2025-07-14" not in changes  # after the as-of date
    for row in ids["changes-table"].findall("./tbody/tr"):
        assert row.findall("./td")[3].find("a") is not None  # each with its source
    fresh = _text(ids["new-events"])
    assert "Trump–Xi phone call" in fresh  # known 2025-06-05
    assert "Geneva Joint Statement" not in fresh  # known 2025-05-12: before the window
    assert "US assures Nvidia" not in fresh  # known after the as-of date


def test_a_scheduled_change_that_fired_is_a_change(conn):
    page = render_report(conn, "2026-11-26", since="2026-11-01")
    ids = _ids(_root(page))
    assert "changes-none" not in ids
    (row,) = [tr for tr in ids["changes-table"].findall("./tbody/tr")
              if "cn.tariff.retaliatory.us" in _text(tr)]
    text = _text(row)
    assert "2026-11-10" in text and "rate 10 → 34" in text and "scheduled" in text
    assert "projected" in text  # due after the horizon; no event confirms it
    # its source is the event that scheduled it, not an event of that day
    (item,) = conn.state("cn.tariff.retaliatory.us", "2026-11-09").state["scheduled"]
    assert row.findall("./td")[3].find("a").get("href") == f"#ev-{item['by']}"
    assert "since the previous snapshot (2026-11-01)" in _text(ids["changes"])


def test_no_changes_is_said(conn):
    ids = _ids(_root(render_report(conn, "2018-01-01")))
    assert "No measure changed state" in _text(ids["changes-none"])
    assert "No event became known" in _text(ids["new-events-none"])


def test_coming_up_marks_what_rests_on_no_confirmation(conn):
    ids = _ids(_root(render_report(conn, "2025-06-12", "2025-06-10")))
    rows = [_text(tr) for tr in ids["coming-table"].findall("./tbody/tr")]
    (lapse,) = [t for t in rows if "us.tariff.ieepa-reciprocal.cn" in t]
    assert "2025-08-12" in lapse and "rate → 34" in lapse and "projected" in lapse
    # with everything in the log, the lapse is not projected: the log says what came of it
    ids = _ids(_root(render_report(conn, "2025-06-12")))
    (lapse,) = [_text(tr) for tr in ids["coming-table"].findall("./tbody/tr")
                if "us.tariff.ieepa-reciprocal.cn" in _text(tr)]
    assert "projected" not in lapse and "did not take effect as scheduled" in lapse


def test_coming_up_never_shows_what_was_not_yet_known(conn):
    # on 2025-04-01 nothing said a 34 % reciprocal tariff was coming (announced 04-02)
    ids = _ids(_root(render_report(conn, "2025-04-01")))
    coming = _text(ids["coming-up"])
    assert "ieepa-reciprocal" not in coming


def test_since_must_be_before_the_briefing_date(conn):
    from timeline.errors import TimelineError

    with pytest.raises(TimelineError, match="must start before 2025-06-12"):
        render_report(conn, AS_OF, since=AS_OF)


def test_totals_tables(page):
    ids = _ids(_root(page))
    us = "".join(ids["table-total-us-cn"].itertext())
    assert "total on 2025-06-12" in us and "30 %" in us
    assert "not in the total: steel and aluminium imports" in us
    assert "125 %" not in "".join(ids["table-total-cn-us"].itertext())
    for table in ("table-total-us-cn", "table-total-cn-us"):
        for row in ids[table].findall("./tbody/tr"):
            assert row.findall("./td")[1].find("a") is not None  # rates and totals cite events


def test_known_on_report_answers_with_what_was_known(conn):
    ids = _ids(_root(render_report(conn, "2025-08-13", "2025-06-10")))
    rate, _ = _cell_links(ids["m-us.tariff.ieepa-reciprocal.cn"], 2)
    assert rate.startswith("34")
    assert "34 %" in "".join(ids["table-total-us-cn"].itertext())


def test_report_is_deterministic(conn, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    write_report(conn, a, AS_OF, None)
    write_report(conn, b, AS_OF, None)
    assert (a / REPORT).read_bytes() == (b / REPORT).read_bytes()


def test_report_without_matplotlib_notes_each_chart(conn, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    page = render_report(conn, AS_OF)
    assert "<svg" not in page
    ids = _ids(_root(page))
    for pair in ("us-cn", "cn-us"):
        note = "".join(ids[f"fig-total-{pair}"].itertext())
        assert "Chart not drawn" in note and "pip install 'timeline[chart]'" in note
    assert "state" in ids and "headline" in ids


@pytest.mark.parametrize("url,linked", [
    ("https://example.org/x?a=1&b=2", True), ("http://example.org/", True),
    ("javascript:alert(1)", False), ("https://example.org/\"onmouseover=x", False),
    ("data:text/html,<b>x</b>", False), ("//example.org/", False)])
def test_source_urls_are_links_only_when_they_are_web_addresses(url, linked):
    row = SimpleNamespace(
        id="e1", effective="2025-01-02", announced=None, known="2025-01-03", type="statement",
        stream="diplomacy.us-cn", payload={"title": "A <statement> & more"},
        source={"name": "Example", "url": url, "quote": "said \"so\""})
    item = event_item(1, row)
    root = ET.fromstring(item)
    links = [a for a in root.iter("a")]
    if linked:
        (a,) = links
        assert a.get("href") == url and a.text == url
        assert a.get("rel") == "noopener noreferrer nofollow"
    else:
        assert links == [] and "href" not in item
        assert [c.text for c in root.iter("code") if c.get("class") == "url"] == [url]
    assert "A &lt;statement&gt; &amp; more" in item


def test_export_snapshot_carries_the_briefing(seeded_store, tmp_path):
    """As the export runs it: hashed in the manifest, identical across two exports, and
    compared with the previous nightly (the last 30 days when there is none)."""
    from timeline.surfaces import export

    first = export.write_snapshot(Timeline(seeded_store), tmp_path / "a", AS_OF)
    second = export.write_snapshot(Timeline(seeded_store), tmp_path / "b", AS_OF)
    info = first.manifest["files"][REPORT]
    assert re.fullmatch(r"[0-9a-f]{64}", info["sha256"])
    assert info == second.manifest["files"][REPORT]
    assert (first.path / REPORT).read_bytes() == (second.path / REPORT).read_bytes()
    assert export.verify_snapshot(first.path) == []
    ids = _ids(_root((first.path / REPORT).read_text(encoding="utf-8")))
    assert "since 2025-05-13 (30 days)" in _text(ids["changes"])

    later = export.write_snapshot(Timeline(seeded_store), tmp_path / "a", "2025-07-20")
    ids = _ids(_root((later.path / REPORT).read_text(encoding="utf-8")))
    assert "since the previous snapshot (2025-06-12)" in _text(ids["changes"])
    changes = _text(ids["changes-table"])
    assert "2025-07-14" in changes
    assert "2025-06-10" not in changes  # in the previous snapshot's window
    assert later.manifest["previous_nightly"] == AS_OF


def test_report_command(seeded_db, tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "briefing.html"
    r = run_cli("report", "--db", str(seeded_db), "-o", str(out), "--as-of", "2025-06-12",
                "--known-on", "2025-06-10", "--since", "2025-06-01")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {out}: briefing for 2025-06-12 as known on 2025-06-10")
    ids = _ids(_root(out.read_text(encoding="utf-8")))
    assert "Known through 2025-06-10" in _text(ids["horizon"])
    assert "since 2025-06-01" in _text(ids["changes"])
    r = run_cli("report", "--db", str(seeded_db), "-o", str(out), "--as-of", "today - 1 day")
    assert r.returncode == 0, r.stderr
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    assert f"briefing for {yesterday}" in r.stdout


def test_report_command_refuses_bad_input_and_writes_nothing(seeded_db, tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "briefing.html"
    base = ("report", "--db", str(seeded_db))
    r = run_cli(*base, "-o", str(out), "--as-of", "14/05/2025")
    assert r.returncode == 2 and "invalid date '14/05/2025'" in r.stderr
    r = run_cli(*base, "-o", str(out), "--as-of", "2025-06-12", "--since", "2025-07-01")
    assert r.returncode == 1 and r.stderr.startswith("error: the changes must start before")
    r = run_cli(*base, "-o", str(tmp_path / "missing" / "b.html"))
    assert r.returncode == 1 and "cannot write" in r.stderr and "No such file" in r.stderr
    r = run_cli(*base, "-o", str(tmp_path))
    assert r.returncode == 1 and "is a folder" in r.stderr
    assert run_cli(*base).returncode == 2  # -o is required
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert "Traceback" not in r.stderr


def test_same_report_on_every_backend(make_db, seeded_store):
    """PostgreSQL (when configured) gives the page SQLite gives, apart from the log head."""
    store = Store.open(make_db(), readonly=True)
    try:
        with snapshot_of(store) as c:
            page = render_report(c, AS_OF, "2025-06-10")
    finally:
        store.close()
    with snapshot_of(seeded_store) as c:
        reference = render_report(c, AS_OF, "2025-06-10")

    def mask(p):
        # the head hash covers recorded_at, which differs between two loads of the seeds
        return re.sub(r"log head: [^.]*</code>", "", p)
    assert mask(page) == mask(reference)


def test_hostile_titles_stay_text_in_every_section(seeded_store):
    """A title that is markup lands escaped in changes, new events and the event list; the
    page keeps its one script and stays well-formed."""
    from timeline.log.events import NewEvent

    title = '<script>alert("x")</script><img src=x onerror=alert(1)> & </section>'
    seeded_store.append([NewEvent("diplomacy.us-cn", "meeting", dt.date(2025, 6, 11),
                                  {"title": title}, {"name": "<b>outlet</b>"},
                                  known=dt.date(2025, 6, 11))])
    with snapshot_of(seeded_store) as c:
        page = render_report(c, AS_OF)
    assert page.count("<script>") == 1 and "<img" not in page and "onerror=alert" not in \
        re.sub(r"&lt;img src=x onerror=alert\(1\)&gt;", "", page)
    ids = _ids(_root(page))
    assert title in _text(ids["new-events"]) and title in _text(ids["events"])
    assert "<b>outlet</b>" in _text(ids["events"])


def test_report_page_is_flushed_and_leftovers_of_killed_runs_go(seeded_db, tmp_path,
                                                                 monkeypatch):
    import os
    import subprocess
    import sys

    from tests.conftest import run_cli_process
    from timeline import files

    out = tmp_path / "briefing.html"
    # a run killed between writing and renaming left its temporary page behind
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".briefing.html.{dead}.tmp"
    stale.write_text("half a page")
    # a temporary page of a run still going (this process) is not touched; the report runs
    # in a process of its own, or this one's page would be its own
    live = tmp_path / f".briefing.html.{os.getpid()}.tmp"
    live.write_text("another run's page")
    r = run_cli_process("report", "--db", str(seeded_db), "-o", str(out), "--as-of", "2025-06-12")
    assert r.returncode == 0, r.stderr
    assert not stale.exists() and out.read_text(encoding="utf-8").startswith("<!DOCTYPE")
    assert live.read_text() == "another run's page"
    live.unlink()
    # the page reaches the disk before it is renamed into place, and so does the rename
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    files.write_atomic(out, b"<!DOCTYPE html> again")
    assert len(synced) == 2 and out.read_text() == "<!DOCTYPE html> again"


def test_report_interrupted_while_writing_keeps_the_old_page(seeded_db, tmp_path, monkeypatch):
    from timeline import files

    (tmp_path / "pages").mkdir()
    out = tmp_path / "pages" / "briefing.html"
    out.write_text("the old page")

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(out, b"<!DOCTYPE html> new")
    assert out.read_text() == "the old page"
    assert [p.name for p in out.parent.iterdir()] == ["briefing.html"]

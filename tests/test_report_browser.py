"""The briefing rendered by headless Chromium: every section in the DOM, groups collapsed, the
filter working, a real picture (and, with TIMELINE_WRITE_DOCS_IMG=1, docs/img/briefing.png).

Skipped, with the reason, where no Chromium is installed (CI installs Debian's `chromium`).
Set TIMELINE_CHROMIUM to use another binary.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import snapshot_of
from timeline.log.loader import load_paths
from timeline.resources import seeds_path

from timeline.surfaces import chart
from timeline.surfaces.report import REPORT, write_report

DOCS_ENV = "TIMELINE_WRITE_DOCS_IMG"  # set to refresh docs/img/briefing.png from this test
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img" / "briefing.png"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium")
# No network, no first-run work, no background services: the page must render from the file
# alone. --no-sandbox because CI runs as root, where Chromium's sandbox refuses to start.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")


def _chromium() -> str | None:
    wanted = os.environ.get("TIMELINE_CHROMIUM")
    for name in [wanted] if wanted else CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = _chromium()
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get "
                       "install chromium; or set TIMELINE_CHROMIUM)"),
    pytest.mark.skipif(not chart.available(), reason="matplotlib (the chart extra) is needed "
                       "to draw the charts and to read the screenshot"),
]


def _run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    # a generous bound only so that a wedged browser cannot hang the suite
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HOME": str(tmp_path)})


@pytest.fixture
def report(seeded_store, tmp_path):
    with snapshot_of(seeded_store) as s:
        write_report(s, tmp_path, "2025-06-12", None)
    return tmp_path / REPORT


class _Dom(HTMLParser):
    """The rendered DOM's elements that the briefing's state depends on."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: dict[str, dict] = {}
        self.rows: dict[str, dict] = {}
        self.groups: dict[str, dict] = {}
        self._in: str | None = None
        self.texts: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = {"tag": tag, **a}
        if tag == "tr" and a.get("id", "").startswith("m-"):
            self.rows[a["id"]] = a
        if tag == "details":
            self.groups[a.get("id", "")] = a
        if a.get("id") == "state-count":
            self._in = "state-count"

    def handle_data(self, data):
        if self._in:
            self.texts[self._in] = self.texts.get(self._in, "") + data

    def handle_endtag(self, tag):
        self._in = None


def _dom(tmp_path, url: str) -> tuple[str, _Dom]:
    r = _run(tmp_path, "--dump-dom", url)
    assert "<html" in r.stdout, r.stderr[-2000:]
    parsed = _Dom()
    parsed.feed(r.stdout)
    return r.stdout, parsed


def test_rendered_dom_has_every_section_of_the_briefing(report, tmp_path):
    dom, d = _dom(tmp_path, report.resolve().as_uri())
    for section in ("headline", "changes", "coming-up", "totals", "state", "events"):
        assert d.ids[section]["tag"] == "section", section
    order = [dom.index(f'<section id="{s}"') for s in ("headline", "changes", "coming-up",
                                                        "totals", "state", "events")]
    assert order == sorted(order)  # the briefing reads top to bottom
    assert "headline-us-cn" in d.ids and "horizon" in d.ids
    assert "changes-table" in d.ids and "coming-table" in d.ids
    assert dom.count("<svg") == 2
    assert 'id="chart-total-us-cn"' in dom and 'id="chart-total-cn-us"' in dom
    assert 'id="chart-total-us-cn-series-total"' in dom
    measures = {e.stream for e in load_paths([seeds_path()])}
    assert set(d.rows) == {f"m-{m}" for m in measures}
    # collapsed by default: no group open, no row hidden
    assert d.groups and all("open" not in g and "hidden" not in g for g in d.groups.values())
    assert not [r for r in d.rows.values() if "hidden" in r]
    events = [i for i in d.ids if i.startswith("ev-")]
    assert len(events) == len(load_paths([seeds_path()]))  # every event, with its source


def test_the_filter_shows_only_matching_measures(report, tmp_path):
    _, d = _dom(tmp_path, report.resolve().as_uri() + "?filter=section-301")
    shown = sorted(i for i, r in d.rows.items() if "hidden" not in r)
    assert shown and all("section-301" in i for i in shown)
    assert "m-us.tariff.ieepa-reciprocal.cn" not in shown
    assert "open" in d.groups["group-tariff-us-cn"]
    assert "hidden" in d.groups["group-tariff-cn-us"]
    assert d.texts["state-count"].strip() == f"{len(shown)} measures match"


def test_screenshot_is_not_blank(report, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    r = _run(tmp_path, f"--screenshot={shot}", "--window-size=1200,2000",
             report.resolve().as_uri())
    assert shot.is_file(), r.stderr[-2000:]
    pixels = imread(shot)
    assert pixels.shape[:2] == (2000, 1200)
    grey = pixels[..., :3].mean(axis=2)
    assert grey.std() > 0.05  # not a single colour
    # rows that are not all one colour: text, chart lines and table rules down the page
    varied = (grey.max(axis=1) - grey.min(axis=1)) > 0.2
    assert varied.sum() > 400
    assert varied[1000:].sum() > 100  # the page goes on drawing further down
    if os.environ.get(DOCS_ENV):
        # the README's picture of the briefing, made by this test on request
        shutil.copyfile(shot, DOCS_IMG)

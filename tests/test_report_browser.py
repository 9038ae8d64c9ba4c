"""report.html rendered by headless Chromium: charts and state table in the DOM, a real picture.

Skipped, with the reason, where no Chromium is installed (CI installs Debian's `chromium`).
Set TIMELINE_CHROMIUM to use another binary.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from timeline.surfaces import chart
from timeline.surfaces.report import REPORT, write_report

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
    with seeded_store.reading() as conn:
        write_report(conn, tmp_path, "2025-06-12", None)
    return tmp_path / REPORT


def test_rendered_dom_has_the_charts_and_the_state_table(report, tmp_path):
    r = _run(tmp_path, "--dump-dom", report.resolve().as_uri())
    dom = r.stdout
    assert "<html" in dom, r.stderr[-2000:]
    assert dom.count("<svg") == 2
    assert 'id="chart-total-us-cn"' in dom and 'id="chart-total-cn-us"' in dom
    assert 'id="chart-total-us-cn-series-total"' in dom
    assert 'id="state-table"' in dom
    # every measure row of the written report survives rendering (the seeds set how many)
    rows = report.read_text("utf-8").count('<tr id="m-')
    assert rows >= 39 and dom.count('<tr id="m-') == rows
    assert "us.tariff.ieepa-reciprocal.cn" in dom


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
    assert varied[1000:].sum() > 100  # the chart further down was drawn too

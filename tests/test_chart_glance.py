"""Charts that read at a glance (issue 16, item 4): each complaint of the issue as a test.

The figure is inspected through its matplotlib artists (gids, transforms, hatches, texts),
never through pixels.
"""
from __future__ import annotations

import datetime as dt
import itertools

import pytest

from tests.conftest import snapshot_of
from timeline.surfaces import chart

TODAY = dt.date(2026, 11, 27)
pytestmark = pytest.mark.skipif(not chart.available(), reason="matplotlib (the chart extra) "
                                "is not installed")


@pytest.fixture
def conn(seeded_store):
    with snapshot_of(seeded_store) as c:
        yield c


def _artists(fig, gid: str | None = None, prefix: str | None = None) -> list:
    found = fig.findobj(lambda a: a.get_gid() is not None)
    return [a for a in found if (gid is None or a.get_gid() == gid)
            and (prefix is None or a.get_gid().startswith(prefix))]


def _one(fig, gid: str):
    (a,) = _artists(fig, gid)
    return a


def _legend(fig) -> list[str]:
    return [t.get_text() for lg in fig.legends for t in lg.get_texts()]


def test_fentanyl_line_stays_visible_where_it_equals_the_reciprocal_one(conn):
    data = chart.build(conn, "history of us.tariff.ieepa-*.cn from 2025-01-01 to 2026-01-31",
                       today=TODAY)
    fent, recip = (next(s for s in data.series if s.gid == f"series-us.tariff.{m}.cn")
                   for m in ("ieepa-fentanyl", "ieepa-reciprocal"))
    assert chart.value_at(fent.points, "2025-12-01") == chart.value_at(recip.points,
                                                                      "2025-12-01") == 10
    assert fent.offset != recip.offset
    fig = chart.figure(data)
    day = dt.date(2025, 12, 1)
    import matplotlib.dates as mdates

    ys = [_one(fig, s.gid).get_transform().transform((mdates.date2num(day), 10))[1]
          for s in (fent, recip)]
    assert abs(ys[0] - ys[1]) >= 2  # display units apart: one line never covers the other
    assert all(_one(fig, s.gid).get_path_effects() for s in (fent, recip))  # outlined


def test_titles_and_legends_come_from_the_catalogue(conn):
    data = chart.build(conn, "history of us.tariff.ieepa-reciprocal.cn", today=TODAY)
    fig = chart.figure(data)
    title = _one(fig, "chart-title").get_text()
    assert title.startswith("'Liberation Day' reciprocal tariff on China")
    assert _one(fig, "chart-subtitle").get_text().startswith(
        "history of us.tariff.ieepa-reciprocal.cn")
    assert any(t.startswith("'Liberation Day' reciprocal tariff") and
               t.endswith("(us.tariff.ieepa-reciprocal.cn)") for t in _legend(fig))
    total = chart.figure(chart.build(conn, "total tariff by us on cn", today=TODAY,
                                     start="2025-01-01"))
    assert any(t.startswith("US 'fentanyl' tariff") for t in _legend(total))


def test_a_measure_without_a_title_is_labelled_by_its_id():
    assert chart.measure_label("x.y", {}) == "x.y"
    long = chart.measure_label("x.y", {"x.y": "word " * 100})
    assert long.endswith("… (x.y)") and len(long) < 60


def test_step_values_are_labelled_at_each_change(conn):
    data = chart.build(conn, "history of us.tariff.ieepa-reciprocal.cn from 2025-04-01 to "
                       "2025-06-30", today=TODAY)
    fig = chart.figure(data)
    values = [a.get_text() for a in _artists(fig, prefix="value-series-")]
    assert values[:4] == ["10", "84", "125", "10"]  # each change, not each interval
    assert values.count("10") == 2


@pytest.mark.parametrize("how", ["option", "query"])
def test_known_on_date_is_a_labelled_vertical_line(conn, how):
    q = "history of us.tariff.ieepa-reciprocal.cn from 2025-04-01 to 2025-12-31"
    data = chart.build(conn, q + (" known on 2025-06-10" if how == "query" else ""),
                       today=TODAY, known_on=["2025-06-10"] if how == "option" else ())
    assert data.known_lines == ["2025-06-10"]
    fig = chart.figure(data)
    line = _one(fig, "known-on-line-2025-06-10")
    assert list(line.get_xdata()) == [dt.date(2025, 6, 10)] * 2
    assert _one(fig, "known-on-label-2025-06-10").get_text() == "known on 2025-06-10"


def test_markers_only_for_developments_that_touch_the_charted_measure(conn):
    data = chart.build(conn, "history of us.tariff.ieepa-reciprocal.cn from 2025-05-01 to "
                       "2025-06-30", today=TODAY)
    titles = [m.title for m in data.markers]
    assert any(t.startswith("Geneva Joint Statement") for t in titles)  # the pair's deal
    assert any(t.startswith("CIT, V.O.S. Selections") for t in titles)  # links to it
    assert not any("Hassett" in t for t in titles)  # an export control's statement
    every = chart.markers(conn, "2025-05-01", "2025-06-30")
    assert len(every) > len(data.markers)  # without measures: all developments
    cn_side = chart.build(conn, "history of us.tariff.section-122.global", today=TODAY)
    assert not any("Geneva" in m.title for m in cn_side.markers)  # us–all, not us–cn


def test_marker_numbers_never_print_over_each_other(conn):
    # early June 2025 held 4–8 developments within days: the pile-up
    data = chart.build(conn, "total tariff by us on cn", today=TODAY, start="2025-01-01")
    assert len(data.markers) >= 15
    fig = chart.figure(data)
    fig.canvas.draw()  # the Agg canvas: text extents are known after a draw
    boxes = [a.get_window_extent() for a in _artists(fig, prefix="marker-num-")]
    assert len(boxes) >= 5
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    labels = [a.get_text() for a in _artists(fig, prefix="marker-num-")]
    assert any("–" in t or "," in t for t in labels)  # close dates share one label


def test_section_301_lists_are_drawn_as_separate_components(conn):
    data = chart.build(conn, "history of us.tariff.section-301.cn from 2025-01-01 to "
                       "2025-12-31", today=TODAY)
    parts = {c.label: {v for _, v in c.points if v is not None} for c in data.components}
    assert parts["List 4A (7.5 %)"] == {7.5}
    assert parts["List 1 · List 2 · List 3 (25 %)"] == {25.0}
    assert {100.0} in parts.values()  # EVs, from the measure's own ev_rate field
    assert "semiconductors · solar cells (50 %)" in parts
    fig = chart.figure(data)
    assert len(_artists(fig, prefix="component-us.tariff.section-301.cn-")) == len(parts)
    # in a chart of several measures they are summed up in a note instead
    many = chart.build(conn, "history of us.tariff.*.cn from 2025-01-01 to 2025-12-31",
                       today=TODAY)
    assert not many.components
    assert any(n.startswith("us.tariff.section-301.cn: the line is its headline rate; its "
                            "lists and product rates run from 7.5 to 100 %") for n in many.notes)


def test_list_rates_text_that_does_not_parse_gives_no_invented_component():
    ivs = [{"valid_from": "2025-01-01", "valid_to": None,
            "state": {"rate": 25, "status": "in_force", "list_rates": "lists vary; see USTR",
                      "semiconductors_rate": True}}]
    assert chart.components(ivs, "2025-01-01", "2025-12-31") == []


def test_the_disputed_section_122_rate_is_drawn_hatched_until_a_source_resolves_it(conn):
    # known on 2026-05-01 the 15 % report was still disputed; F22 (known 2026-05-08)
    # settled it at 10 %, so the full record draws no disputed band
    assert chart.build(conn, "history of us.tariff.section-122.global", today=TODAY
                       ).disputed == []
    data = chart.build(conn, "history of us.tariff.section-122.global known on 2026-05-01",
                       today=TODAY)
    (d,) = data.disputed
    assert "15 % reported by BDO; UHY" in d.label
    assert {v for _, v in d.high if v is not None} == {15.0}
    assert {v for _, v in d.low if v is not None} == {10.0}
    fig = chart.figure(data)
    assert _one(fig, d.gid).get_hatch() == "////"
    total = chart.build(conn, "total tariff by us on cn known on 2026-05-01", today=TODAY,
                        start="2026-01-01")
    assert [x.gid for x in total.disputed] == ["disputed-total"]
    assert chart.build(conn, "total tariff by us on cn", today=TODAY,
                       start="2026-01-01").disputed == []


def test_the_span_beyond_the_knowledge_horizon_is_shaded(conn):
    data = chart.build(conn, "total tariff by us on cn", today=TODAY, start="2025-01-01")
    assert data.horizon and data.horizon < data.end
    fig = chart.figure(data)
    span = _one(fig, "beyond-horizon")
    assert span.get_hatch() == "xx"
    import matplotlib.dates as mdates

    left = span.get_x() if hasattr(span, "get_x") else min(x for x, _ in span.get_xy())
    assert left == mdates.date2num(dt.date.fromisoformat(data.horizon))
    assert any("after the knowledge horizon" in t for t in _legend(fig))
    # a chart that ends before the horizon has nothing to shade
    early = chart.figure(chart.build(conn, "total tariff by us on cn as of 2025-12-31",
                                     today=TODAY, start="2025-01-01"))
    assert not _artists(early, "beyond-horizon")


def test_svg_still_carries_the_new_ids(conn):
    # as known before F22 settled the 15 % report (2026-05-08), so its band is drawn
    data = chart.build(conn, "history of us.tariff.section-122.global known on 2026-05-01",
                       today=TODAY, known_on=["2026-03-01"])
    svg = chart.render(data, "svg").decode()
    for gid in ("beyond-horizon", "known-on-line-2026-03-01", "disputed-us.tariff.section-122"
                ".global-1", "value-series-us.tariff.section-122.global-1"):
        assert f'id="{gid}"' in svg


def test_docs_images_are_made_by_the_docs_script_and_shown_in_the_readme(tmp_path):
    import runpy
    import subprocess
    import sys
    import xml.etree.ElementTree as ET

    from tests.conftest import REPO

    script = REPO / "docs" / "make_images.py"
    charts = runpy.run_path(str(script))["CHARTS"]
    pngs = [name for name, _, _ in charts if name.endswith(".png")]
    assert {"total-us-cn.png", "history-us-cn.png"} <= set(pngs)
    for name in pngs:  # committed, and real PNGs
        assert (REPO / "docs" / "img" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "](docs/img/total-us-cn.png)" in readme
    r = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, _, _ in charts)
    # the committed SVG is what the script makes now: same drawn elements
    ids = lambda path: {el.get("id") for el in ET.parse(path).getroot().iter()  # noqa: E731
                        if el.get("id")}
    assert ids(tmp_path / "total-us-cn.svg") == ids(REPO / "docs" / "img" / "total-us-cn.svg")

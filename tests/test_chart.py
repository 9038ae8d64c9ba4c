"""`timeline chart`, the chart data behind it, and text sparklines.

Charts are checked through the SVG's XML (group ids, dash styles, text), never pixels.
"""
from __future__ import annotations

import datetime as dt
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import run_cli, snapshot_of
from timeline.surfaces import chart
from timeline.surfaces import cli
from timeline.api import Timeline
from timeline.errors import QueryError
from timeline.surfaces.sparkline import BLOCKS, history_sparklines, rate_values, sparkline

SVG = "{http://www.w3.org/2000/svg}"
TODAY = dt.date(2026, 3, 31)
RANGE = ["--from", "2025-01-01", "--to", "2026-03-31"]

needs_mpl = pytest.mark.skipif(not chart.available(), reason="matplotlib (the chart extra) "
                               "is not installed")


def _ids(root) -> dict[str, ET.Element]:
    return {el.get("id"): el for el in root.iter() if el.get("id")}


def _texts(el) -> list[str]:
    return ["".join(t.itertext()).strip() for t in el.iter(f"{SVG}text")]


def _styles(el) -> list[str]:
    return [p.get("style", "") for p in el.iter(f"{SVG}path")]


def _numbers(label: str) -> list[int]:
    """The development numbers of a marker label: `3`, `3,4` or `3–6`."""
    if "–" in label:
        a, b = label.split("–")
        return list(range(int(a), int(b) + 1))
    return [int(n) for n in label.split(",")]


@pytest.fixture
def conn(seeded_store):
    with snapshot_of(seeded_store) as c:
        yield c


# -- the command, end to end ----------------------------------------------------------------
@needs_mpl
def test_history_chart_has_a_labelled_line_per_measure_and_dashed_known_on_lines(
        seeded_db, tmp_path):
    out = tmp_path / "h.svg"
    r = run_cli("chart", "history of us.tariff.ieepa-*.cn", "-o", str(out), *RANGE,
                "--known-on", "2025-06-10", "--db", str(seeded_db))
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout
    root = ET.parse(out).getroot()
    ids = _ids(root)
    for m in ("us.tariff.ieepa-fentanyl.cn", "us.tariff.ieepa-reciprocal.cn"):
        assert f"series-{m}" in ids
        solid = _styles(ids[f"series-{m}"])
        assert solid and not any("dasharray" in s for s in solid)
        dashed = _styles(ids[f"known-on-2025-06-10-{m}"])
        assert dashed and all("stroke-dasharray" in s for s in dashed)
    legend = _texts(root)
    # legends name the measure by its catalogue title, then its id
    # (the catalogue titles of their `retitled` events, issue 23: not the first headline)
    assert "'Liberation Day' reciprocal tariff on China… (us.tariff.ieepa-reciprocal.cn)" \
        in legend
    assert "US 'fentanyl' tariff on all Chinese goods… (us.tariff.ieepa-fentanyl.cn)" in legend
    assert "us.tariff.ieepa-reciprocal.cn as known on 2025-06-10" in legend
    # the title: the query as drawn, --from/--to included
    assert "history of us.tariff.ieepa-*.cn from 2025-01-01 to 2026-03-31" in legend
    assert len(ids) == len([el for el in root.iter() if el.get("id")]), "duplicate ids"


@needs_mpl
def test_history_chart_marks_non_rate_developments_in_range(seeded_db, tmp_path):
    out = tmp_path / "h.svg"
    r = run_cli("chart", "history of us.tariff.ieepa-reciprocal.cn from 2025-05-01 to "
                "2025-06-30", "-o", str(out), "--db", str(seeded_db))
    assert r.returncode == 0, r.stderr
    ids = _ids(ET.parse(out).getroot())
    labels = {k: " ".join(_texts(v)) for k, v in ids.items() if k.startswith("marker-label-")}
    text = "\n".join(labels.values())
    assert "2025-05-12  opened: Geneva Joint Statement" in text
    assert "ruling: CIT, V.O.S. Selections v. Trump" in text
    assert "meeting: Trump–Xi phone call" in text
    assert "Hassett" not in text  # an export control's statement: not this measure's
    assert "2025-10-30" not in text and "Busan" not in text  # outside the range
    assert "observed" not in text and "amended" not in text  # rate changes are lines
    # every development has its line, and its number in exactly one label at the top
    nums = [t for k, v in ids.items() if k.startswith("marker-num-") for t in _texts(v)]
    covered = [n for t in nums for n in _numbers(t)]
    assert sorted(covered) == sorted(int(k.removeprefix("marker-label-")) for k in labels)
    assert all(f"marker-{n}" in ids for n in covered)


@needs_mpl
def test_total_chart_stacks_components_and_draws_the_total(seeded_db, tmp_path):
    out = tmp_path / "t.svg"
    r = run_cli("chart", "total tariff by us on cn", "-o", str(out), *RANGE,
                "--known-on", "2025-06-10", "--db", str(seeded_db))
    assert r.returncode == 0, r.stderr
    root = ET.parse(out).getroot()
    ids = _ids(root)
    bands = sorted(k for k in ids if k.startswith("band-"))
    assert bands == ["band-us.tariff.ieepa-fentanyl.cn", "band-us.tariff.ieepa-reciprocal.cn",
                     "band-us.tariff.section-122.global"]
    assert "series-total" in ids
    assert all("stroke-dasharray" in s for s in _styles(ids["known-on-2025-06-10-total"]))
    texts = _texts(root)
    assert "total as known on 2025-06-10" in texts
    # product-specific tariffs are not stacked, but named
    assert "band-us.tariff.section-301.cn" not in ids
    assert "us.tariff.section-301.cn 25 %" in " ".join(_texts(ids["chart-note-1"]))
    assert any("Supreme Court" in t for t in texts)


def test_total_data_follows_the_total_query_at_every_change(conn):
    data = chart.build(conn, "total tariff by us on cn", today=TODAY, known_on=["2025-06-10"],
                       start="2025-01-01", end="2026-03-31")
    total = dict(data.series[0].points)
    assert data.series[0].gid == "series-total"
    assert (data.start, data.end) == ("2025-01-01", "2026-03-31")
    assert total["2025-01-01"] == 0
    assert total["2025-02-04"] == 10
    assert total["2025-04-10"] == 145
    assert total["2025-05-14"] == 30
    assert total["2025-11-10"] == 20
    assert total["2026-02-24"] == 10
    # what was known on 2025-06-10: the Geneva suspension lapsing on 2025-08-12
    known = dict(data.series[1].points)
    assert data.series[1].dashed and known["2025-08-12"] == 54 and total["2025-08-12"] == 30
    # bands add up to the total at every change date
    for i, (day, value) in enumerate(data.series[0].points):
        assert sum(b.points[i][1] for b in data.bands) == value, day


def test_total_chart_default_range_starts_in_the_year_of_the_first_all_goods_tariff(conn):
    data = chart.build(conn, "total tariff by cn on us as of 2025-12-31", today=TODAY)
    assert (data.start, data.end) == ("2025-01-01", "2025-12-31")
    assert [b.gid for b in data.bands] == ["band-cn.tariff.retaliatory.us"]
    assert dict(data.series[0].points)["2025-04-12"] == 125


def test_history_data_steps_gaps_and_lifted(conn):
    data = chart.build(conn, "history of us.tariff.*.cn from 2025-01-01 to 2026-03-31",
                       today=TODAY)
    by = {s.gid.removeprefix("series-"): s.points for s in data.series}
    fent = by["us.tariff.ieepa-fentanyl.cn"]
    assert fent[0] == ("2025-02-04", 10.0)
    assert fent[-1] == ("2026-02-24", 0.0)  # lifted: drawn down to zero
    assert by["us.tariff.section-301.cn"][0] == ("2025-01-01", 25.0)  # clipped to the range
    # never imposed
    assert "us.tariff.section-301-list-4b.cn: no rate in force to draw" in data.notes
    # the 100 % threat was never in force: a note, not a line
    assert "us.tariff.threat-100.cn" not in by


def test_steps_leave_gaps_where_the_measure_has_no_interval():
    ivs = [{"valid_from": "2025-01-10", "valid_to": "2025-02-01",
            "state": {"rate": 5, "status": "in_force"}},
           {"valid_from": "2025-03-01", "valid_to": "2025-04-01",
            "state": {"rate": 7, "status": "in_force"}}]
    assert chart._steps(ivs, "2025-01-01", "2025-12-31") == [
        ("2025-01-10", 5.0), ("2025-02-01", None), ("2025-03-01", 7.0), ("2025-04-01", None)]


def test_known_on_identical_to_the_final_series_is_noted_not_hidden(conn):
    data = chart.build(conn, "history of us.tariff.section-301.cn from 2025-01-01 to 2025-12-31",
                       today=TODAY, known_on=["2025-06-10"])
    assert [s.gid for s in data.series] == ["series-us.tariff.section-301.cn"]
    assert "us.tariff.section-301.cn as known on 2025-06-10: the same as drawn" in data.notes


@needs_mpl
def test_svg_is_deterministic_and_carries_no_date(conn):
    data = chart.build(conn, "total tariff by us on cn", today=TODAY, start="2025-01-01")
    a, b = chart.render(data, "svg"), chart.render(data, "svg")
    assert a == b
    assert b"<dc:date>" not in a and b"Matplotlib v" not in a


@needs_mpl
def test_png_output(seeded_db, tmp_path):
    out = tmp_path / "t.PNG"
    r = run_cli("chart", "total tariff by cn on us", "-o", str(out), *RANGE, "--db",
                str(seeded_db))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_mpl
def test_chart_to_tempfile_for_the_repl(conn):
    path = chart.chart_to_tempfile(conn, "history of cn.tariff.retaliatory.us", TODAY)
    try:
        assert path.suffix == ".svg"
        assert "series-cn.tariff.retaliatory.us" in _ids(ET.parse(path).getroot())
    finally:
        path.unlink()


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("query", ["state of us.tariff.ieepa-fentanyl.cn",
                                   "events for case.ieepa-tariffs", "measures",
                                   "explain history of us.tariff.ieepa-fentanyl.cn"])
def test_other_query_kinds_are_refused(seeded_db, tmp_path, query):
    out = tmp_path / "x.svg"
    r = run_cli("chart", query, "-o", str(out), "--db", str(seeded_db))
    assert r.returncode == 1
    assert "cannot chart a" in r.stderr and "history of" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("name", ["chart.jpg", "chart", "chart.svg.txt"])
def test_bad_extension_is_refused_before_anything_runs(seeded_db, tmp_path, name):
    out = tmp_path / name
    r = run_cli("chart", "total tariff by us on cn", "-o", str(out), "--db", str(seeded_db))
    assert r.returncode == 1
    assert "must end in .svg or .png" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timeline.db"]


def test_unknown_measure_shows_the_query_error(seeded_db, tmp_path):
    r = run_cli("chart", "history of us.tariff.ieepa-fentanil.cn", "-o",
                str(tmp_path / "x.svg"), "--db", str(seeded_db))
    assert r.returncode == 1
    assert "unknown measure" in r.stderr and "^" in r.stderr
    assert "did you mean 'us.tariff.ieepa-fentanyl.cn'?" in r.stderr


def test_from_after_to_is_refused(conn):
    with pytest.raises(chart.ChartError, match="must be before"):
        chart.build(conn, "total tariff by us on cn", today=TODAY, start="2025-06-01",
                    end="2025-01-01")


def test_bad_known_on_date_is_a_query_error(conn):
    with pytest.raises(QueryError):
        chart.build(conn, "total tariff by us on cn", today=TODAY, known_on=["04/05/2025"])


def test_nothing_to_draw_is_an_error(conn):
    with pytest.raises(chart.ChartError, match="nothing to draw"):
        chart.build(conn, "history of us.export-control.*", today=TODAY)


def test_missing_matplotlib_names_the_extra(seeded_db, tmp_path, monkeypatch, capsys):
    # a None entry in sys.modules makes `import matplotlib` raise ImportError
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not chart.available()
    out = tmp_path / "t.svg"
    code = cli.main(["chart", "total tariff by us on cn", "-o", str(out), "--db",
                     str(seeded_db)])
    assert code == 1
    err = capsys.readouterr().err
    assert "matplotlib" in err and "pip install 'timeline[chart]'" in err
    assert not out.exists()


# -- sparklines -----------------------------------------------------------------------------
def test_sparkline_scales_between_min_and_max():
    assert sparkline([0, 1, 7]) == "▁▂█"
    assert sparkline([10, None, 125, 10]) == "▁ █▁"
    assert sparkline([]) == ""
    assert sparkline([None, None]) == "  "
    assert sparkline([25, 25]) == BLOCKS[3] * 2  # flat, not zero
    assert sparkline([0, 0]) == BLOCKS[0] * 2


def test_history_sparklines_from_a_history_answer(conn):
    text = "history of us.tariff.ieepa-reciprocal.cn from 2025-04-01 to 2025-06-30"
    data = conn.query(text, today=TODAY).data
    assert rate_values(data["results"][0]["intervals"])[:3] == [10.0, 84.0, 125.0]
    (line,) = history_sparklines(data)
    assert line.startswith("us.tariff.ieepa-reciprocal.cn  ▁▆█▁▁▁▁  10→10")
    assert "(min 10, max 125)" in line


def test_docs_image_is_small_and_made_by_the_documented_command():
    from tests.conftest import REPO

    image = REPO / "docs" / "img" / "total-us-cn.svg"
    assert image.stat().st_size < 100_000
    doc = (REPO / "docs" / "charts.md").read_text(encoding="utf-8")
    assert ('timeline chart "total tariff by us on cn" --from 2025-01-01 --to 2026-03-31 \\\n'
            '    --known-on 2025-06-10 -o docs/img/total-us-cn.svg') in doc
    ids = _ids(ET.parse(image).getroot())
    assert {"series-total", "known-on-2025-06-10-total", "band-us.tariff.ieepa-reciprocal.cn",
            "marker-label-1"} <= set(ids)


def test_repl_prints_sparklines_under_history_on_a_terminal(seeded_store, monkeypatch):
    import io
    import os
    import shutil

    from timeline.surfaces.repl import Session

    class TTY(io.StringIO):
        def isatty(self):
            return True

    # a terminal tall enough that the answer is printed, not paged
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a: os.terminal_size((200, 60)))
    text = "history of us.tariff.ieepa-reciprocal.cn from 2025-04-01 to 2025-06-30"
    out = TTY()
    s = Session(Timeline(seeded_store), out=out, err=io.StringIO(), today=TODAY, interactive=True)
    assert s.execute(text)
    assert "us.tariff.ieepa-reciprocal.cn  ▁▆█▁▁▁▁  10→10" in out.getvalue()
    piped = io.StringIO()  # not a terminal: the output stays a plain table for tools
    assert Session(Timeline(seeded_store), out=piped, err=io.StringIO(), today=TODAY).execute(text)
    assert "▁" not in piped.getvalue()

"""The public Python API: docs/python-api.md runs as written, and the API's edges hold."""
from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import pytest

import timeline
from timeline.errors import QueryError, StoreError, TimelineError

from .backends import backend, make_db  # noqa: F401

DOC = Path(__file__).resolve().parent.parent / "docs" / "python-api.md"


def test_the_documented_examples_run_as_written(seeded_db, monkeypatch):
    monkeypatch.setenv("TIMELINE_DB", str(seeded_db))
    res = doctest.testfile(str(DOC), module_relative=False, optionflags=(
        doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE), raise_on_error=False, verbose=False)
    assert res.attempted > 15
    assert res.failed == 0


def test_every_public_name_is_importable_and_listed():
    for name in timeline.__all__:
        assert getattr(timeline, name) is not None, name
    assert {"open", "init", "Timeline", "Snapshot", "Result", "QueryError"} <= set(dir(timeline))
    assert timeline.Snapshot is timeline.api.Snapshot  # a snapshot is typed from the root


def test_help_shows_the_api():
    out = subprocess.run([sys.executable, "-c", "import timeline; help(timeline)"],
                         capture_output=True, text=True, env={"PAGER": "cat", "TERM": "dumb",
                                                              "PATH": ""}, timeout=60).stdout
    for name in ("open(db", "init(db", "class Timeline", "class Result", "QueryError"):
        assert name in out, name


def test_the_package_is_typed():
    assert (Path(timeline.__file__).parent / "py.typed").is_file()


def test_query_on_both_backends(make_db):  # noqa: F811
    url = make_db(seeded=True)
    with timeline.open(url) as tl:
        a = tl.query("total tariff by us on cn as of 2025-04-10")
        assert a.total == 145
        assert [r["rate"] for r in a.rows][:2] == [20, 125]
        assert tl.state("cn.tariff.retaliatory.us", as_of="2025-04-10",
                        known_on="2025-04-08")["state"]["rate"] == 34
        assert tl.verify().position == tl.head.position


def test_a_pattern_is_refused_by_state(seeded_db):
    with timeline.open(seeded_db) as tl, pytest.raises(QueryError, match="one measure id"):
        tl.state("us.tariff.*")


def test_a_missing_file_is_an_error_unless_created(tmp_path):
    with pytest.raises(StoreError, match="no database at"):
        timeline.open(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()
    with timeline.open(tmp_path / "new.db", create=True) as tl:
        assert tl.head.position > 0  # the bundled seeds


def test_init_without_seeds_then_load(tmp_path):
    from timeline.resources import seeds_path

    with timeline.init(tmp_path / "empty.db", seeds=False) as tl:
        assert tl.head.position == 0
        res = tl.load([seeds_path()])
        assert len(res.appended) == res.head.position > 0 and res.skipped == 0


def test_read_only_timeline_refuses_writes(seeded_db):
    with timeline.open(seeded_db, readonly=True) as tl:
        with pytest.raises(StoreError, match="read-only"):
            tl.rebuild()
        assert tl.sql("SELECT 1 AS one") == (["one"], [(1,)])


def test_sql_from_a_writable_timeline_is_still_read_only(seeded_db):
    with timeline.open(seeded_db) as tl:
        with pytest.raises(StoreError, match="read-only"):
            tl.sql("DELETE FROM events")
        assert tl.head.position > 0


def test_to_pandas(seeded_db):
    pd = pytest.importorskip("pandas", reason="pandas is an optional extra")
    with timeline.open(seeded_db) as tl:
        df = tl.query("total tariff by us on cn as of 2025-04-10").to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["measure", "rate", "scope"] and len(df) == 2  # all-goods rows


def test_to_pandas_without_pandas_says_how_to_install(seeded_db, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # an import of it now fails
    with timeline.open(seeded_db) as tl:
        with pytest.raises(TimelineError, match=r"pip install 'timeline\[pandas\]'"):
            tl.query("measures").to_pandas()


def test_result_of_a_non_total_has_no_total(seeded_db):
    with timeline.open(seeded_db) as tl:
        a = tl.query("history of us.tariff.ieepa-fentanyl.cn")
    assert a.total is None and a.kind == "history" and a.rows


@pytest.mark.parametrize("bad", ["us.tariff.ieepa-reciprocal.cn as of 2024-01-01",
                                 "us.tariff.ieepa-reciprocal.cn where rate > 1000", "us.*", 3,
                                 "US.tariff.x", ""])
def test_state_builds_its_query_from_values_never_from_text(seeded_db, bad):
    with timeline.open(seeded_db) as tl:
        with pytest.raises(QueryError, match="in the arguments: state.. takes one measure id"):
            tl.state(bad, as_of="2025-08-13")
        # the as_of given is the one answered, whatever the id's text
        s = tl.state("us.tariff.ieepa-reciprocal.cn", as_of="2025-08-13", known_on="2025-06-10")
        assert (s["state"]["rate"], s["since"]) == (34, "2025-08-12")

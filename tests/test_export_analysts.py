"""Exports for analysts' tools: totals apart from the data rows, Parquet beside the CSVs with
proper types, the same rows read either way, and backfills that never move `latest`."""
from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import sys

import pytest

from tests.backends import backend, make_db  # noqa: F401
from tests.conftest import run_cli
from timeline.errors import TimelineError
from timeline.api import Timeline
from timeline.store.store import Store
from timeline.surfaces import columnar, export
from timeline.surfaces.export import read_latest, verify_snapshot, write_snapshot

duckdb = pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
DUCK_TYPES = {"text": "VARCHAR", "date": "DATE", "rate": "DOUBLE", "bool": "BOOLEAN",
              "number": "DOUBLE"}


@pytest.fixture
def ro_store(seeded_db):
    store = Store.open(str(seeded_db), readonly=True)
    yield store
    store.close()


@pytest.fixture
def snap(ro_store, tmp_path):
    return write_snapshot(Timeline(ro_store), tmp_path / "out", "2025-04-10", None).path


def _csv(path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_totals_are_a_file_of_their_own(snap, ro_store):
    import timeline

    totals = {(r["imposer"], r["target"]): r for r in _csv(snap / "totals.csv")}
    assert set(totals) == {("us", "cn"), ("cn", "us")}
    us = totals["us", "cn"]
    with timeline.Timeline(ro_store) as tl:
        assert us["total"] == str(tl.query("total tariff by us on cn as of 2025-04-10").total)
    assert us["total"] == "145" and us["as_of"] == "2025-04-10" and us["known_on"] == ""
    assert "us.tariff.ieepa-reciprocal.cn" in json.loads(us["measures"])
    with ro_store.reading() as r:
        assert us["projected"] == "false" and us["known_through"] == r.horizon()
    for data in ("state.csv", "intervals.csv"):
        text = (snap / data).read_text(encoding="utf-8")
        assert "TOTAL" not in text  # no summary line among the data rows


def _duck_csv(path, columns) -> str:
    cols = ", ".join(f"'{n}': '{DUCK_TYPES[k]}'" for n, k in columns)
    return f"read_csv('{path}', header=true, columns={{{cols}}})"


@pytest.mark.parametrize("stem,columns", [(s, c) for s, c, _ in export.TABLES])
def test_duckdb_reads_the_same_rows_from_parquet_and_csv(snap, stem, columns):
    con = duckdb.connect()
    a = _duck_csv(snap / f"{stem}.csv", columns)
    b = f"read_parquet('{snap / f'{stem}.parquet'}')"
    n_csv = con.execute(f"SELECT count(*) FROM {a}").fetchall()[0][0]
    n_pq = con.execute(f"SELECT count(*) FROM {b}").fetchall()[0][0]
    assert n_csv == n_pq == len(_csv(snap / f"{stem}.csv")) > 0
    for x, y in ((a, b), (b, a)):
        assert con.execute(f"SELECT * FROM {x} EXCEPT ALL SELECT * FROM {y}").fetchall() == []
    described = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {b}").fetchall()}
    assert described == {n: DUCK_TYPES[k] for n, k in columns}


def test_pandas_reads_the_same_rows_from_parquet_and_csv(snap):
    pd = pytest.importorskip("pandas")
    for stem, columns, _ in export.TABLES:
        text = pd.read_csv(snap / f"{stem}.csv", dtype=str, keep_default_na=False)
        typed = pd.read_parquet(snap / f"{stem}.parquet")
        assert list(text.columns) == list(typed.columns) == [n for n, _ in columns]

        def cell(v):
            if v is None or (isinstance(v, float) and v != v):
                return ""
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, decimal.Decimal):
                return format(v.normalize(), "f")
            if isinstance(v, float):  # products.parquet's float64 totals; CSV drops `.0`
                return str(int(v)) if v.is_integer() else repr(v)
            if isinstance(v, dt.date):
                return v.isoformat()
            return str(v)
        got = [[cell(v) for v in row] for row in typed.astype(object).itertuples(index=False)]
        assert got == text.values.tolist(), stem


def test_parquet_types_dates_numbers_and_nulls(snap):
    schema = pq.read_schema(snap / "intervals.parquet")
    assert schema.field("valid_from").type == pa.date32()
    # rates are numbers pandas computes with (a decimal column would arrive as `object`)
    assert schema.field("rate").type == pa.float64()
    frame = pq.read_table(snap / "intervals.parquet").to_pandas()
    assert str(frame["rate"].dtype) == "float64" and frame["rate"].max() == 125
    table = pq.read_table(snap / "intervals.parquet").to_pylist()
    open_ended = [r for r in table if r["valid_to"] is None]
    assert open_ended and all(r["valid_to"] is None for r in open_ended)
    reciprocal = [r for r in table if r["measure"] == "us.tariff.ieepa-reciprocal.cn"]
    assert [r["rate"] for r in reciprocal[:3]] == [10.0, 84.0, 125.0]
    assert reciprocal[0]["valid_from"] == dt.date(2025, 4, 5)
    no_rate = [r for r in pq.read_table(snap / "state.parquet").to_pylist() if r["rate"] is None]
    assert no_rate  # measures without a rate have a null, not 0 or ""
    totals = pq.read_table(snap / "totals.parquet").to_pylist()
    assert {r["projected"] for r in totals} == {False} and totals[0]["known_on"] is None


def test_manifest_lists_and_hashes_the_parquet_files(snap):
    m = json.loads((snap / "manifest.json").read_text())
    for stem in ("intervals", "state", "totals"):
        info = m["files"][f"{stem}.parquet"]
        assert info["rows"] == m["files"][f"{stem}.csv"]["rows"]
    assert m["parquet"] == "written"


def test_a_tampered_parquet_file_fails_verify(snap):
    path = snap / "state.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    r = run_cli("export", "--verify", str(snap))
    assert r.returncode == 1 and "state.parquet: SHA-256 differs" in r.stderr
    assert "Traceback" not in r.stderr


def test_without_pyarrow_only_csvs_and_the_manifest_says_so(ro_store, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert not columnar.available()
    res = write_snapshot(Timeline(ro_store), tmp_path / "out", "2025-04-10", None)
    assert not list(res.path.glob("*.parquet"))
    assert res.manifest["parquet"] == columnar.MISSING
    assert "pip install 'timeline[parquet]'" in columnar.MISSING
    assert verify_snapshot(res.path) == []


def test_a_snapshot_with_parquet_verifies_where_pyarrow_is_missing(snap, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert columnar.parquet_rows(snap / "state.parquet") is None
    assert verify_snapshot(snap) == []  # hashes still checked, rows left to the hash


def test_a_rate_that_is_no_number_fails_the_export_and_keeps_the_last(ro_store, tmp_path,
                                                                      monkeypatch):
    out = tmp_path / "out"
    write_snapshot(Timeline(ro_store), out, "2025-04-10", None)

    def hostile(r, as_of, known_on):
        return [("x.measure", None, None, None, "higher", None, None, None, None, None, None,
                 {}, [])]
    tables = (export.TABLES[0], ("state", export.STATE_COLUMNS, hostile), export.TABLES[2])
    monkeypatch.setattr(export, "TABLES", tables)
    with pytest.raises(TimelineError,
                       match="state.parquet: x.measure: rate 'higher' is not a number"):
        write_snapshot(Timeline(ro_store), out, "2025-04-11", None)
    assert export.snapshots(out) == ["2025-04-10"] and read_latest(out) == "2025-04-10"
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize("value,ok", [(7.5, True), (10**12 - 1, True), (10**12, False),
                                      (1e-7, False), (True, False), ("7", False)])
def test_rates_are_checked_as_decimals_then_written_as_numbers(value, ok):
    if ok:
        got = columnar._value("rate", value, "w")
        assert isinstance(got, float) and repr(got) == repr(float(value))
    else:
        with pytest.raises(TimelineError, match=r"^w .*(is not a number|does not fit)"):
            columnar._value("rate", value, "w")


# -- backfills and `latest` -----------------------------------------------------------------
def test_a_backfill_never_moves_latest(seeded_db, tmp_path):
    out = tmp_path / "out"
    base = ("export", "--db", str(seeded_db), "--out", str(out))
    assert run_cli(*base, "--as-of", "2025-06-01").returncode == 0
    r = run_cli(*base, "--as-of", "2025-05-14", "--known-on", "2025-05-01")
    assert r.returncode == 0 and "2025-05-14_known_2025-05-01" in r.stdout
    assert read_latest(out) == "2025-06-01"
    # the next nightly run is up to date, and `latest` still names the nightly
    r = run_cli(*base, "--as-of", "2025-06-01")
    assert r.stdout.startswith("up to date") and read_latest(out) == "2025-06-01"
    # an as-of older than the newest nightly, without --known-on, is a backfill too
    r = run_cli(*base, "--as-of", "2025-05-20")
    assert r.returncode == 0 and f"{out / '2025-05-20_backfill'}" in r.stdout
    assert read_latest(out) == "2025-06-01"
    m = json.loads((out / "2025-05-20_backfill" / "manifest.json").read_text())
    assert m["kind"] == "backfill" and m["as_of"] == "2025-05-20"
    assert verify_snapshot(out / "2025-05-20_backfill") == []
    r = run_cli("export", "--verify", str(out))
    assert r.returncode == 0 and "2025-06-01" in r.stdout
    # a newer nightly moves it
    assert run_cli(*base, "--as-of", "2025-06-02").returncode == 0
    assert read_latest(out) == "2025-06-02"
    m = json.loads((out / "2025-06-02" / "manifest.json").read_text())
    assert m["kind"] == "nightly" and m["previous_nightly"] == "2025-06-01"


def test_an_up_to_date_run_repairs_a_latest_left_on_a_backfill(ro_store, tmp_path):
    out = tmp_path / "out"
    write_snapshot(Timeline(ro_store), out, "2025-06-01", None)
    write_snapshot(Timeline(ro_store), out, "2025-05-14", "2025-05-01")
    (out / "latest").write_text("2025-05-14_known_2025-05-01\n")  # as an older version left it
    assert not write_snapshot(Timeline(ro_store), out, "2025-06-01", None).written
    assert read_latest(out) == "2025-06-01"


def test_export_as_of_takes_the_date_forms_of_queries(seeded_db, tmp_path):
    out = tmp_path / "out"
    r = run_cli("export", "--db", str(seeded_db), "--out", str(out), "--as-of", "today - 1 day")
    assert r.returncode == 0, r.stderr
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    assert read_latest(out) == yesterday and verify_snapshot(out / yesterday) == []
    r = run_cli("export", "--db", str(seeded_db), "--out", str(out), "--as-of", "today",
                "--known-on", "today - 2 weeks")
    two_weeks = (dt.date.today() - dt.timedelta(days=14)).isoformat()
    assert r.returncode == 0 and f"_known_{two_weeks}" in r.stdout
    assert read_latest(out) == yesterday  # a --known-on export is a backfill


def test_parquet_and_totals_are_the_same_on_every_backend(make_db, ro_store, tmp_path):
    """PostgreSQL (when configured) exports the tables SQLite exports, value for value."""
    other = Store.open(make_db(), readonly=True)
    try:
        theirs = write_snapshot(Timeline(other), tmp_path / "b", "2025-06-12", "2025-06-10").path
    finally:
        other.close()
    ours = write_snapshot(Timeline(ro_store), tmp_path / "a", "2025-06-12", "2025-06-10").path
    for stem, _, _ in export.TABLES:
        assert pq.read_table(theirs / f"{stem}.parquet").to_pylist() == \
            pq.read_table(ours / f"{stem}.parquet").to_pylist(), stem
        assert (theirs / f"{stem}.csv").read_bytes() == (ours / f"{stem}.csv").read_bytes()


def test_a_future_as_of_is_a_backfill_and_never_pins_latest(seeded_db, tmp_path):
    """Attack: a mistyped far-future --as-of was taken for the newest nightly; every real
    nightly after it became a backfill and `latest` stayed on the projection for good."""
    out = tmp_path / "out"
    base = ("export", "--db", str(seeded_db), "--out", str(out))
    assert run_cli(*base, "--as-of", "2025-06-01").returncode == 0
    r = run_cli(*base, "--as-of", "9999-12-31")
    assert r.returncode == 0 and f"{out / '9999-12-31_backfill'}" in r.stdout
    m = json.loads((out / "9999-12-31_backfill" / "manifest.json").read_text())
    assert m["kind"] == "backfill" and read_latest(out) == "2025-06-01"
    today = dt.date.today().isoformat()
    r = run_cli(*base)
    assert r.returncode == 0 and f"{out / today}:" in r.stdout
    assert read_latest(out) == today


def test_an_export_folder_whose_name_is_not_utf8(ro_store, tmp_path):
    """Attack: a folder named with a byte that is not UTF-8 (Python holds it as a lone
    surrogate) was an internal error from pyarrow's path encoder; the CSVs had been fine."""
    out = tmp_path / "ex-\udcff"
    res = write_snapshot(Timeline(ro_store), out, "2025-06-01", None)
    assert res.written and verify_snapshot(res.path) == []
    assert pq.read_table(open(res.path / "state.parquet", "rb")).num_rows == \
        json.loads((res.path / "manifest.json").read_text())["row_counts"]["state.parquet"]

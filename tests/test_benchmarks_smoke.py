"""The benchmark harness keeps working: a tiny run end to end (no timing assertions).

The CLI cold start is timed once (two processes beside the warm-up) by default, 7 times as
in a real run under TIMELINE_LONG_TESTS=1: it was most of the run's time.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LONG = os.environ.get("TIMELINE_LONG_TESTS") == "1"
sys.path.insert(0, str(REPO))

from benchmarks.generate import RowsHash, batches, generate, generate_rows, rows_hash  # noqa: E402
from benchmarks.reference import eventsourcing_available  # noqa: E402

from .backends import PG_URL, only_postgres  # noqa: E402

PRIMARY = {"batched_append", "single_append", "as_of_p50", "e2e_p50", "known_on_p50",
           "rebuild", "rebuild_rss", "cli_cold_start", "growth"}
ES_REFERENCED = {"batched_append", "single_append", "as_of_es", "replay_es"}
PG = {"pg_batched_append", "pg_batched_append_raw", "pg_single_append", "pg_single_append_raw",
      "pg_as_of_p50", "pg_as_of_p99", "pg_as_of_es", "pg_known_on_api_p50",
      "pg_known_on_api_p99"}
PG_ES_REFERENCED = {"pg_batched_append", "pg_single_append", "pg_as_of_es"}


def test_generation_is_deterministic():
    a, b = generate(2000, 200, seed=7), generate(2000, 200, seed=7)
    assert a.rows_hash() == b.rows_hash() == rows_hash(b.rows)
    assert a.rows == b.rows
    assert generate(2000, 200, seed=8).rows_hash() != a.rows_hash()
    st = a.stats
    assert st["streams_opened"] == 200
    assert 0.03 * 2000 <= st["retroactive"] <= 0.07 * 2000
    assert 0 < st["known_later"] <= 0.03 * 2000
    assert 200 <= st["mean_json_bytes"] <= 400
    # retroactive means: effective before the stream's latest, never before its first
    first, latest, retro = {}, {}, 0
    for r in a.rows:
        if r.stream not in first:
            assert r.type == "imposed" and r.version == 1
            first[r.stream] = latest[r.stream] = r.effective
            continue
        assert r.effective >= first[r.stream]
        if r.effective < latest[r.stream]:
            retro += 1
        latest[r.stream] = max(latest[r.stream], r.effective)
    assert retro == st["retroactive"]


def test_generated_rows_are_valid_events():
    from timeline.log.validation import validate

    from benchmarks.generate import new_events

    for ev in new_events(generate(500, 50, seed=1).rows):
        validate(ev)


def test_streamed_rows_are_the_generated_rows():
    # the harness streams the rows (a 10M-row list does not fit comfortably): the stream,
    # its batches and the incremental hash must be exactly the list's
    w = generate(3000, 300, seed=11)
    stats: dict = {}
    streamed = list(generate_rows(3000, 300, 11, stats))
    assert streamed == w.rows and stats == w.stats
    h = RowsHash()
    for b in batches(iter(streamed), 700):
        assert 0 < len(b) <= 700
        for r in b:
            h.add(r)
    assert h.hexdigest() == rows_hash(w.rows) == w.rows_hash()
    assert [len(b) for b in batches(w.rows, 700)] == [700, 700, 700, 700, 200]


@pytest.fixture(scope="module")
def harness_run(tmp_path_factory):
    """One tiny harness run (on PostgreSQL too when TIMELINE_TEST_POSTGRES_URL is set)."""
    tmp = tmp_path_factory.mktemp("bench")
    out, md = tmp / "bench.json", tmp / "RESULTS.md"
    cmd = [sys.executable, "-m", "benchmarks", "--events", "2000", "--streams", "200",
           "--single", "200", "--samples", "300", "--rounds", "2", "--growth-at", "1000",
           "--pg-single", "200", "--quiet",
           "--json", str(out), "--markdown", str(md)] + ([] if LONG else ["--cli-runs", "1"])
    es = eventsourcing_available() is not None
    if not es:
        cmd.append("--skip-reference")
    env = {k: v for k, v in os.environ.items() if k != "TIMELINE_BENCH_POSTGRES_URL"}
    if PG_URL:
        env["TIMELINE_BENCH_POSTGRES_URL"] = PG_URL
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(out.read_text()), md.read_text(), es


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and v > 0 and math.isfinite(v)


def test_harness_runs_end_to_end(harness_run):
    proc, result, md, es = harness_run
    figs = {f["key"]: f for f in result["figures"]}
    assert PRIMARY | {"growth_known", "batched_append_full"} <= set(figs)
    for key, f in figs.items():
        if key in PG:
            continue
        assert _finite(f["ours"]), key
        if key in ES_REFERENCED and not es:
            continue
        assert f["reference"] > 0, key
        assert f["ratio"] > 0, key
    g = result["queries"]["growth"]
    assert all(_finite(g[k]) for k in ("ours", "raw", "known_ours", "known_raw"))
    assert result["workload"]["rows_hash"] == generate(2000, 200).rows_hash()
    assert result["workload"]["retroactive"] == generate(2000, 200).stats["retroactive"]
    assert "figure" in proc.stdout and "batched append" in proc.stdout
    assert "| figure |" in md
    if not es:
        assert "skipped" in proc.stdout


@only_postgres
def test_harness_measures_postgres_and_drops_its_database(harness_run):
    import psycopg
    from sqlalchemy.engine import make_url

    proc, result, md, es = harness_run
    pg = result["postgres"]
    figs = {f["key"]: f for f in result["figures"]}
    assert PG <= set(figs)
    es_pg = es and pg["eventsourcing"]
    for key in PG:
        f = figs[key]
        assert "PostgreSQL" in f["figure"], key
        assert _finite(f["ours"]), key
        if key in PG_ES_REFERENCED and not es_pg:
            continue
        assert _finite(f["reference"]) and _finite(f["ratio"]), key
    assert pg["events"] == 2000 and pg["rows_hash"] == generate(2000, 200).rows_hash()
    assert pg["settings"]["synchronous_commit"] == "on"
    assert "PostgreSQL" in proc.stdout and "PostgreSQL rows" in md
    # the scratch database (or schemas) the run created is gone
    u = make_url(PG_URL)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                         dbname=u.database, autocommit=True) as c:
        if pg["database"]:
            assert pg["database"].startswith(f"{u.database}_bench_")
            assert not c.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (pg["database"],)).fetchone()
        else:
            assert pg["schemas"]
            assert not c.execute("SELECT 1 FROM pg_namespace WHERE nspname = ANY(%s)",
                                 (pg["schemas"],)).fetchone()


def test_the_product_benchmark_runs(tmp_path, capsys, monkeypatch):
    """benchmarks.products on a small workload (its synthetic log runs past today, which
    the benchmark admits as a rehearsal): a table and finite medians, no timing asserted."""
    import json

    from benchmarks import products

    # the benchmark widens the knowledge margin for its own process: keep it to this test
    monkeypatch.setenv("TIMELINE_KNOWN_MARGIN_DAYS", "3650")

    out = tmp_path / "products.json"
    assert products.main(["--measures", "5", "--lines", "5", "--exemptions", "2",
                          "--rounds", "20", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["state_p50"] > 0 and res["tariff_p50"] > 0 and res["ratio"] > 0
    assert "ratio of medians" in capsys.readouterr().out


def test_the_every_row_reference_replays_exactly_what_the_append_wrote(tmp_path):
    # the raw reference of every row the append writes is only a fair floor if it writes
    # the same rows: replayed on a trigger-free copy, every table ends equal to the store's
    import sqlite3

    from benchmarks import reference as ref
    from benchmarks.generate import new_events
    from benchmarks.sides import SqliteSides

    sides = SqliteSides(tmp_path)
    ours = sides.ours_create("ours")
    full = sides.raw_full_create("full", "ours")
    rows = generate(1500, 100, seed=3).rows
    with ref.WriteRecorder() as rec:
        for b in batches(rows, 400):
            ours.append(new_events(b))
            sides.raw_full_append(full, rec.take())
    ours.close()
    full.close()
    assert not sqlite3.connect(sides.path("full")).execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for t in ("events", "event_links", "intervals", "known_intervals", "measures",
              "projection_head"):
        a, b = (sqlite3.connect(sides.path(n)).execute(f"SELECT * FROM {t} ORDER BY 1, 2")
                .fetchall() for n in ("ours", "full"))
        assert a == b, t


def test_eventsourcing_on_postgres_is_skipped_with_the_psycopg_that_hangs_it():
    pytest.importorskip("eventsourcing.postgres", reason="eventsourcing's PostgreSQL module "
                        "needs psycopg-pool (pip install '.[bench]')")
    from benchmarks.postgres import es_postgres_unusable

    why = es_postgres_unusable("3.3.9")
    assert why is not None and "3.3.9" in why and "psycopg[binary]<3.3" in why
    assert es_postgres_unusable("3.2.13") is None
    assert es_postgres_unusable("3.4.0") is None  # a later release is tried again

"""`timeline copy`: a whole log moved between databases and backends, hash chain intact."""
from __future__ import annotations

from sqlalchemy import text

from timeline.store.store import Store

from .backends import (answers, backend, blank_url, make_db,  # noqa: F401
                       projections_match_rebuild, raw_engine, run_main)
from .conftest import run_cli_process


def _copy(src: str, dst: str, real: bool = False):
    return (run_cli_process if real else run_main)("copy", "--from", src, "--to", dst)


def test_copy_round_trip_keeps_the_chain(backend, tmp_path, seeded_db):
    src = f"sqlite:///{seeded_db}"
    mid = blank_url(backend, tmp_path, "mid")
    back = tmp_path / "back.db"
    r = _copy(src, mid, real=True)
    assert r.returncode == 0, r.stderr
    assert "both chains verify" in r.stdout
    r = _copy(mid, str(back))
    assert r.returncode == 0, r.stderr
    heads = []
    for url in (src, mid, f"sqlite:///{back}"):
        store = Store.open(url)
        try:
            heads.append(store.verify())
            assert projections_match_rebuild(store)
        finally:
            store.close()
    assert heads[0] == heads[1] == heads[2]
    with Store.open(src).engine.connect() as a, Store.open(mid).engine.connect() as b:
        rows = [c.execute(text("SELECT * FROM events ORDER BY position")).all() for c in (a, b)]
        links = [c.execute(text("SELECT * FROM event_links ORDER BY position, stream")).all()
                 for c in (a, b)]
    assert rows[0] == rows[1] and links[0] == links[1]
    assert answers(src) == answers(mid)


def test_copy_refuses_a_non_empty_target(backend, tmp_path, seeded_db, make_db):
    dst = make_db()
    before = Store.open(dst).head()
    r = _copy(f"sqlite:///{seeded_db}", dst)
    assert r.returncode == 1 and "empty target" in r.stderr and "Traceback" not in r.stderr
    assert Store.open(dst).head() == before


def test_copy_refuses_a_tampered_source(backend, tmp_path, seeded_db):
    eng = raw_engine(f"sqlite:///{seeded_db}")
    with eng.begin() as c:
        c.execute(text("DROP TRIGGER events_no_update"))
        c.execute(text("UPDATE events SET effective = '2025-01-02' WHERE position = 5"))
        c.execute(text("CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
                       "BEGIN SELECT RAISE(ABORT, 'events is append-only'); END"))
    eng.dispose()
    dst = blank_url(backend, tmp_path)
    r = _copy(f"sqlite:///{seeded_db}", dst)
    assert r.returncode == 1 and "position 5" in r.stderr and "Traceback" not in r.stderr
    if backend == "sqlite":
        from pathlib import Path

        assert not Path(dst.removeprefix("sqlite:///")).exists()

"""Concurrent writers and readers on one log (SQLite and PostgreSQL).

Writers are separate processes appending to the same streams with optimistic concurrency:
each reads a stream's version, appends with `expected_versions`, and on ConcurrencyError
re-reads and retries. Afterwards every version of every stream must be present exactly once
with no gaps, every append a writer saw succeed must be in the log, and the chain and the
projections must hold. Meanwhile the test process reads snapshots and checks that the
projections it sees equal a fold of the log in that same snapshot.

A held write lock must reach the user as a clear "busy" message, never a traceback.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from timeline.projections.knowledge import known_rows
from timeline.projections.fold import fold, superseded_ids
from timeline.store.store import Store

from .backends import backend, make_db, new_event, projections_match_rebuild  # noqa: F401
from .conftest import run_cli, run_cli_process

LONG = os.environ.get("TIMELINE_LONG_TESTS") == "1"
WRITERS = 4
# 4 x 100 appends collide a few dozen times (the test fails if they never do) in a few
# seconds; a stream's re-folds grow with it, so 500 took 15-35 s
APPENDS = 2500 if LONG else 100
STREAMS = [f"us.tariff.concurrency-{i}.cn" for i in range(10)]

WRITER = r'''
import datetime as dt, json, random, sys
from sqlalchemy import text
from timeline.errors import ConcurrencyError
from timeline.log.events import NewEvent
from timeline.store.store import Store

url, wid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
streams, out = json.loads(sys.argv[4]), sys.argv[5]
rnd = random.Random(wid)
store = Store.open(url)
done, conflicts = [], 0
for i in range(n):
    s = rnd.choice(streams)
    # mostly at the end of valid time, one in ten back-dated (a re-fold of the stream)
    back = rnd.randrange(10) == 0
    day = dt.date(2025, 2, 1) + dt.timedelta(days=rnd.randrange(i + 1) if back else i)
    ev = NewEvent(s, "amended", day, {"title": f"w{wid} #{i}", "set": {"rate": i % 50,
                  "stage": f"writer {wid}"}}, {"name": "concurrency test"})
    while True:
        with store.reading() as c:
            v = c.conn.execute(text("SELECT version FROM measures WHERE stream = :s"),
                          {"s": s}).scalar_one()
        try:
            res = store.append([ev], expected_versions={s: v})
        except ConcurrencyError as exc:
            assert exc.stream == s and exc.expected == v and exc.actual > v
            conflicts += 1
            continue
        e = res.appended[0]
        assert e.version == v + 1
        done.append([e.id, e.stream, e.version, e.position])
        break
with open(out, "w") as f:  # a file, not stdout: a full pipe would block the writer
    json.dump({"done": done, "conflicts": conflicts}, f)
'''


def _snapshot_is_consistent(store: Store, stream: str) -> tuple[int, bool]:
    """In one read transaction: head, and whether the projections equal a fold of the log."""
    with store.reading() as c:
        head = c.conn.execute(text("SELECT COALESCE(MAX(position), 0) FROM events")).scalar_one()
        version = c.conn.execute(text("SELECT version FROM measures WHERE stream = :s"),
                            {"s": stream}).scalar_one()
        own = c.conn.execute(text("SELECT COUNT(*) FROM events WHERE stream = :s"),
                        {"s": stream}).scalar_one()
        stored = [(r.valid_from, r.valid_to, json.loads(r.state), json.loads(r.event_ids))
                  for r in c.conn.execute(text(
                      "SELECT valid_from, valid_to, state, event_ids FROM intervals "
                      "WHERE stream = :s ORDER BY valid_from"), {"s": stream})]
        evs = c.touching_events(stream)
        known = [tuple(r) for r in c.conn.execute(text(
            "SELECT stream, valid_from, known_from, known_to, state, event_ids FROM "
            "known_intervals WHERE stream = :s ORDER BY valid_from, known_from"), {"s": stream})]
    folded = [(iv.valid_from, iv.valid_to, iv.state, list(iv.event_ids))
              for iv in fold(stream, evs, excluded=superseded_ids(evs)).intervals]
    return head, version == own and stored == folded and known == known_rows(stream, evs)


@pytest.mark.slow
def test_concurrent_writers_lose_nothing_and_readers_see_consistent_snapshots(
        make_db, backend, tmp_path):
    url = make_db(seeded=False)
    store = Store.open(url)
    store.append([new_event(s, "imposed", "2025-01-01", set={"rate": 1}) for s in STREAMS])
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    outs = [tmp_path / f"writer-{w}.json" for w in range(WRITERS)]
    errs = [(tmp_path / f"writer-{w}.err").open("w") for w in range(WRITERS)]
    procs = [subprocess.Popen([sys.executable, str(script), url, str(w), str(APPENDS),
                               json.dumps(STREAMS), str(outs[w])], stdout=subprocess.DEVNULL,
                              stderr=errs[w]) for w in range(WRITERS)]
    reader = Store.open(url, readonly=True)
    snapshots, heads, bad, i = 0, set(), [], 0
    t0 = time.monotonic()
    while any(p.poll() is None for p in procs):
        head, ok = _snapshot_is_consistent(reader, STREAMS[i % len(STREAMS)])
        snapshots, i = snapshots + 1, i + 1
        heads.add(head)
        if not ok:
            bad.append(head)
        if time.monotonic() - t0 > 600:
            break
        time.sleep(0.02)  # leave the CPUs to the writers
    for p, err in zip(procs, errs):
        p.wait(timeout=600)
        err.close()
    reader.close()
    for w, p in enumerate(procs):
        assert p.returncode == 0, (tmp_path / f"writer-{w}.err").read_text()
    results = [json.loads(o.read_text()) for o in outs]
    assert not bad, f"inconsistent snapshots at heads {bad[:5]}"

    done = [tuple(d) for r in results for d in r["done"]]
    conflicts = sum(r["conflicts"] for r in results)
    assert len(done) == WRITERS * APPENDS
    with store.reading() as c:
        rows = c.conn.execute(text("SELECT id, stream, version, position FROM events "
                              "ORDER BY position")).all()
    assert len(rows) == len(STREAMS) + WRITERS * APPENDS
    by_stream: dict[str, list[int]] = {}
    for r in rows:
        by_stream.setdefault(r.stream, []).append(r.version)
    for s in STREAMS:  # every version exactly once, no gaps
        assert sorted(by_stream[s]) == list(range(1, len(by_stream[s]) + 1))
    assert set(done) <= {tuple(r) for r in rows}  # every acknowledged append is there
    assert [r.position for r in rows] == list(range(1, len(rows) + 1))
    assert store.verify().position == len(rows)
    assert projections_match_rebuild(store)
    assert conflicts > 0, "the writers never collided; the test proved nothing"
    store.close()
    print(f"\n[{backend}] {WRITERS} writers x {APPENDS} appends: {len(done)} acknowledged, "
          f"{len(done)} present, {conflicts} conflicts retried; {snapshots} reader snapshots "
          f"({len(heads)} distinct heads), 0 inconsistent")


@pytest.mark.parametrize("argv", [
    ["load", "{event}"],
    ["rebuild"],
    ["init"],
])
def test_held_write_lock_is_a_clear_busy_message(seeded_db, tmp_path, argv):
    event = tmp_path / "ev.toml"
    event.write_text('[[events]]\nstream = "us.tariff.busy.cn"\ntype = "imposed"\n'
                     'effective = 2025-01-01\nknown = 2025-01-01\ntitle = "busy"\n'
                     '[events.source]\nname = "test"\n')
    holder = sqlite3.connect(seeded_db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        t0 = time.monotonic()
        # processes of their own: the busy timeout is read when timeline.log.db is imported
        r = run_cli_process(*[a.format(event=event) for a in argv], "--db", str(seeded_db),
                            env={"TIMELINE_BUSY_TIMEOUT_MS": "300"})
        elapsed = time.monotonic() - t0
        assert r.returncode == 1, r.stderr
        assert "is busy" in r.stderr and "try again" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and "sqlite3" not in r.stderr
        assert elapsed < 30
        # readers are not blocked by a writer (WAL)
        q = run_cli_process("query", "--db", str(seeded_db), "measures",
                            env={"TIMELINE_BUSY_TIMEOUT_MS": "300"})
        assert q.returncode == 0, q.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    r = run_cli(*[a.format(event=event) for a in argv], "--db", str(seeded_db))
    assert r.returncode == 0, r.stderr


def test_busy_timeout_is_overridable():
    r = subprocess.run([sys.executable, "-c", "from timeline.log import db; "
                        "print(db.BUSY_TIMEOUT_MS)"], capture_output=True, text=True,
                       env={**os.environ, "TIMELINE_BUSY_TIMEOUT_MS": "1234"})
    assert r.stdout.strip() == "1234"

"""Faults: a writer killed at random moments, a full disk, a read-only file system.

Crash trials: a child process appends (large batches, or many single-event transactions)
and reports every commit through a pipe; the test SIGKILLs it at a random moment. After each
kill the database must open, the chain must verify, every batch must be wholly present or
wholly absent, no reported commit may be missing, and the projections must equal a rebuild.

Both backends run (PostgreSQL when TIMELINE_TEST_POSTGRES_URL is set): 6 kills of each kind
(3 on PostgreSQL) by default, TIMELINE_CRASH_TRIALS sets the number, TIMELINE_LONG_TESTS=1
runs 200 of each.
"""
from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from timeline.store.store import Store

from .backends import (BACKENDS, PG_URL, NO_PG, new_db, new_event,  # noqa: F401
                       projections_match_rebuild)
from .conftest import run_cli

LONG = os.environ.get("TIMELINE_LONG_TESTS") == "1"
# most kills land inside an append (the batch test fails unless half do); 20 took 35 s
TRIALS = int(os.environ.get("TIMELINE_CRASH_TRIALS") or (200 if LONG else 6))
PG_TRIALS = TRIALS if LONG else min(TRIALS, 3)  # a server round trip per kill: fewer

CHILD = r'''
import datetime as dt, os, random, sys
from timeline.log.events import NewEvent, uuid7
from timeline.store.store import Store

url, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
store = Store.open(url)
SRC = {"name": "crash test"}
def ev(stream, type_, day, **p):
    p.setdefault("title", f"{type_} {day}")
    return NewEvent(stream, type_, dt.date(2025, 1, 1) + dt.timedelta(days=day), p, SRC,
                    id=uuid7())
def report(*parts):
    # one write(2) per line: a pipe write that small is atomic, so a kill cannot cut a
    # report in half (print() issues one write per argument under PYTHONUNBUFFERED)
    os.write(1, (" ".join(map(str, parts)) + "\n").encode())
report("R")
k = 0
while True:
    k += 1
    if mode == "batch":
        stream, case = f"us.tariff.crash-{seed}-{k}.cn", f"case.crash-{seed}-{k}"
        n = rnd.randrange(200, 3000)
        evs = [ev(stream, "imposed", 0, set={"rate": 1})]
        evs += [ev(stream, "amended", i, set={"rate": i % 90}) for i in range(1, n - 1)]
        evs.append(ev(case, "ruling", 5, affects=[stream],
                      affects_set={"legal_status": "stayed"}))
        report("S", k, n)
        store.append(evs)
        report("C", k, n)
    else:
        e = ev("us.tariff.crash-single.cn", "amended", 1 + k % 300, set={"rate": k % 50})
        report("S", e.id)
        store.append([e])
        report("C", e.id)
'''


def _run_and_kill(script: Path, url: str, mode: str, seed: int, delay: float) -> list[list[str]]:
    """Start the child, SIGKILL it `delay` seconds after it is ready; the lines it reported."""
    p = subprocess.Popen([sys.executable, str(script), url, mode, str(seed)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[list[str]] = []
    ready = threading.Event()

    def pump():
        for line in p.stdout:
            if line.startswith("R"):
                ready.set()
            lines.append(line.split())
        ready.set()
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    assert ready.wait(60), p.stderr.read()
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    t.join(30)
    err = p.stderr.read()
    assert p.returncode == -signal.SIGKILL, err  # it was still running: it did not fail
    reports = [line for line in lines if line and line[0] in ("S", "C")]
    width = 3 if mode == "batch" else 2
    assert all(len(line) == width for line in reports), (reports[-5:], err)
    return reports


def _settle(url: str) -> None:
    """PostgreSQL: wait until the killed client's transaction has ended on the server.

    A SIGKILL can land after the client sent COMMIT: the server then commits a moment later
    (the batch is present, unacknowledged — allowed). Taking the writers' advisory lock
    waits for that transaction to finish either way. SQLite has no server: nothing to do.
    """
    if not url.startswith("postgresql"):
        return
    from timeline.store.locking import write_lock

    store = Store.open(url)
    with store.engine.begin() as c:
        write_lock(c)
    store.close()


def _open_and_check(url: str) -> Store:
    _settle(url)
    store = Store.open(url)
    store.verify()
    assert projections_match_rebuild(store)
    return store


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_during_large_batches(backend, tmp_path, _seeded_template):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    rnd = random.Random(1)
    mid_batch = committed_batches = 0
    trials = TRIALS if backend == "sqlite" else PG_TRIALS
    for trial in range(trials):
        url = new_db(backend, tmp_path, seeded=True, template=_seeded_template,
                     name=f"batch{trial}")
        before = Store.open(url)
        seed_count = before.count()
        before.close()
        lines = _run_and_kill(script, url, "batch", trial, rnd.uniform(0.0, 0.6))
        started = {int(k): int(n) for tag, k, n in lines if tag == "S"}
        committed = {int(k) for tag, k, _ in lines if tag == "C"}
        store = _open_and_check(url)
        with store.reading() as c:
            counts = dict(c.conn.execute(text(
                "SELECT stream, COUNT(*) FROM events WHERE stream LIKE 'us.tariff.crash-%' "
                "OR stream LIKE 'case.crash-%' GROUP BY stream")).all())
            total = c.conn.execute(text("SELECT COUNT(*) FROM events")).scalar_one()
        present = 0
        for k, n in started.items():
            got = counts.get(f"us.tariff.crash-{trial}-{k}.cn", 0) + \
                counts.get(f"case.crash-{trial}-{k}", 0)
            assert got in (0, n), f"trial {trial}: batch {k} has {got} of {n} events"
            if k in committed:
                assert got == n, f"trial {trial}: committed batch {k} is missing"
            present += got
            if k not in committed:
                mid_batch += 1
        assert total == seed_count + present  # nothing else was written
        committed_batches += len(committed)
        store.close()
    # the kills must have landed inside appends, or the trials proved little
    assert mid_batch >= trials // 2
    print(f"\n[{backend}] batch crash: {trials} kills, {committed_batches} committed batches "
          f"all present, {mid_batch} kills during an append, 0 partial batches")


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_during_single_event_transactions(backend, tmp_path, _seeded_template):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    url = new_db(backend, tmp_path, seeded=False, name="singles")
    store = Store.open(url)
    store.append([new_event("us.tariff.crash-single.cn", "imposed", "2025-01-01")])
    store.close()
    rnd = random.Random(2)
    acknowledged: set[str] = set()
    offered: set[str] = set()
    trials = TRIALS if backend == "sqlite" else PG_TRIALS
    for trial in range(trials):
        lines = _run_and_kill(script, url, "single", trial, rnd.uniform(0.0, 0.3))
        offered |= {x for tag, x in lines if tag == "S"}
        acknowledged |= {x for tag, x in lines if tag == "C"}
        _settle(url)
        store = Store.open(url)
        store.verify()
        with store.reading() as c:
            ids = set(c.conn.execute(
                text("SELECT id FROM events WHERE type = 'amended'")).scalars())
            version = c.conn.execute(text("SELECT version FROM measures WHERE stream = "
                                     "'us.tariff.crash-single.cn'")).scalar_one()
        assert acknowledged <= ids, f"trial {trial}: acknowledged commits missing"
        assert ids <= offered  # nothing appeared that was not offered
        assert version == len(ids) + 1
        store.close()
    store = _open_and_check(url)
    store.close()
    r = run_cli("verify", "--db", url)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr
    print(f"\n[{backend}] single-event crash: {trials} kills, {len(acknowledged)} acknowledged "
          f"commits all present, {len(ids - acknowledged)} unacknowledged in-flight commits "
          f"kept, 0 lost")


# --- disk full and read-only -------------------------------------------------------------

def _big_event_file(path: Path, n: int = 3000) -> Path:
    out = ['[[events]]\nstream = "us.tariff.diskfull.cn"\ntype = "imposed"\n'
           'effective = 2025-01-01\nknown = 2025-01-01\ntitle = "opening"\n'
           'set = { rate = 1 }\nsource = { name = "test" }\n']
    for i in range(1, n):
        out.append(f'[[events]]\nstream = "us.tariff.diskfull.cn"\ntype = "amended"\n'
                   f'effective = {2025 + i // 365}-{1 + (i % 365) // 31:02d}-'
                   f'{1 + (i % 365) % 28:02d}\nknown = 2025-01-01\n'
                   f'title = "step {i} {"x" * 200}"\nset = {{ rate = {i % 90} }}\n'
                   f'source = {{ name = "test" }}\n')
    path.write_text("".join(out))
    return path


def _state(db: Path):
    store = Store.open(str(db))
    try:
        return store.verify(), store.count()
    finally:
        store.close()


def _assert_clean_failure(r, db: Path, before, *words: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.startswith("error:") and "Traceback" not in r.stderr, r.stderr
    assert any(w in r.stderr for w in words), r.stderr
    assert _state(db) == before  # nothing partial: same head, same count, chain verifies
    store = Store.open(str(db))
    assert projections_match_rebuild(store)
    store.close()


def test_disk_full_file_size_limit(seeded_db, tmp_path):
    """A file-size limit (RLIMIT_FSIZE, works unprivileged) makes the WAL write fail."""
    big = _big_event_file(tmp_path / "big.toml")
    before = _state(seeded_db)
    limit = 256 * 1024

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    r = subprocess.run([sys.executable, "-m", "timeline", "load", "--db", str(seeded_db),
                        str(big)], capture_output=True, text=True, preexec_fn=small_files,
                       timeout=120)
    _assert_clean_failure(r, seeded_db, before, "disk is full", "disk may be full")


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def tiny_fs(tmp_path):
    """A 2.5 MB tmpfs: the seeded database (1.2 MB) fits, a 3,000-event load does not (skipped
    where mounting is not permitted)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not shutil.which("mount") or not _mount("-t", "tmpfs", "-o", "size=2560k", "tmpfs",
                                               str(mnt)):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); the "
                    "RLIMIT_FSIZE disk-full test still runs")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_tiny_filesystem(seeded_db, tmp_path, tiny_fs):
    db = tiny_fs / "timeline.db"
    shutil.copy(seeded_db, db)
    before = _state(db)
    big = _big_event_file(tmp_path / "big.toml")
    r = run_cli("load", "--db", str(db), str(big))
    _assert_clean_failure(r, db, before, "disk is full")


def test_read_only_filesystem(seeded_db, tmp_path, tiny_fs):
    db = tiny_fs / "timeline.db"
    shutil.copy(seeded_db, db)
    before = _state(db)
    small = _big_event_file(tmp_path / "small.toml", n=3)
    assert _mount("-o", "remount,ro", str(tiny_fs))
    try:
        r = run_cli("load", "--db", str(db), str(small))
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("error:") and ("read-only" in r.stderr
                                                  or "unable to open" in r.stderr), r.stderr
    finally:
        assert _mount("-o", "remount,rw", str(tiny_fs))
    assert _state(db) == before

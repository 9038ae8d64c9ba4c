"""`timeline export`: contents, determinism, idempotence, --keep, --verify, hooks and kills."""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from timeline.surfaces import export
from timeline.log.events import NewEvent
from timeline.surfaces.export import read_latest, verify_snapshot, write_snapshot
from timeline.api import Timeline
from timeline.store.store import Store


@pytest.fixture
def ro_store(seeded_db):
    store = Store.open(str(seeded_db), readonly=True)
    yield store
    store.close()


def _csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- contents -------------------------------------------------------------------------------
def test_snapshot_contents(ro_store, tmp_path):
    res = write_snapshot(Timeline(ro_store), tmp_path / "out", "2025-04-10", None, False, None)
    snap = tmp_path / "out" / "2025-04-10"
    assert res.written and res.path == snap
    assert sorted(p.name for p in snap.iterdir()) == [
        "events.jsonl", "intervals.csv", "intervals.parquet", "manifest.json", "products.csv",
        "products.parquet", "report.html", "state.csv", "state.parquet", "totals.csv",
        "totals.parquet"]
    assert read_latest(tmp_path / "out") == "2025-04-10"
    assert (tmp_path / "out" / "latest").read_text() == "2025-04-10\n"

    m = json.loads((snap / "manifest.json").read_text())
    head = ro_store.head()
    assert m["head"] == {"position": head.position, "hash": head.hash}
    assert m["as_of"] == "2025-04-10" and m["known_on"] is None
    assert m["schema_revision"] == ro_store.revision()
    from timeline import __version__

    assert m["tool_version"] == __version__
    dt.datetime.strptime(m["generated_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert m["kind"] == "nightly" and m["parquet"] == "written"
    for name in ("events.jsonl", "intervals.csv", "state.csv", "totals.csv", "state.parquet"):
        data = (snap / name).read_bytes()
        assert m["files"][name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert m["files"][name]["bytes"] == len(data)

    lines = (snap / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == ro_store.count() == m["row_counts"]["events.jsonl"]
    assert [e["position"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["hash"] == head.hash
    assert all(e["source"]["name"] for e in events)  # citations included
    assert lines[0] == json.dumps(events[0], sort_keys=True, ensure_ascii=False,
                                  separators=(",", ":"))

    raw = (snap / "state.csv").read_bytes()
    assert raw.startswith(b"measure,kind,imposer,target,rate,status,") and b"\r\n" in raw
    assert raw.count(b"\r\n") == raw.count(b"\n")  # every line ends CRLF
    state = {r["measure"]: r for r in _csv(snap / "state.csv")}
    assert len(state) == m["row_counts"]["state.csv"]
    assert state["us.tariff.ieepa-reciprocal.cn"]["rate"] == "125"
    assert state["cn.tariff.retaliatory.us"]["rate"] == "84"
    assert state["cn.tariff.retaliatory.us"]["since"] == "2025-04-10"
    assert json.loads(state["cn.tariff.retaliatory.us"]["state"])["rate"] == 84
    assert "us.tariff.section-122.global" not in state  # no state yet on 2025-04-10
    assert list(state) == sorted(state)

    intervals = _csv(snap / "intervals.csv")
    assert len(intervals) == m["row_counts"]["intervals.csv"]
    reciprocal = [r for r in intervals if r["measure"] == "us.tariff.ieepa-reciprocal.cn"]
    assert [r["rate"] for r in reciprocal[:3]] == ["10", "84", "125"]
    assert all(r["valid_to"] == "" or r["valid_from"] < r["valid_to"] for r in intervals)
    assert [(r["measure"], r["valid_from"]) for r in intervals] == \
        sorted((r["measure"], r["valid_from"]) for r in intervals)


def test_known_on_uses_only_what_was_public(ro_store, tmp_path):
    out = tmp_path / "out"
    write_snapshot(Timeline(ro_store), out, "2025-04-10", "2025-04-05", False, None)
    snap = out / "2025-04-10_known_2025-04-05"
    state = {r["measure"]: r for r in _csv(snap / "state.csv")}
    assert state["cn.tariff.retaliatory.us"]["rate"] == "34"  # 84 was announced 04-09
    intervals = _csv(snap / "intervals.csv")
    assert not [r for r in intervals if r["measure"] == "cn.tariff.retaliatory.us"
                and r["rate"] == "84"]
    # the log itself is whole whatever the knowledge date
    assert len((snap / "events.jsonl").read_text().splitlines()) == ro_store.count()
    assert json.loads((snap / "manifest.json").read_text())["known_on"] == "2025-04-05"


# -- determinism and idempotence ------------------------------------------------------------
def test_two_exports_are_byte_identical_apart_from_generated_at(ro_store, tmp_path):
    write_snapshot(Timeline(ro_store), tmp_path / "a", "2025-05-14", None, False, None)
    write_snapshot(Timeline(ro_store), tmp_path / "b", "2025-05-14", None, False, None)
    a, b = _tree(tmp_path / "a" / "2025-05-14"), _tree(tmp_path / "b" / "2025-05-14")
    ma, mb = json.loads(a.pop("manifest.json")), json.loads(b.pop("manifest.json"))
    assert a == b
    ma.pop("generated_at"), mb.pop("generated_at")
    assert ma == mb


def test_second_export_is_up_to_date_and_writes_nothing(seeded_db, tmp_path):
    out = tmp_path / "out"
    r = run_cli("export", "--db", str(seeded_db), "--out", str(out), "--as-of", "2025-05-14")
    assert r.returncode == 0 and r.stdout.startswith("wrote "), r.stderr
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    r = run_cli("export", "--db", str(seeded_db), "--out", str(out), "--as-of", "2025-05-14")
    assert r.returncode == 0 and r.stdout.startswith("up to date"), r.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    r = run_cli("export", "--db", str(seeded_db), "--out", str(out), "--as-of", "2025-05-14",
                "--force")
    assert r.returncode == 0 and r.stdout.startswith("wrote ")
    assert verify_snapshot(out / "2025-05-14") == []


def test_a_new_event_makes_the_snapshot_stale(seeded_db, tmp_path):
    out = tmp_path / "out"
    store = Store.open(str(seeded_db))
    try:
        write_snapshot(Timeline(store), out, "2025-05-14", None, False, None)
        assert not write_snapshot(Timeline(store), out, "2025-05-14", None, False, None).written
        store.append([NewEvent("diplomacy.us-cn", "meeting", dt.date(2025, 5, 14),
                               {"title": "A test meeting"}, {"name": "test"},
                               known=dt.date(2025, 5, 14))])
        res = write_snapshot(Timeline(store), out, "2025-05-14", None, False, None)
        assert res.written and res.manifest["head"]["hash"] == store.head().hash
        assert verify_snapshot(out / "2025-05-14") == []
        assert not [p for p in out.iterdir() if p.name.startswith(".")
                    and p.name != ".lock"]  # the replaced snapshot left nothing behind
    finally:
        store.close()


def test_a_damaged_snapshot_is_not_up_to_date(ro_store, tmp_path):
    out = tmp_path / "out"
    write_snapshot(Timeline(ro_store), out, "2025-05-14", None, False, None)
    (out / "2025-05-14" / "state.csv").write_text("tampered")
    assert write_snapshot(Timeline(ro_store), out, "2025-05-14", None, False, None).written
    assert verify_snapshot(out / "2025-05-14") == []


# -- --keep, --verify -----------------------------------------------------------------------
def test_keep_prunes_the_oldest_snapshots(ro_store, tmp_path):
    out = tmp_path / "out"
    for day in ("2025-04-01", "2025-04-02", "2025-04-03"):
        write_snapshot(Timeline(ro_store), out, day, None, False, None)
    res = write_snapshot(Timeline(ro_store), out, "2025-04-04", None, False, 2)
    assert res.pruned == ["2025-04-01", "2025-04-02"]
    assert export.snapshots(out) == ["2025-04-03", "2025-04-04"]
    assert read_latest(out) == "2025-04-04"
    r = run_cli("export", "--db", str(ro_store.path), "--out", str(out), "--as-of",
                "2025-04-05", "--keep", "1")
    assert r.returncode == 0 and f"pruned {out / '2025-04-03'}" in r.stdout
    assert f"pruned {out / '2025-04-04'}" in r.stdout
    assert export.snapshots(out) == ["2025-04-05"]


def test_keep_never_prunes_the_snapshot_just_written(ro_store, tmp_path):
    out = tmp_path / "out"
    write_snapshot(Timeline(ro_store), out, "2025-06-01", None, False, None)
    res = write_snapshot(Timeline(ro_store), out, "2025-05-01", None, False, 1)
    assert res.pruned == [] and export.snapshots(out) == ["2025-05-01_backfill", "2025-06-01"]
    assert read_latest(out) == "2025-06-01"


def test_verify_catches_changed_missing_and_extra_files(seeded_db, tmp_path):
    run_cli("export", "--db", str(seeded_db), "--out", str(tmp_path), "--as-of", "2025-05-14")
    snap = tmp_path / "2025-05-14"
    r = run_cli("export", "--verify", str(snap))
    assert r.returncode == 0 and r.stdout.startswith(f"ok: {snap}")
    r = run_cli("export", "--verify", str(tmp_path))  # DIR means its latest snapshot
    assert r.returncode == 0 and "2025-05-14" in r.stdout

    data = (snap / "intervals.csv").read_bytes()
    (snap / "intervals.csv").write_bytes(data.replace(b"125", b"126", 1))
    r = run_cli("export", "--verify", str(snap))
    assert r.returncode == 1
    assert "FAILED" in r.stderr and "intervals.csv: SHA-256 differs" in r.stderr

    (snap / "intervals.csv").write_bytes(data)
    (snap / "notes.txt").write_text("x")
    (snap / "state.csv").unlink()
    problems = verify_snapshot(snap)
    assert "state.csv: missing" in problems
    assert "notes.txt: not listed in the manifest" in problems

    (snap / "manifest.json").write_text("{")
    assert verify_snapshot(snap) == [f"{snap}: no readable manifest.json"]


def test_verify_checks_the_head_named_in_the_manifest(ro_store, tmp_path):
    out = tmp_path / "out"
    write_snapshot(Timeline(ro_store), out, "2025-05-14", None, False, None)
    snap = out / "2025-05-14"
    m = json.loads((snap / "manifest.json").read_text())
    m["head"]["hash"] = "0" * 64
    (snap / "manifest.json").write_text(json.dumps(m))
    assert verify_snapshot(snap) == [
        "events.jsonl: its last event is not the head named in the manifest"]


# -- hooks ----------------------------------------------------------------------------------
def test_extra_writers_land_in_the_manifest(ro_store, tmp_path, monkeypatch):
    out = tmp_path / "out"
    calls = []

    def report(snapshot, folder, as_of, known_on):
        calls.append((as_of, known_on))
        n = len(snapshot.measure_ids())
        (folder / "report.txt").write_text(f"{n} measures as of {as_of}\n")
        return ["report.txt"]

    monkeypatch.setattr(export, "EXTRA_WRITERS", [report])
    res = write_snapshot(Timeline(ro_store), out, "2025-05-14", "2025-05-01", False, None)
    assert calls == [("2025-05-14", "2025-05-01")]
    snap = res.path
    assert res.manifest["files"]["report.txt"]["sha256"] == \
        hashlib.sha256((snap / "report.txt").read_bytes()).hexdigest()
    assert res.manifest["row_counts"]["report.txt"] is None
    assert verify_snapshot(snap) == []


def test_a_writer_that_lies_about_its_files_fails_the_export(ro_store, tmp_path, monkeypatch):
    from timeline.errors import TimelineError

    out = tmp_path / "out"

    def sloppy(conn, folder, as_of, known_on):
        (folder / "a.txt").write_text("a")
        return []

    monkeypatch.setattr(export, "EXTRA_WRITERS", [sloppy])
    with pytest.raises(TimelineError, match="a.txt"):
        write_snapshot(Timeline(ro_store), out, "2025-05-14", None, False, None)
    assert export.snapshots(out) == [] and read_latest(out) is None
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


# -- atomicity ------------------------------------------------------------------------------
def _start_slow_export(db: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, export.TEST_DELAY_ENV: "600"}  # far longer than the test waits
    return subprocess.Popen([sys.executable, "-m", "timeline", "export", "--db", str(db),
                             "--out", str(out), *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_mid_write(proc: subprocess.Popen, out: Path) -> None:
    """SIGKILL the export once its temporary folder holds a written file."""
    import time

    for _ in range(3000):  # a hang guard only
        tmps = [p for p in out.iterdir() if p.name.startswith(".tmp-")]
        if tmps and any(tmps[0].iterdir()):
            break
        assert proc.poll() is None, "the export ended before it could be killed"
        time.sleep(0.05)
    else:
        proc.kill()
        raise AssertionError("the export never started writing")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_kill_during_a_new_snapshot_leaves_the_previous_one(seeded_db, tmp_path):
    out = tmp_path / "out"
    r = run_cli("export", "--db", str(seeded_db), "--out", str(out), "--as-of", "2025-05-14")
    assert r.returncode == 0
    good = _tree(out / "2025-05-14")

    _kill_mid_write(_start_slow_export(seeded_db, out, "--as-of", "2025-06-01"), out)
    assert not (out / "2025-06-01").exists()
    assert read_latest(out) == "2025-05-14"
    assert _tree(out / "2025-05-14") == good and verify_snapshot(out / "2025-05-14") == []

    # the next run clears the leftovers and completes
    r = run_cli("export", "--db", str(seeded_db), "--out", str(out), "--as-of", "2025-06-01")
    assert r.returncode == 0, r.stderr
    assert read_latest(out) == "2025-06-01" and verify_snapshot(out / "2025-06-01") == []
    assert sorted(p.name for p in out.iterdir()) == [".lock", "2025-05-14", "2025-06-01",
                                                     "latest"]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_kill_during_a_forced_rewrite_leaves_the_old_snapshot(seeded_db, tmp_path):
    out = tmp_path / "out"
    assert run_cli("export", "--db", str(seeded_db), "--out", str(out), "--as-of",
                   "2025-05-14").returncode == 0
    good = _tree(out / "2025-05-14")
    _kill_mid_write(_start_slow_export(seeded_db, out, "--as-of", "2025-05-14", "--force"), out)
    assert read_latest(out) == "2025-05-14"
    assert _tree(out / "2025-05-14") == good and verify_snapshot(out / "2025-05-14") == []


def test_a_snapshot_caught_mid_replacement_is_restored(ro_store, tmp_path):
    out = tmp_path / "out"
    write_snapshot(Timeline(ro_store), out, "2025-05-14", None, False, None)
    # what the non-Linux fallback leaves if killed between its two renames
    os.rename(out / "2025-05-14", out / ".old-2025-05-14-4242")
    (out / ".tmp-2025-05-14-4242").mkdir()
    assert not write_snapshot(Timeline(ro_store), out, "2025-05-14", None, False, None).written
    assert sorted(p.name for p in out.iterdir()) == [".lock", "2025-05-14", "latest"]


def test_replacing_without_an_atomic_exchange(ro_store, tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(export, "_exchange", lambda a, b: False)
    write_snapshot(Timeline(ro_store), out, "2025-05-14", None, False, None)
    assert write_snapshot(Timeline(ro_store), out, "2025-05-14", None, True, None).written
    assert verify_snapshot(out / "2025-05-14") == []
    assert sorted(p.name for p in out.iterdir()) == [".lock", "2025-05-14", "latest"]


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_overlapping_exports_are_refused(ro_store, tmp_path):
    import fcntl

    from timeline.errors import TimelineError

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        with pytest.raises(TimelineError, match="another export"):
            write_snapshot(Timeline(ro_store), out, "2025-05-14", None, False, None)


# -- the command line -----------------------------------------------------------------------
def test_usage_errors_exit_2(seeded_db, tmp_path):
    base = ("export", "--db", str(seeded_db))
    assert run_cli(*base).returncode == 2  # neither --out nor --verify
    assert run_cli(*base, "--out", str(tmp_path), "--verify", str(tmp_path)).returncode == 2
    r = run_cli(*base, "--out", str(tmp_path), "--as-of", "14/05/2025")
    assert r.returncode == 2 and "YYYY-MM-DD" in r.stderr and "Traceback" not in r.stderr
    assert "invalid date '14/05/2025'" in r.stderr
    r = run_cli(*base, "--out", str(tmp_path / "out"), "--as-of", "today + 99999999 years")
    assert r.returncode == 2 and "out of range" in r.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert run_cli(*base, "--out", str(tmp_path), "--as-of", "2025-02-30").returncode == 2
    assert run_cli(*base, "--out", str(tmp_path), "--keep", "0").returncode == 2
    assert run_cli(*base, "--verify", str(tmp_path), "--force").returncode == 2


def test_failures_exit_1_with_a_message(seeded_db, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run_cli("export", "--db", str(seeded_db), "--out", str(blocker / "sub"))
    assert r.returncode == 1 and r.stderr.startswith("error: ")
    r = run_cli("export", "--verify", str(tmp_path / "nowhere"))
    assert r.returncode == 1 and "no readable manifest.json" in r.stderr


def test_default_as_of_is_today(ro_store, tmp_path):
    out = tmp_path / "out"
    res = write_snapshot(Timeline(ro_store), out, None, None, False, None)
    assert res.path.name == dt.date.today().isoformat()
    assert io.StringIO((res.path / "state.csv").read_text()).readline().startswith("measure,")

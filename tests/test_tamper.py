"""Tampering behind the triggers' back is reported by `timeline verify` at the exact position.

Each test drops the immutability trigger (as an attacker with direct database access
would), alters the log, and — for the position tests — puts the trigger back to cover the
tracks. A missing or disabled trigger is itself reported; a truncated or rewritten tail,
which leaves a valid chain behind, is caught by `verify --against` an export manifest.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from timeline.errors import IntegrityError
from timeline.log.events import chain_hash
from timeline.log.loader import load_paths
from timeline.resources import seeds_path
from timeline.store.store import Store

from .backends import BACKENDS, backend, make_db, new_event, raw_engine, run_main  # noqa: F401
from .conftest import run_cli_process

HEAD = len(load_paths([seeds_path()]))  # the last position of a freshly seeded log

# put back exactly as migration 0001 made them: verify compares the triggers' SQL text
SQLITE_TRIGGERS = {
    f"events_no_{verb.lower()}": f"CREATE TRIGGER events_no_{verb.lower()} BEFORE {verb} ON "
                                 f"events BEGIN SELECT RAISE(ABORT, 'events is append-only: "
                                 f"{verb} is not allowed; append a correction or retraction "
                                 f"event'); END"
    for verb in ("UPDATE", "DELETE")
}


def tamper(url: str, backend: str, *statements: str, restore: bool = True) -> None:
    """Run `statements` with the log's trigger dropped; put it back unless told not to."""
    eng = raw_engine(url)
    try:
        with eng.begin() as c:
            if backend == "sqlite":
                for name in SQLITE_TRIGGERS:
                    c.execute(text(f"DROP TRIGGER {name}"))
            else:
                c.execute(text("DROP TRIGGER events_no_change ON events"))
            for sql in statements:
                c.execute(text(sql))
            if restore:
                if backend == "sqlite":
                    for sql in SQLITE_TRIGGERS.values():
                        c.execute(text(sql))
                else:
                    c.execute(text("CREATE TRIGGER events_no_change BEFORE UPDATE OR DELETE ON "
                                   "events FOR EACH ROW EXECUTE FUNCTION events_append_only()"))
    finally:
        eng.dispose()


def verify_position(url: str) -> int | None:
    store = Store.open(url, readonly=True)
    try:
        with pytest.raises(IntegrityError) as info:
            store.verify()
        return info.value.position
    finally:
        store.close()


def cli_verify(url: str, *extra: str, real: bool = False):
    r = (run_cli_process if real else run_main)("verify", "--db", url, *extra)
    assert "Traceback" not in r.stderr
    return r


@pytest.mark.parametrize("what, sql, position", [
    ("payload", "UPDATE events SET payload = replace(payload, 'a', 'b') WHERE position = 10",
     10),
    ("effective date", "UPDATE events SET effective = '2020-01-01' WHERE position = 40", 40),
    ("recorded_at", "UPDATE events SET recorded_at = '2020-01-01T00:00:00.000000Z' "
                    f"WHERE position = {HEAD}", HEAD),
    ("deleted row", "DELETE FROM events WHERE position = 33", 33),
    ("forged row with a gap", "INSERT INTO events SELECT position + 100, "
                              "substr(id, 1, 35) || 'x', stream, version + 100, type, "
                              "schema_version, effective, announced, "
                              "known, recorded_at, payload, source, hash, hash FROM events "
                              f"WHERE position = {HEAD}", HEAD + 1),
    ("forged row", "INSERT INTO events SELECT position + 1, substr(id, 1, 35) || 'x', stream, "
                   "version + 100, type, schema_version, effective, announced, known, "
                   "recorded_at, payload, "
                   f"source, hash, 'f00d' FROM events WHERE position = {HEAD}", HEAD + 1),
    ("swapped hashes", "UPDATE events SET prev_hash = '0' WHERE position = 5", 5),
])
def test_altered_log_is_reported_at_the_exact_position(make_db, backend, what, sql, position):
    url = make_db()
    tamper(url, backend, sql)
    assert verify_position(url) == position
    r = cli_verify(url)
    assert r.returncode == 1 and r.stderr.startswith("FAILED")
    assert f"position {position}" in r.stderr, r.stderr


def test_rehashed_row_is_reported_where_the_chain_breaks(make_db, backend):
    """An attacker who also fixes the altered row's own hash is caught at the next row."""
    url = make_db()
    store = Store.open(url)
    with store.reading() as c:
        row = dict(c.conn.execute(
            text("SELECT * FROM events WHERE position = 20")).first()._mapping)
    store.close()
    row["payload"] = row["payload"].replace('"title":"', '"title":"FORGED ')
    forged = chain_hash(row["prev_hash"], row)
    payload = row["payload"].replace("'", "''").replace(":", "\\:")  # no bind params
    tamper(url, backend, f"UPDATE events SET payload = '{payload}', hash = '{forged}' "
                         f"WHERE position = 20")
    assert verify_position(url) == 21


def test_dropped_trigger_is_reported(make_db, backend):
    url = make_db()
    tamper(url, backend, restore=False)
    r = cli_verify(url)
    assert r.returncode == 1 and "immutability triggers missing" in r.stderr, r.stderr
    assert ("events_no_update" if backend == "sqlite" else "events_no_change") in r.stderr


# SQLite has no disabled state for a trigger (only dropped), so this attack is PostgreSQL's
@pytest.mark.parametrize("backend", [BACKENDS[1]], indirect=True)
def test_disabled_trigger_is_reported(make_db, backend):
    url = make_db()
    eng = raw_engine(url)
    with eng.begin() as c:
        c.execute(text("ALTER TABLE events DISABLE TRIGGER events_no_change"))
    eng.dispose()
    r = cli_verify(url)
    assert r.returncode == 1 and "immutability triggers missing" in r.stderr, r.stderr
    assert ("events_no_update" if backend == "sqlite" else "events_no_change") in r.stderr


def _manifest(tmp_path: Path, url: str) -> Path:
    store = Store.open(url)
    head = store.head()
    store.close()
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"head": {"position": head.position, "hash": head.hash}}))
    return path


def test_truncated_tail_is_reported_against_the_manifest(make_db, backend, tmp_path):
    url = make_db()
    manifest = _manifest(tmp_path, url)
    r = cli_verify(url, "--against", str(manifest))
    assert r.returncode == 0 and "matches manifest" in r.stdout, r.stderr
    tamper(url, backend, f"DELETE FROM events WHERE position > {HEAD - 3}")
    r = cli_verify(url)
    # what is left is a valid chain; the projections' recorded head tells (issue 12)
    assert r.returncode == 1 and "the log changed behind the store's back" in r.stderr
    r = cli_verify(url, "--against", str(manifest), real=True)
    assert r.returncode == 1 and f"truncated at position {HEAD - 2}" in r.stderr, r.stderr
    assert "3 events missing" in r.stderr


def test_rewritten_tail_is_reported_against_the_manifest(make_db, backend, tmp_path):
    url = make_db()
    manifest = _manifest(tmp_path, url)
    tamper(url, backend, f"DELETE FROM events WHERE position > {HEAD - 2}")
    store = Store.open(url)
    store.rebuild()
    store.append([new_event("us.tariff.forged.cn", "imposed", "2025-01-01"),
                  new_event("us.tariff.forged.cn", "amended", "2025-01-02")])
    store.close()
    assert cli_verify(url).returncode == 0
    r = cli_verify(url, "--against", str(manifest))
    assert r.returncode == 1 and f"at or before position {HEAD}" in r.stderr, r.stderr


def test_against_a_real_export_and_bad_manifests(seeded_db, tmp_path):
    out = tmp_path / "exports"
    r = run_main("export", "--db", str(seeded_db), "--out", str(out))
    assert r.returncode == 0, r.stderr
    manifest = next(out.rglob("manifest.json"))
    r = cli_verify(str(seeded_db), "--against", str(manifest))
    assert r.returncode == 0 and "matches manifest" in r.stdout, r.stderr
    for folder in (manifest.parent, out):  # a snapshot folder, or the export folder's latest
        r = cli_verify(str(seeded_db), "--against", str(folder))
        assert r.returncode == 0 and "matches manifest" in r.stdout, r.stderr
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps({"head_position": HEAD + 3, "head_hash": "ab" * 32}))
    r = cli_verify(str(seeded_db), "--against", str(legacy))
    assert r.returncode == 1 and f"truncated at position {HEAD + 1}" in r.stderr
    for bad, msg in ((tmp_path / "missing.json", "cannot read manifest"),
                     (tmp_path / "bad.json", "not an export manifest")):
        if bad.name == "bad.json":
            bad.write_text("{not json")
        r = cli_verify(str(seeded_db), "--against", str(bad))
        assert r.returncode == 1 and msg in r.stderr, r.stderr

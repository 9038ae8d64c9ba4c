"""Attacks and abuse, each a case: the refusal, its message, and that nothing changed.

Issue 12. Every case runs through the CLI (and the API where it applies), on both backends
where the attack applies (the `backend` / `make_db` fixtures of tests/backends.py).
docs/guarantees.md names the test that proves each promise.
"""
from __future__ import annotations

import json
import resource
import signal
from pathlib import Path

import pytest

from timeline.surfaces import cli

from .backends import backend, make_db, run_main  # noqa: F401 - pytest fixtures
from .conftest import run_cli


def one_error_line(res, prefix: str = "error: ") -> str:
    """The single stderr line of a failed command: no traceback, exit 1."""
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def head_of(url: str) -> tuple:
    res = run_main("--db", url, "info", "--format", "json")
    info = json.loads(res.stdout)
    return info["events"], info["head_hash"]


# -- item 7: no traceback, ever, at the CLI boundary --------------------------------------
def test_unexpected_exception_is_an_internal_error_line(monkeypatch, seeded_db, capsys):
    from timeline.surfaces import commands

    def boom(args):
        raise ZeroDivisionError("deliberately broken for the test")

    monkeypatch.setattr(commands, "run_info", boom)
    assert cli.main(["--db", str(seeded_db), "info"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("internal error: ZeroDivisionError: deliberately broken for the "
                           "test (please report; run again with --debug for the traceback)")
    assert cli.main(["--db", str(seeded_db), "info", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "boom" in err
    assert err.strip().splitlines()[-1].startswith("internal error: ZeroDivisionError")


@pytest.mark.parametrize("db, words", [
    ("foo://bar", "unknown database URL scheme 'foo'"),
    ("postgresql+nodriver://u@h/db", "the driver is not installed"),
    ("http://user:secret@example.com/x", "unknown database URL scheme 'http'"),
])
def test_bad_database_urls_are_one_line(db, words):
    res = run_main("--db", db, "query", "measures")
    line = one_error_line(res)
    assert words in line and "secret" not in line


def test_directory_as_database(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    for argv in (["query", "measures"], ["init"], ["sql", "SELECT 1"], ["verify"],
                 ["export", "--out", str(tmp_path / "ex")]):
        for db in (str(d), f"sqlite:///{d}", f"{d}/"):
            line = one_error_line(run_main("--db", db, *argv))
            assert f"{d} is a directory, not a database file" in line
    assert list(d.iterdir()) == []


@pytest.mark.parametrize("query, words", [
    ("events limit 99999999999999999999", "events limit 99999999999999999999 is out of range"),
    ("events where position > 9223372036854775808",
     "position: 9223372036854775808 is out of range"),
    ("events where position > 2147483648",
     "position: 2147483648 is out of range: position is a whole number between"),
    ("events where version >= -2147483649", "version: -2147483649 is out of range"),
    ("events where payload.set.rate < -9223372036854775809", "-9223372036854775809 is out of"),
    ("measures where rate > 99999999999999999999999", "99999999999999999999999 is out of"),
    ("events where payload = 1", "payload needs a field name after it"),
])
def test_query_values_no_backend_can_bind(make_db, query, words):
    url = make_db()
    line = one_error_line(run_main("--db", url, "query", query))
    assert words in line
    # the largest value that fits is an ordinary answer
    assert run_main("--db", url, "query",
                    "events where position > 2147483647").stdout.strip() == "(no rows)"


def _manifest(tmp_path, name, doc) -> str:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(p)


H = "0" * 64


@pytest.mark.parametrize("doc, words", [
    ([1, 2], "is not an export manifest (a JSON list, not an object)"),
    ({"head": {"position": 10 ** 30, "hash": H}}, "head position 1000000000000000000000000000000"
                                                   " is not a whole number"),
    ({"head": {"position": 1.5, "hash": H}}, "head position 1.5 is not a whole number"),
    ({"head": {"position": -5, "hash": H}}, "head position -5 is not a whole number"),
    ({"head": {"position": True, "hash": H}}, "head position True is not a whole number"),
    ({"head": {"position": 3, "hash": "x"}}, "head hash 'x' is not 64 lowercase hex digits"),
    ({"head": {"position": 3}}, "no head position and hash"),
    ('{"head": {"position": 1' + "0" * 5000 + ', "hash": "x"}}', "not JSON"),
    ("[" * 100_000, "not JSON"),
    ("", "not JSON"),
])
def test_malformed_manifests_for_verify_against(make_db, tmp_path, doc, words):
    url = make_db()
    before = head_of(url)
    line = one_error_line(run_main("--db", url, "verify", "--against",
                                   _manifest(tmp_path, "m.json", doc)))
    assert words in line
    assert head_of(url) == before


def _snapshot_state(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_export_out_empty_or_a_file(seeded_db, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    line = one_error_line(run_main("--db", seeded_db, "export", "--out", ""))
    assert line == "error: --out needs a folder name (it was empty)"
    f = cwd / "afile"
    f.write_text("keep me")
    line = one_error_line(run_main("--db", seeded_db, "export", "--out", f))
    assert line == f"error: --out {f} is a file, not a folder; nothing was written"
    assert f.read_text() == "keep me"
    assert sorted(p.name for p in cwd.iterdir()) == ["afile"]


def test_export_to_a_read_only_place(seeded_db, tmp_path):
    # root ignores file modes; /proc refuses new entries to everyone
    line = one_error_line(run_main("--db", seeded_db, "export", "--out", "/proc/timeline-x"))
    assert "cannot create /proc/timeline-x" in line


def test_export_to_a_full_disk_keeps_older_snapshots_and_latest(seeded_db, tmp_path):
    out = tmp_path / "ex"
    assert run_main("--db", seeded_db, "export", "--out", out, "--as-of",
                    "2025-05-14").returncode == 0
    before = _snapshot_state(out)

    def small_files():  # a file-size limit: the next write fails like on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "timeline", "--db", str(seeded_db), "export",
                          "--out", str(out), "--as-of", "2025-06-01"], capture_output=True,
                         text=True, preexec_fn=small_files, timeout=300)
    line = one_error_line(res)
    assert f"cannot write the snapshot into {out}" in line and "File too large" in line
    assert "earlier snapshots and latest are unchanged" in line
    assert _snapshot_state(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("as_of", ["0001-01-01", "0001-01-15", "9999-12-31"])
def test_export_at_the_ends_of_the_calendar(seeded_db, tmp_path, as_of):
    out = tmp_path / "ex"
    res = run_main("--db", seeded_db, "export", "--out", out, "--as-of", as_of)
    assert res.returncode == 0, res.stderr
    assert run_main("export", "--verify", out / as_of).returncode == 0

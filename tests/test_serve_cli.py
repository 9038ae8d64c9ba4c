"""`timeline serve` on the command line: the missing extra, the host warning, the read
boundary's timeout, and one real process that serves a page and stops on Ctrl-C (SIGINT).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from timeline.surfaces.serve import command

from .conftest import run_cli

pytest.importorskip("uvicorn")


def test_without_the_extra_it_says_how_to_install_it(monkeypatch, seeded_db):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("starlette", "uvicorn") else
                        real(name, *a))
    r = run_cli("--db", seeded_db, "serve")
    assert r.returncode == 1
    assert r.stderr == ("error: timeline serve needs starlette, uvicorn, which are not "
                        "installed: pip install 'timeline[serve]'\n")


def test_help_lists_serve_and_its_options():
    assert "serve" in run_cli("--help").stdout
    out = run_cli("serve", "--help").stdout
    for option in ("--host", "--port", "--open", "--allow-sql", "--max-rows"):
        assert option in out
    bad = run_cli("serve", "--port", "70000")
    assert bad.returncode == 2 and "from 0 to 65535" in bad.stderr
    bad = run_cli("serve", "--max-rows", "0")
    assert bad.returncode == 2 and "from 1 to 10000000" in bad.stderr


@pytest.fixture
def no_serving(monkeypatch):
    """uvicorn's loop replaced: the command's set-up runs, the server returns at once."""
    import uvicorn

    seen = {}

    def run(self, sockets=None):
        seen["app"], seen["sockets"] = self.config.app, sockets
    monkeypatch.setattr(uvicorn.Server, "run", run)
    return seen


def test_other_hosts_are_warned_about_and_loopback_is_not(no_serving, seeded_db):
    quiet = run_cli("--db", seeded_db, "serve", "--port", "0")
    assert quiet.returncode == 0, quiet.stderr
    assert "warning" not in quiet.stderr
    assert "read-only, at http://127.0.0.1:" in quiet.stderr
    loud = run_cli("--db", seeded_db, "serve", "--host", "0.0.0.0", "--port", "0")
    assert loud.returncode == 0, loud.stderr
    assert loud.stderr.startswith("warning: serving on 0.0.0.0: anyone who can reach this "
                                  "address can read the whole database")
    assert [command.is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]",
                                             "localhost", "0.0.0.0", "192.168.1.2", "::")] \
        == [True, True, True, True, True, False, False, False]


def test_the_server_reads_with_the_timeout(no_serving, seeded_db):
    for argv, expected in ((("serve", "--port", "0"), 30.0),
                           (("serve", "--timeout", "5", "--port", "0"), 5.0)):
        assert run_cli("--db", seeded_db, *argv).returncode == 0
        tl = no_serving["app"].app.state.server.tl  # the Guard's Starlette app's
        assert tl.timeout == expected and tl.readonly


def test_a_real_server_serves_and_stops_on_sigint(seeded_db):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "timeline", "--db", str(seeded_db), "serve",
                             "--port", "0"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        assert "read-only, at http://127.0.0.1:" in line, line
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "?date=2025-06-12", timeout=30) as reply:
            assert reply.status == 200
            assert "Briefing for 2025-06-12" in reply.read().decode()
            assert "script-src 'self'" in reply.headers["content-security-policy"]
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130  # Ctrl-C's exit status, as every command's
        assert time.monotonic() - t0 < 10
        assert proc.stderr.read() == "interrupted\n"  # uvicorn stopped first, quietly
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""The suite's in-process CLI runner (conftest.run_cli) answers as the real process does.

Most CLI tests call `timeline.surfaces.cli.main` in the test process instead of spawning
`python -m timeline`; these cases hold the two side by side (exit code, stdout, stderr),
and check that a run leaves nothing of itself behind: environment, working directory,
standard streams, warning filters.
"""
from __future__ import annotations

import os
import sys
import warnings

import pytest

from .conftest import run_cli, run_cli_process

Q = "state of cn.tariff.retaliatory.us as of 2025-04-10"
CASES = {
    "csv (CRLF lines)": (["query", "--db", "{db}", "--format", "csv", Q], {}),
    "table": (["query", "--db", "{db}", Q], {"env": {"COLUMNS": "60"}}),
    "query error": (["query", "--db", "{db}", "state of nope.x"], {}),
    "usage error": (["query"], {}),
    "no command": ([], {}),
    "piped repl": (["repl", "--db", "{db}", "--format", "json"],
                   {"input": "total tariff by us on cn as of 2025-04-10;\r\nstate of nope.x;\n"}),
    "TIMELINE_DB and cwd": (["info", "--path"], {"env": {"TIMELINE_DB": "{db}"}, "cwd": "{tmp}"}),
}


@pytest.mark.parametrize("case", CASES)
def test_in_process_equals_the_process(seeded_db, tmp_path, case):
    argv, kw = CASES[case]
    fill = {"db": str(seeded_db), "tmp": str(tmp_path)}
    argv = [a.format(**fill) for a in argv]
    kw = {k: ({n: x.format(**fill) for n, x in v.items()} if isinstance(v, dict)
              else v.format(**fill) if k == "cwd" else v) for k, v in kw.items()}
    real, here = run_cli_process(*argv, **kw), run_cli(*argv, **kw)
    assert (here.returncode, here.stdout, here.stderr) == \
        (real.returncode, real.stdout, real.stderr)


def test_a_run_puts_back_environment_directory_streams_and_warning_filters(seeded_db,
                                                                            tmp_path):
    before = (dict(os.environ), os.getcwd(), sys.stdin, sys.stdout, sys.stderr,
              list(warnings.filters))
    r = run_cli("info", "--path", env={"TIMELINE_DB": str(seeded_db), "COLUMNS": "40"},
                cwd=tmp_path, input="ignored\n")
    assert r.returncode == 0 and r.stdout == f"{seeded_db}\n"
    assert (dict(os.environ), os.getcwd(), sys.stdin, sys.stdout, sys.stderr,
            list(warnings.filters)) == before
    failed = run_cli("query", "--db", str(tmp_path / "missing.db"), "measures",
                     env={"TIMELINE_DB": "x"}, cwd=tmp_path)
    assert failed.returncode == 1
    assert (dict(os.environ), os.getcwd()) == before[:2]


def test_a_warning_shows_on_stderr_as_in_a_fresh_interpreter(seeded_db, monkeypatch):
    from timeline.surfaces import commands

    real_info = commands.run_info

    def warns(args):
        warnings.warn("shown by default", UserWarning, stacklevel=1)
        warnings.warn("hidden by default", DeprecationWarning, stacklevel=1)
        return real_info(args)

    monkeypatch.setattr(commands, "run_info", warns)
    r = run_cli("info", "--db", str(seeded_db))
    assert r.returncode == 0
    assert "UserWarning: shown by default" in r.stderr and "hidden by default" not in r.stderr


def test_an_exception_escaping_main_fails_the_test(seeded_db, monkeypatch):
    """main turns exceptions into one line; one that escapes it is a bug, raised here."""
    from timeline.surfaces import cli

    def escapes(argv):
        raise RuntimeError("escaped")

    monkeypatch.setattr(cli, "main", escapes)
    streams = sys.stdin, sys.stdout, sys.stderr
    with pytest.raises(RuntimeError, match="escaped"):
        run_cli("info", "--db", str(seeded_db))
    assert (sys.stdin, sys.stdout, sys.stderr) == streams  # put back all the same

"""The REPL: a real prompt_toolkit session (pipe input), a pseudo-terminal, and piped mode."""
from __future__ import annotations

import datetime as dt
import io
import os
import re
import shutil
import sys

import pytest

from tests.conftest import run_cli
from timeline.log.loader import load_paths
from timeline.resources import seeds_path
from timeline.api import Timeline
from timeline.store.store import Store
from timeline.surfaces.repl import (Session, interact, split_script, split_statements,
                                    statement_complete)

TODAY = dt.date(2025, 6, 1)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SEEDED = len(load_paths([seeds_path()]))  # events in a freshly seeded log


@pytest.fixture
def ro_store(seeded_db):
    store = Store.open(str(seeded_db), readonly=True)
    yield store
    store.close()


def _session(store, **kw) -> tuple[Session, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Session(Timeline(store), out=out, err=err, today=TODAY, **kw), out, err


def _drive(session: Session, keys: str, history=None) -> tuple[int, str]:
    """Run `interact` on keystrokes through prompt_toolkit's pipe input; returns (rc, screen)."""
    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output.vt100 import Vt100_Output

    screen = io.StringIO()
    with create_pipe_input() as inp:
        inp.send_text(keys)
        rc = interact(session, input=inp,
                      output=Vt100_Output(screen, lambda: Size(rows=50, columns=160)),
                      history=history if history is not None else InMemoryHistory())
    return rc, ANSI.sub("", screen.getvalue())


# -- the interactive path through prompt_toolkit -------------------------------------------
def test_full_interactive_session(ro_store):
    session, out, err = _session(ro_store, interactive=True)
    keys = ("total tariff by us on cn\r"      # Enter without ';': the query goes on
            "  as of 2025-04-10\r"
            "\r"                              # a blank line ends it
            "\\asof 2025-05-14\r"             # a meta-command runs on Enter
            "state of us.tariff.ieepa-fentanyl.cn;\r"
            "state of nope.x;\r"              # an error: caret, and the session goes on
            "history of cn.tariff.retaliatory.us\x03"  # Ctrl-C drops the line
            "\\known 2025-05-01\r"
            "\\format csv\r"
            "state of us.tariff.ieepa-reciprocal.cn;\r"
            "\x04")                           # Ctrl-D quits
    rc, screen = _drive(session, keys)
    assert rc == 0
    text = out.getvalue()
    assert re.search(r"TOTAL\s+145\s+us on cn as of 2025-04-10", text)
    assert "as of: 2025-05-14" in text
    # the default as-of applies to a query without one
    assert re.search(r"us\.tariff\.ieepa-fentanyl\.cn\s+20\s+in_force", text)
    # known on 2025-05-01 the Geneva truce was not public: the rate is still 125
    assert "us.tariff.ieepa-reciprocal.cn,125,in_force" in text
    assert "history of" not in text and "retaliatory" not in text
    assert "unknown measure 'nope.x'" in err.getvalue()
    assert "  state of nope.x\n           ^" in err.getvalue()
    # the prompt shows the session defaults as they change
    assert "timeline[asof 2025-05-14]> " in screen
    assert "timeline[asof 2025-05-14 known 2025-05-01]> " in screen


def test_quit_command_and_sql_mode(ro_store):
    session, out, err = _session(ro_store, interactive=True, mode="sql")
    rc, screen = _drive(session, "SELECT COUNT(*) AS n\r FROM v_events;\r"
                                  "DELETE FROM events;\r\\q\r")
    assert rc == 0
    assert "timeline sql> " in screen
    assert re.search(rf"n\s*\n-+\s*\n{SEEDED}\b", out.getvalue())
    assert "read-only: DELETE refused" in err.getvalue()
    assert ro_store.count() == SEEDED


def test_history_is_kept_in_the_user_data_dir(ro_store, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    session, out, _ = _session(ro_store, interactive=True)
    from prompt_toolkit.history import FileHistory

    from timeline.surfaces.repl import history_path

    path = history_path()
    assert path == tmp_path / "xdg" / "timeline" / "history"
    _drive(session, "measures;\r\x04", history=FileHistory(str(path)))
    assert "+measures;" in path.read_text()


def test_interactive_without_prompt_toolkit_says_how_to_install(seeded_db, monkeypatch,
                                                                capsys):
    from timeline.surfaces import cli

    class TTY(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setitem(sys.modules, "prompt_toolkit", None)  # import now fails
    monkeypatch.setattr(sys, "stdin", TTY())
    assert cli.main(["repl", "--db", str(seeded_db)]) == 1
    assert "pip install 'timeline[repl]'" in capsys.readouterr().err


# -- a pseudo-terminal: the CLI exactly as a user runs it -----------------------------------
@pytest.mark.skipif(not sys.platform.startswith(("linux", "darwin")), reason="needs a pty")
def test_pty_session_with_tab_completion_and_pager(seeded_db, tmp_path):
    import pty
    import select
    import signal
    import subprocess

    master, slave = pty.openpty()
    _set_size(slave, rows=30, cols=200)
    env = {**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm",
           "XDG_DATA_HOME": str(tmp_path / "xdg"), "PAGER": "sed s/^/PAGED:/"}
    proc = subprocess.Popen([sys.executable, "-m", "timeline", "repl", "--db",
                             str(seeded_db)], stdin=slave, stdout=slave, stderr=slave,
                            env=env, start_new_session=True)
    os.close(slave)
    seen, mark = [], [0]

    def expect(needle: str) -> None:
        """Read until `needle` appears after the previous match (the limit only stops a
        broken test from hanging; nothing here measures time)."""
        for _ in range(1200):
            screen = ANSI.sub("", "".join(seen))
            found = screen.find(needle, mark[0])
            if found >= 0:
                mark[0] = found + len(needle)
                return
            if select.select([master], [], [], 0.1)[0]:
                try:
                    seen.append(os.read(master, 65536).decode("utf-8", "replace"))
                except OSError:
                    break
        raise AssertionError(f"never saw {needle!r} in:\n{screen[-3000:]}")

    def line(keys: bytes, *needles: str) -> None:
        os.write(master, keys)
        for needle in needles:
            expect(needle)

    try:
        expect("timeline>")  # keys typed before the prompt is up would be echoed raw
        line(b"\\asof 2025-04-10\r", "as of: 2025-04-10", "timeline[asof 2025-04-10]>")
        line(b"total tariff by us on cn;\r", "145", "timeline[asof 2025-04-10]>")
        line(b"state of nope.x;\r", "unknown measure 'nope.x'", "^", "]>")
        line(b"state of us.tariff.ieepa-fe\t", "ieepa-fentanyl.cn")  # Tab completes
        line(b";\r", "unchallenged", "]>")
        line(b"measures;\r", "PAGED:agreement.us-cn.busan", "]>")  # taller than 30 rows
        os.write(master, b"\x04")
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
    history = (tmp_path / "xdg" / "timeline" / "history").read_text()
    assert "+total tariff by us on cn;" in history


def _set_size(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


# -- piped mode -----------------------------------------------------------------------------
def test_piped_mode_through_the_cli(seeded_db):
    script = ("total tariff by us on cn as of 2025-04-10;\n"
              "state of cn.tariff.retaliatory.us\n"
              "  as of 2025-04-10\n"
              "\n"
              "\\format csv\n"
              "state of nope.x;\n"
              "history of cn.tariff.retaliatory.us to 2025-04-11; measures where kind = visa\n")
    r = run_cli("repl", "--db", str(seeded_db), input=script)
    assert r.returncode == 1, r.stderr  # one statement failed
    assert re.search(r"TOTAL\s+145", r.stdout)
    assert re.search(r"cn\.tariff\.retaliatory\.us\s+84\s+in_force", r.stdout)
    # ran after the error
    assert "cn.tariff.retaliatory.us,84,in_force,,2025-04-10,2025-04-12" in r.stdout
    assert "us.visa.chinese-students,visa" in r.stdout  # the last line needs no ';'
    assert "unknown measure 'nope.x'" in r.stderr and "^" in r.stderr


def test_piped_mode_all_ok_exits_0_and_uses_cli_defaults(seeded_db):
    r = run_cli("repl", "--db", str(seeded_db), "--as-of", "2025-04-10", "--format", "json",
                input="total tariff by cn on us;\n")
    assert r.returncode == 0, r.stderr
    import json

    assert json.loads(r.stdout)["total"] == 84


def test_piped_mode_works_without_prompt_toolkit(seeded_db):
    import subprocess

    code = ("import sys; sys.modules['prompt_toolkit'] = None\n"
            "from timeline.surfaces.cli import main\n"
            "sys.exit(main(['repl', '--db', sys.argv[1]]))")
    r = subprocess.run([sys.executable, "-c", code, str(seeded_db)], capture_output=True,
                       text=True, input="total tariff by us on cn as of 2025-04-10;\n",
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "145" in r.stdout


def test_sql_without_a_query_is_the_sql_shell(seeded_db):
    r = run_cli("sql", "--db", str(seeded_db), "--format", "csv",
                input="SELECT COUNT(*) AS n FROM v_events;\nSELECT 'a;b' AS x\n\n"
                      "UPDATE events SET type = 'x';\n")
    assert r.returncode == 1
    assert r.stdout.splitlines()[:4] == ["n", str(SEEDED), "x", "a;b"]
    assert "UPDATE refused" in r.stderr


# -- statements and meta-commands -----------------------------------------------------------
def test_split_statements_respects_quotes():
    assert split_statements('events where title contains "a;b"; measures') == \
        (['events where title contains "a;b"'], " measures")
    assert split_statements(r'events where title = "x\";y";') == \
        ([r'events where title = "x\";y"'], "")
    assert split_statements("SELECT ';' -- ;\n, 1; SELECT 2", "sql") == \
        (["SELECT ';' -- ;\n, 1"], " SELECT 2")


def test_statement_complete():
    assert statement_complete("state of x.y;")
    assert statement_complete("state of x.y\n")  # blank last line
    assert statement_complete("\\format json")
    assert statement_complete("")
    assert not statement_complete("state of x.y")
    assert not statement_complete('events where title = "a;')
    assert statement_complete("SELECT 1;", "sql")


def test_split_script():
    script = "a;\nb\n  c\n\n\\format csv\nd; e;\nf"
    assert split_script(script) == ["a", "b\n  c", "\\format csv", "d", "e", "f"]


def test_meta_commands(ro_store):
    s, out, err = _session(ro_store)
    assert s.execute("\\timing on") and s.timing
    assert s.execute("measures where kind = visa")
    assert "Time: " in out.getvalue()
    assert s.execute("\\timing off") and not s.timing
    assert not s.execute("\\format yaml") and "unknown format 'yaml'" in err.getvalue()
    assert s.execute("\\asof today - 1 month")
    assert s.prompt_text() == "timeline[asof 2025-05-01]> "
    assert s.execute("\\asof off") and s.as_of is None
    assert not s.execute("\\known 2025-02-30")
    assert "invalid date" in err.getvalue()
    assert not s.execute("\\formt json") and "did you mean \\format?" in err.getvalue()
    out.truncate(0)
    assert s.execute("\\measures fentanyl")
    assert "us.tariff.ieepa-fentanyl.cn" in out.getvalue()
    assert "cn.tariff" not in out.getvalue()
    out.truncate(0)
    assert s.execute("\\explain total tariff by us on cn as of 2025-04-10")
    assert "PLAN" in out.getvalue() and "EVIDENCE" in out.getvalue()
    out.truncate(0)
    assert s.execute("\\sql SELECT COUNT(*) AS n FROM v_measures")
    assert not s.execute("\\sql DROP VIEW v_events") and "DROP VIEW refused" in err.getvalue()
    assert s.execute("\\help") and "\\known <date>|off" in out.getvalue()
    assert s.execute("\\help total") and "total tariff by" in out.getvalue()
    assert not s.execute("\\help nonsense")


def test_quit_ends_piped_mode(ro_store):
    s, out, _ = _session(ro_store)
    assert s.run_piped("measures where kind = visa;\n\\quit\nstate of nope.x;\n") == 0


def test_pager_only_for_tall_output_on_a_terminal(ro_store, monkeypatch):
    import pydoc
    import shutil

    class TTY(io.StringIO):
        def isatty(self):
            return True

    paged = []
    monkeypatch.setattr(pydoc, "pager", paged.append)
    monkeypatch.setattr("timeline.surfaces.repl.pager_command", lambda: "less -S")
    monkeypatch.setattr(pydoc, "pipe_pager" if hasattr(pydoc, "pipe_pager") else "pipepager",
                        lambda text, cmd: paged.append(text))
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a: os.terminal_size((100, 10)))
    s = Session(Timeline(ro_store), out=TTY(), err=io.StringIO(), today=TODAY, interactive=True)
    s.execute("measures where kind = visa")  # short: printed
    assert not paged
    s.execute("measures")  # taller than 10 lines: paged
    assert len(paged) == 1 and "us.tariff.section-30" in paged[0]  # cut to the 100 columns
    s.interactive = False  # piped: never paged
    s.execute("measures")
    assert len(paged) == 1


def test_run_repl_rejects_a_bad_default_date(seeded_db):
    r = run_cli("repl", "--db", str(seeded_db), "--as-of", "2025-13-01", input="")
    assert r.returncode == 1 and "2025-13-01" in r.stderr


def test_an_unexpected_error_does_not_end_the_session(ro_store, monkeypatch):
    s, out, err = _session(ro_store)

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(Session, "run_query", boom)
    assert s.run_piped("measures;\n\\format json\n") == 1
    assert "internal error (RuntimeError): kaboom" in err.getvalue()
    assert "format: json" in out.getvalue()


def _modules_loaded_after(code: str, names: tuple[str, ...]) -> list[str]:
    """Which of `names` a fresh interpreter has imported after running `code`."""
    import subprocess

    probe = f"{code}\nimport sys\nprint(sorted(m for m in {names!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return eval(r.stdout.strip())  # a list literal printed by the probe itself


def test_help_and_version_import_no_command_module():
    code = ("import contextlib, io\n"
            "from timeline.surfaces.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    for argv in (['--version'], ['--help']):\n"
            "        main(argv)\n"
            "assert 'repl' in out.getvalue() and 'export' in out.getvalue()")
    assert _modules_loaded_after(code, ("sqlalchemy", "prompt_toolkit", "lark",
                                        "timeline.surfaces.repl")) == []


def test_a_command_imports_only_its_own_module():
    code = "from timeline.surfaces.cli import build_parser\nbuild_parser('sql')"
    assert _modules_loaded_after(code, ("prompt_toolkit", "matplotlib", "pandas",
                                        "timeline.surfaces.export")) == []


def test_pager_chops_long_lines_instead_of_wrapping(monkeypatch):
    from timeline.surfaces.repl import pager_command

    assert pager_command({"PAGER": "less"}) == "less -S"
    assert pager_command({"PAGER": "/usr/bin/less -R"}) == "/usr/bin/less -R -S"
    assert pager_command({"PAGER": "less -RS"}) == "less -RS"  # already chopping
    assert pager_command({"PAGER": "sed s/^/P:/"}) == "sed s/^/P:/"  # the user's own pager
    assert pager_command({"PAGER": "less 'unbalanced"}) == "less 'unbalanced"
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/less")
    assert pager_command({}) == "less -S"
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert pager_command({}) is None


def test_wide_lines_are_paged_by_count_not_by_wrapping(ro_store, monkeypatch):
    class TTY(io.StringIO):
        def isatty(self):
            return True

    paged = []
    monkeypatch.setattr("timeline.surfaces.repl.page", paged.append)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a: os.terminal_size((20, 10)))
    s = Session(Timeline(ro_store), out=TTY(), err=io.StringIO(), today=TODAY, interactive=True)
    s.show("x" * 500 + "\n" + "y" * 500)  # two long lines: chopped by the pager, not paged
    assert not paged and "x" * 500 in s.out.getvalue()


def test_backslash_x_switches_expanded_rows(ro_store, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    s, out, _ = _session(ro_store)
    q = "state of us.tariff.ieepa-reciprocal.cn as of 2025-05-14;"
    assert s.run_piped(f"\\x\n{q}\n\\x\n{q}\n\\x auto\n") == 0
    text = out.getvalue()
    assert "expanded display: on" in text and "expanded display: off" in text
    assert "expanded display: auto" in text
    assert text.count("-[ RECORD 1 ]") == 1  # only while on
    assert "legal_status | unchallenged" in text
    assert not s.execute("\\x sideways") and s.expanded == "auto"


def test_interactive_tables_fit_the_terminal(ro_store, monkeypatch):
    class TTY(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a: os.terminal_size((80, 500)))
    s = Session(Timeline(ro_store), out=TTY(), err=io.StringIO(), today=TODAY, interactive=True)
    s.execute("history of us.tariff.ieepa-reciprocal.cn from 2025-04-01 to 2025-06-30")
    table = s.out.getvalue().split("\n\n")[0]
    assert max(len(line) for line in table.splitlines()) <= 80 and "…" in table
    assert "RECORD" not in table
    s.out = TTY()
    s.execute("\\sql SELECT * FROM v_events LIMIT 2")  # 25 columns: cannot fit 80
    assert s.out.getvalue().count("-[ RECORD") == 2


def test_repl_expanded_option_starts_in_expanded_mode(seeded_db):
    r = run_cli("repl", "--db", str(seeded_db), "--expanded", input="measures limit 1;\n")
    assert r.returncode == 0 and "-[ RECORD 1 ]" in r.stdout


chart_needed = pytest.mark.skipif(
    not __import__("timeline.surfaces.chart", fromlist=["available"]).available(),
    reason="matplotlib (the chart extra) is not installed")


@chart_needed
def test_chart_takes_the_cli_options_and_writes_the_named_file(ro_store, tmp_path, monkeypatch):
    from timeline.surfaces import chart

    opened = []
    monkeypatch.setattr(chart.subprocess, "Popen", lambda cmd, **kw: opened.append(cmd))
    s, out, err = _session(ro_store)
    png = tmp_path / "recip.png"
    assert s.execute(f"\\chart history of us.tariff.ieepa-reciprocal.cn from 2025-04-01 to "
                     f"2025-12-31 -o {png} --known-on 2025-06-10 --known-on=2025-05-01"), \
        err.getvalue()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.getvalue().strip() == str(png)  # piped: the path, no viewer
    assert not opened
    svg = tmp_path / "t.svg"
    assert s.execute(f"\\chart total tariff by us on cn --from 2025-01-01 -o {svg}")
    assert 'id="known-on-line-' not in svg.read_text()
    assert 'id="series-total"' in svg.read_text()


@chart_needed
def test_chart_opens_a_viewer_only_where_there_is_one(ro_store, monkeypatch):
    from timeline.surfaces import chart

    started = []
    monkeypatch.setattr(chart.subprocess, "Popen",
                        lambda cmd, **kw: started.append((cmd, kw.get("start_new_session"))))
    monkeypatch.setattr(chart.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(chart.sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    s, out, _ = _session(ro_store, interactive=True)
    assert s.execute("\\chart history of cn.tariff.retaliatory.us")
    path = out.getvalue().split(" (opened")[0].strip()
    try:
        assert "(opened in the viewer)" in out.getvalue()
        assert started == [(["xdg-open", path], True)]  # detached: the shell never waits
    finally:
        os.unlink(path)
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert chart.viewer_command(chart.Path("x.svg")) is None  # no display: print the path


@pytest.mark.parametrize("arg, message", [
    ("-o x.png", "no query before the options"),
    ("total tariff by us on cn -o", "expected one argument"),
    ("total tariff by us on cn -o x.txt", "must end in .svg or .png"),
    ("total tariff by us on cn -o 'x.png", "No closing quotation"),
    ("state of us.tariff.ieepa-fentanyl.cn -o x.svg", "cannot chart a state query"),
])
def test_chart_bad_options_are_one_line_errors(ro_store, tmp_path, monkeypatch, arg, message):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    s, out, err = _session(ro_store)
    assert not s.execute(f"\\chart {arg}")
    assert message in err.getvalue() and len(err.getvalue().strip().splitlines()) <= 3
    assert not list(cwd.iterdir())  # nothing half-written

"""`timeline repl`: the interactive query shell, its meta-commands and its piped mode.

One `Session` runs statements (queries, SQL or `\\meta` commands) and prints their results;
`interact` drives it from a prompt_toolkit prompt, `Session.run_piped` from a script on
standard input. prompt_toolkit is imported only for a terminal session, so piped input
works without it and `timeline --help` does not pay for it.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import os
import pydoc
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from timeline import __version__, api
from timeline.errors import TimelineError, describe
from timeline.surfaces.common import open_timeline
from timeline.surfaces import chart
from timeline.surfaces.completion import load_catalogue, make_completer
from timeline.surfaces.lexer import make_lexer, make_style
from timeline.surfaces.output import (EXPANDED, FORMATS, add_expanded_option, render,
                                      render_rows, terminal_width, write_rows)
from timeline.surfaces.sparkline import history_sparklines

if TYPE_CHECKING:
    from timeline.query.syntax import DateExpr
    from timeline.surfaces.completion import Catalogue
INSTALL_HINT = "pip install 'timeline[repl]'"
# rows of one SQL answer the prompt holds and pages; `timeline sql` streams any number
SCREEN_ROWS = 10_000


@dataclass(frozen=True)
class MetaCommand:
    """A backslash command: its name, usage line, one-line summary and implementation."""

    name: str
    usage: str
    summary: str
    func: Callable[["Session", str], None]


META: dict[str, MetaCommand] = {}
ALIASES: dict[str, str] = {}


def meta(name: str, usage: str, summary: str, aliases: tuple[str, ...] = ()):
    """Register the decorated function as the meta-command `\\name`."""
    def register(func):
        """Record `func` under the command's name and aliases."""
        META[name] = MetaCommand(name, usage, summary, func)
        for alias in aliases:
            ALIASES[alias] = name
        return func
    return register


class Quit(Exception):
    """Raised by `\\quit` to end the session."""


class Session:
    """Session state (format, timing, default dates, mode) and the statement runner."""

    def __init__(self, tl: api.Timeline, *, mode: str = "query", fmt: str = "table",
                 today: dt.date | None = None, out=None, err=None, interactive: bool = False):
        self.tl, self.mode, self.format = tl, mode, fmt
        self.today = today or dt.date.today()
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.interactive = interactive
        self.timing = False
        self.expanded = "auto"  # \\x: rows as records always (on), never (off), or when too wide
        self.as_of: DateExpr | None = None  # used by queries that have no `as of`
        self.known_on: DateExpr | None = None  # used by queries that have no `known on`
        self._catalogue: Catalogue | None = None

    # -- state shown to the user ---------------------------------------------------------
    def prompt_text(self) -> str:
        """The prompt, showing the session's default dates, e.g. `timeline[asof …]> `."""
        name = "timeline sql" if self.mode == "sql" else "timeline"
        parts: list[str] = []
        if self.as_of is not None:
            parts.append(f"asof {self.as_of.resolve(self.today).isoformat()}")
        if self.known_on is not None:
            parts.append(f"known {self.known_on.resolve(self.today).isoformat()}")
        return f"{name}[{' '.join(parts)}]> " if parts else f"{name}> "

    def catalogue(self):
        """The completion catalogue, read from the database once and cached."""
        if self._catalogue is None:
            with self.tl.snapshot() as snap:
                self._catalogue = load_catalogue(snap)
        return self._catalogue

    # -- running statements --------------------------------------------------------------
    def execute(self, statement: str) -> bool:
        """Run one statement and print its result or error; False if it failed."""
        statement = statement.strip()
        if not statement:
            return True
        started = time.perf_counter()
        try:
            if statement.startswith("\\"):
                self._meta(statement)
            elif statement.lower().rstrip(";").strip() in ("quit", "exit"):
                raise Quit
            elif self.mode == "sql":
                self.run_sql(statement)
            else:
                self.run_query(statement)
        except Quit:
            raise
        except TimelineError as exc:
            print(describe(exc), file=self.err)
            return False
        except Exception as exc:  # noqa: BLE001 - a bug must not end the user's session
            print(f"internal error ({type(exc).__name__}): {exc}", file=self.err)
            return False
        if self.timing and _timed(statement):
            print(f"Time: {time.perf_counter() - started:.3f} s", file=self.out)
        return True

    def _meta(self, statement: str) -> None:
        parts = statement[1:].rstrip(";").strip().split(None, 1)
        name = ALIASES.get(parts[0].lower(), parts[0].lower()) if parts else ""
        arg = parts[1] if len(parts) > 1 else ""
        if name not in META:
            guess = api.suggest(name, META)
            raise TimelineError(f"unknown command \\{name}"
                                + (f"; did you mean \\{guess}?" if guess else "; see \\help"))
        META[name].func(self, arg.strip())

    def run_query(self, text: str, explain: bool = False) -> None:
        """Parse, plan and run one query of the query language, then print the answer."""
        text = text.strip().rstrip(";").rstrip()
        answer = self.tl.query(text, today=self.today, as_of=self.as_of,
                               known_on=self.known_on, explain=explain).answer
        shown = render(answer, self.format, pretty=self.interactive, width=self.width(),
                       expanded=self.expanded)
        if answer.kind == "history" and self.format == "table" and self.interactive \
                and _isatty(self.out):
            # a sparkline of each measure's rate: the shape of the history at a glance
            lines = history_sparklines(answer.data)
            if lines:
                shown += "\n\n" + "\n".join(lines)
        self.show(shown)

    def run_sql(self, text: str) -> None:
        """Run one read-only SQL statement and print its rows.

        Piped, the rows stream through (memory stays bounded); at the prompt, at most
        SCREEN_ROWS are held and paged, with a note when there were more."""
        if not (self.interactive and _isatty(self.out)):
            with self.tl.sql_stream(text) as stream:
                write_rows(self.out, stream.columns, stream.batches(), self.format,
                           pretty=self.interactive, width=self.width(),
                           expanded=self.expanded)
            if self.format == "table":
                self.out.write("\n")
            return
        columns, rows = self.tl.sql(text, max_rows=SCREEN_ROWS + 1)
        shown = render_rows(columns, rows[:SCREEN_ROWS], self.format, pretty=True,
                            width=self.width(), expanded=self.expanded)
        if len(rows) > SCREEN_ROWS:
            shown += (f"\n(stopped after {SCREEN_ROWS} rows: for all of them, run "
                      f"`timeline sql \"…\" --format csv > FILE`)")
        self.show(shown)

    def width(self) -> int | None:
        """The width tables must fit: the terminal's ($COLUMNS first), None when piped."""
        return terminal_width(self.out if self.interactive else None)

    def show(self, text: str) -> None:
        """Print a result, through a pager when it is taller than the terminal."""
        if self.interactive and _isatty(self.out):
            size = shutil.get_terminal_size()
            # the pager chops long lines (less -S) rather than wrapping them: count text lines
            if text.count("\n") + 1 > size.lines - 2:
                page(text)
                return
        # a blank line after a table keeps consecutive results apart; JSON and CSV stay
        # exactly as rendered (CSV ends with its own CRLF) so that they pipe into tools
        if self.format == "table":
            text += "\n"
        self.out.write(text if text.endswith("\n") else text + "\n")

    def run_piped(self, script: str) -> int:
        """Run every statement of a script (piped input); 1 if any failed, else 0."""
        failed = False
        try:
            for statement in split_script(script, self.mode):
                if not self.execute(statement):
                    failed = True
        except Quit:
            pass
        return 1 if failed else 0


def pager_command(env=None) -> str | None:
    """The pager for tall results: $PAGER, else less; less is told to chop long lines (-S)."""
    env = os.environ if env is None else env
    cmd = env.get("PAGER", "").strip() or ("less" if shutil.which("less") else "")
    if not cmd:
        return None
    try:
        words = shlex.split(cmd)
    except ValueError:
        return cmd
    if os.path.basename(words[0]) == "less" and not any(
            w.startswith("-") and not w.startswith("--") and "S" in w for w in words[1:]):
        cmd += " -S"
    return cmd


def page(text: str) -> None:
    """Show `text` through the pager of `pager_command`, or pydoc's plain one without it."""
    cmd = pager_command()
    if cmd is None:
        pydoc.pager(text)
    else:
        # pipepager became pipe_pager in Python 3.13
        (getattr(pydoc, "pipe_pager", None) or pydoc.pipepager)(text, cmd)


def _timed(statement: str) -> bool:
    """Queries and the meta-commands that run one are timed; settings are not."""
    if not statement.startswith("\\"):
        return True
    name = statement[1:].split(" ", 1)[0].lower()
    return name in ("sql", "explain", "measures", "chart")


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -- splitting text into statements ---------------------------------------------------------
def split_statements(text: str, mode: str = "query") -> tuple[list[str], str]:
    """Statements ended by `;` outside strings (and SQL comments), plus the unfinished rest."""
    done: list[str] = []
    buf: list[str] = []
    quote, i, n = None, 0, len(text)
    while i < n:
        ch = text[i]
        if quote:
            buf.append(ch)
            if quote == "*/":
                if text.startswith("*/", i):
                    buf.append("/")
                    i += 1
                    quote = None
            elif quote == "\n":
                if ch == "\n":
                    quote = None
            elif ch == "\\" and mode == "query" and i + 1 < n:
                buf.append(text[i + 1])  # the query language escapes quotes with a backslash
                i += 1
            elif ch == quote:
                quote = None
        elif ch == ";":
            done.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
            if ch in "'\"":
                quote = ch
            elif mode == "sql" and ch == "`":
                quote = "`"
            elif mode == "sql" and ch == "[":
                quote = "]"
            elif mode == "sql" and text.startswith("--", i):
                quote = "\n"
            elif mode == "sql" and text.startswith("/*", i):
                buf.append("*")
                i += 1
                quote = "*/"
        i += 1
    return [s for s in done if s], "".join(buf)


def statement_complete(text: str, mode: str = "query") -> bool:
    """Whether Enter should run the buffer: a `;` ends it, so do a blank line and a meta-command."""
    stripped = text.strip()
    if not stripped or stripped.startswith("\\"):
        return True
    if stripped.lower() in ("quit", "exit"):
        return True
    lines = text.split("\n")
    if len(lines) > 1 and not lines[-1].strip():
        return True
    statements, rest = split_statements(text, mode)
    return bool(statements) and not rest.strip()


def split_script(script: str, mode: str = "query") -> list[str]:
    """A script's statements: ended by `;` or a blank line; a `\\` line is one meta-command."""
    out: list[str] = []
    buf: list[str] = []

    def flush():
        """Emit the buffered lines as statements (a blank line ends a statement)."""
        statements, rest = split_statements("\n".join(buf), mode)
        out.extend(statements)
        if rest.strip():
            out.append(rest.strip())
        buf.clear()

    for line in script.splitlines():
        if line.strip().startswith("\\"):
            flush()
            out.append(line.strip())
        elif not line.strip():
            flush()
        else:
            buf.append(line)
            statements, rest = split_statements("\n".join(buf), mode)
            if statements:
                out.extend(statements)
                buf[:] = [rest] if rest.strip() else []
    flush()
    return out


# -- meta-commands --------------------------------------------------------------------------
HELP_TOPICS = {
    "state": "state of <measure|glob> [as of <date>] [known on <date>] [where …]\n"
             "  The state in force on a date, e.g. state of us.tariff.* as of 2025-05-14",
    "history": "history of <measure|glob> [from <date>] [to <date>] [known on <date>] [where …]\n"
               "  [order by <field> [asc|desc]] [limit <n>]\n"
               "  Every interval of a measure's state, e.g. history of cn.tariff.retaliatory.us",
    "events": "events [for <measure|glob>] [from <date>] [to <date>] [where …]\n"
              "  [order by <field> [asc|desc]] [limit <n>]\n"
              "  The log, e.g. events for us.tariff.* where type = amended limit 5",
    "diff": "diff <measure|glob> between <date> and <date> [known on <date>] [where …]\n"
            "  [fields <field>, …]\n"
            "  Field changes between two dates",
    "total": "total tariff by <imposer> on <target> [as of <date>] [known on <date>] [where …]\n"
             "  Sum of all-goods tariffs in force, e.g. total tariff by us on cn as of 2025-04-10",
    "tariff": "tariff on <hts CODE|group> from <origin> [as of <date>] [known on <date>]\n"
              "  [with <material> content <N>%] [by post]\n"
              "  What a good paid, layer by layer, e.g. tariff on smartphones from cn as of\n"
              "  2025-04-15 known on 2025-04-10; also history of tariff on …, first date where\n"
              "  tariff on … >= N (docs/products.md)",
    "products": "products [where …] [order by <field>] [limit <n>]\n"
                "  The product groups and their HTS codes, e.g. products where hts contains 8541",
    "measures": "measures [as of <date>] [known on <date>] [where …] [order by <field>] "
                "[limit <n>]\n"
                "  The catalogue with each measure's state today (or \\asof, \\known),\n"
                "  e.g. measures where kind = tariff",
    "first": "first date where <measure|glob> <condition> [from <date>] [known on <date>]\n"
             "  The first day a state matches, e.g.\n"
             "  first date where us.tariff.ieepa-reciprocal.cn rate >= 100",
    "learned": "learned [for <measure|glob>] between <date> and <date> [as of <date>]\n"
               "  What became known in a span of knowledge time and what each event changed,\n"
               "  e.g. learned between today - 7 days and today",
    "explain": "explain <query>\n  The events the answer rests on, with their sources, then the "
               "plan and how many SQL statements it ran",
    "dates": "Dates: 2025-04-10, \"April 10, 2025\", today, yesterday, last week, last month,\n"
             "  with offsets: today - 2 weeks\n"
             "  \\asof and \\known set defaults for queries that do not say `as of`/`known on`",
    "where": "where <field> <op> <value> [and …]; ops: = != < <= > >= contains\n"
             "  Fields: event columns (type, effective, known, source, title, …) or state "
             "fields (rate, status, …)",
    "sql": "\\sql <SELECT …> runs read-only SQL against the views v_events, v_measures,\n"
           "  v_intervals and v_state_today (see docs/sql.md); `timeline sql` opens a SQL shell",
}


@meta("help", "\\help [topic]", "this help, or help on a query kind or command", ("?", "h"))
def _help(s: Session, arg: str) -> None:
    topic = arg.lstrip("\\").lower()
    if not topic:
        lines = ["Queries end with ';' or a blank line. Tab completes; Ctrl-C cancels the line; "
                 "Ctrl-D quits.", "", "Queries:"]
        if s.mode == "sql":
            lines[:0] = ["SQL mode: statements are read-only SQL over v_events, v_measures, "
                         "v_intervals and v_state_today (see docs/sql.md); \\q leaves.", ""]
        lines += ["  " + HELP_TOPICS[k].splitlines()[0]
                  for k in ("state", "history", "events", "diff", "total", "measures", "explain")]
        lines += ["", "Commands:"]
        width = max(len(c.usage) for c in META.values())
        lines += [f"  {c.usage.ljust(width)}  {c.summary}" for c in META.values()]
        lines += ["", "\\help <topic> for more: " + ", ".join(HELP_TOPICS)]
        s.show("\n".join(lines))
    elif topic in HELP_TOPICS:
        s.show(HELP_TOPICS[topic])
    elif ALIASES.get(topic, topic) in META:
        c = META[ALIASES.get(topic, topic)]
        s.show(f"{c.usage}\n  {c.summary}")
    else:
        raise TimelineError(f"no help on {arg!r}; topics: " + ", ".join(HELP_TOPICS))


@meta("measures", "\\measures [glob]", "list measures (a glob, or any part of the id)")
def _measures(s: Session, arg: str) -> None:
    s._catalogue = None  # the catalogue may have grown since the session began
    answer = s.tl.query("measures", today=s.today).answer
    if arg:
        pattern = arg if "*" in arg else f"*{arg}*"
        keep = [i for i, r in enumerate(answer.rows) if fnmatch.fnmatchcase(r[0], pattern)]
        answer = replace(answer, rows=[answer.rows[i] for i in keep],
                         data={**answer.data, "results": [answer.data["results"][i]
                                                          for i in keep]})
    s.show(render(answer, s.format, pretty=s.interactive))


@meta("format", "\\format table|json|csv", "how results are printed")
def _format(s: Session, arg: str) -> None:
    if not arg:
        print(f"format: {s.format}", file=s.out)
        return
    if arg.lower() not in FORMATS:
        raise TimelineError(f"unknown format {arg!r}; choose table, json or csv")
    s.format = arg.lower()
    print(f"format: {s.format}", file=s.out)


@meta("x", "\\x [on|off|auto]", "expanded rows: one 'column | value' line per field "
      "(auto: only when a row is too wide)", ("expanded",))
def _expanded(s: Session, arg: str) -> None:
    if arg.lower() not in ("",) + EXPANDED:
        raise TimelineError("usage: \\x [on|off|auto]")
    s.expanded = arg.lower() or ("off" if s.expanded == "on" else "on")
    print(f"expanded display: {s.expanded}", file=s.out)


@meta("timing", "\\timing on|off", "print how long each statement took")
def _timing(s: Session, arg: str) -> None:
    if arg.lower() not in ("", "on", "off"):
        raise TimelineError("usage: \\timing on|off")
    s.timing = (not s.timing) if not arg else arg.lower() == "on"
    print(f"timing: {'on' if s.timing else 'off'}", file=s.out)


def _date_default(s: Session, arg: str, attr: str, clause: str) -> None:
    if not arg:
        value = getattr(s, attr)
        print(f"{clause}: " + (value.resolve(s.today).isoformat() if value else "off"),
              file=s.out)
        return
    if arg.lower() == "off":
        setattr(s, attr, None)
        print(f"{clause}: off", file=s.out)
        return
    expr = api.parse_date(arg)
    day = expr.resolve(s.today)
    setattr(s, attr, expr)
    print(f"{clause}: {day.isoformat()} (for queries without '{clause}')", file=s.out)


@meta("asof", "\\asof <date>|off", "default 'as of' date for state and total queries")
def _asof(s: Session, arg: str) -> None:
    _date_default(s, arg, "as_of", "as of")


@meta("known", "\\known <date>|off", "default 'known on' date: answer with what was public then")
def _known(s: Session, arg: str) -> None:
    _date_default(s, arg, "known_on", "known on")


@meta("sql", "\\sql <SELECT …>", "run one read-only SQL statement against the views")
def _sql(s: Session, arg: str) -> None:
    if not arg:
        raise TimelineError("usage: \\sql SELECT … (e.g. \\sql SELECT * FROM v_measures)")
    s.run_sql(arg)


@meta("explain", "\\explain <query>", "show the events a query's answer rests on, and its plan")
def _explain(s: Session, arg: str) -> None:
    if not arg:
        raise TimelineError("usage: \\explain <query>, e.g. \\explain total tariff by us on cn")
    s.run_query(arg, explain=True)


@meta("chart", "\\chart <query> [-o FILE.png|svg] [--known-on DATE]… [--from D] [--to D]",
      "draw a history or total query (as `timeline chart`) and open it in a viewer")
def _chart(s: Session, arg: str) -> None:
    if not arg:
        raise TimelineError("usage: \\chart <history or total query> [-o FILE.png|svg] "
                            "[--known-on DATE], e.g. \\chart total tariff by us on cn")
    query, opts = chart.parse_chart_args(arg)
    options = {"known_on": opts.known_on, "start": opts.start, "end": opts.end}
    with s.tl.snapshot() as snap:
        if opts.output:
            path = Path(opts.output)
            data = chart.write_chart(snap, query, path, today=s.today, **options)
            for note in data.notes:
                print(f"note: {note}", file=s.err)
        else:
            path = chart.chart_to_tempfile(snap, query, s.today, **options)
    # only a person at a terminal gets a window; a script gets the path alone
    opened = s.interactive and chart.open_in_viewer(path)
    print(f"{path}{' (opened in the viewer)' if opened else ''}", file=s.out)


@meta("quit", "\\quit", "leave (also \\q, Ctrl-D)", ("q", "exit"))
def _quit(s: Session, arg: str) -> None:
    raise Quit


# -- the command ----------------------------------------------------------------------------
def configure_repl(p) -> None:
    """Arguments of `timeline repl`."""
    p.add_argument("--format", choices=FORMATS, default="table")
    add_expanded_option(p)
    p.add_argument("--as-of", metavar="DATE", help="default 'as of' date (like \\asof)")
    p.add_argument("--known-on", metavar="DATE", help="default 'known on' date (like \\known)")


def run_repl(args) -> int:
    """Start an interactive session on a terminal, or run piped statements."""
    mode = getattr(args, "mode", "query")
    interactive = sys.stdin.isatty()
    if interactive and not prompt_toolkit_available():
        raise TimelineError(f"the interactive shell needs prompt_toolkit: {INSTALL_HINT}\n"
                            f"(piped input works without it: printf 'measures;\\n' | "
                            f"timeline repl)")
    tl = open_timeline(args, readonly=True)
    session = Session(tl, mode=mode, fmt=getattr(args, "format", None) or "table",
                      interactive=interactive)
    session.expanded = getattr(args, "expanded", None) or "auto"
    if getattr(args, "as_of", None):
        session.as_of = as_of = api.parse_date(args.as_of)
        as_of.resolve(session.today)
    if getattr(args, "known_on", None):
        session.known_on = known_on = api.parse_date(args.known_on)
        known_on.resolve(session.today)
    try:
        if not interactive:
            return session.run_piped(sys.stdin.read())
        return interact(session)
    finally:
        tl.close()


def prompt_toolkit_available() -> bool:
    """Whether prompt_toolkit can be imported."""
    try:
        import prompt_toolkit  # noqa: F401
    except ImportError:
        return False
    return True


def history_path():
    """The history file in the user data directory (created on demand)."""
    path = api.user_data_dir() / "history"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def interact(session: Session, *, input=None, output=None, history=None) -> int:
    """The prompt loop; `input`/`output`/`history` are for tests (pipe input, DummyOutput)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.application import get_app
    from prompt_toolkit.completion import DynamicCompleter
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.history import FileHistory

    completer = make_completer(session.catalogue, lambda: session.mode)
    prompt: PromptSession[str] = PromptSession(
        message=lambda: [("class:prompt", session.prompt_text())],
        # Enter inserts a newline until the buffer holds a complete statement
        multiline=Condition(lambda: not statement_complete(get_app().current_buffer.text,
                                                           session.mode)),
        prompt_continuation=lambda width, line, wrap: [("class:continuation",
                                                        "...".rjust(width - 2) + "  ")],
        completer=DynamicCompleter(lambda: completer),
        lexer=make_lexer(lambda: session.mode), style=make_style(),
        history=history if history is not None else FileHistory(str(history_path())),
        enable_history_search=True, input=input, output=output)
    print(f"timeline {__version__} on {session.tl.where} ({session.mode} mode). "
          f"\\help for help, Ctrl-D to quit.", file=session.out)
    while True:
        try:
            text = prompt.prompt()
        except KeyboardInterrupt:
            continue  # Ctrl-C drops the line being typed
        except EOFError:
            break
        try:
            # a pasted block may hold several statements and meta-commands
            for statement in split_script(text, session.mode):
                session.execute(statement)
        except KeyboardInterrupt:
            print("cancelled", file=session.err)
        except Quit:
            break
    return 0

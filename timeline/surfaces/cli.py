"""The `timeline` command line: argument parsing, dispatch, and the one place errors become exits.

Command modules are imported only when their command runs, so `timeline query` does not pay
for Alembic, prompt_toolkit or matplotlib at start-up.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from timeline.errors import TimelineError, describe

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_TIMEOUT_S = 30.0  # --timeout

# The one table of commands: name -> (module, help). Each module has configure_<name>(parser)
# and run_<name>(args) -> exit code; only the chosen command's module is imported.
_CORE = "timeline.surfaces.commands"
COMMANDS = {
    "init": (_CORE, "create (or upgrade) a database and load the bundled seeds"),
    "info": (_CORE, "print the database path, schema revision and log head"),
    "verify": (_CORE, "recompute the hash chain and check immutability"),
    "load": (_CORE, "validate and append event files (all or nothing)"),
    "query": (_CORE, "run one query and print the answer"),
    "rebuild": (_CORE, "drop and rebuild every projection from the log"),
    "schema": (_CORE, "print the JSON Schema of the event-file format"),
    "review": (_CORE, "record that the sources were checked through a date (the horizon)"),
    "repl": ("timeline.surfaces.repl", "interactive query shell"),
    "sql": ("timeline.surfaces.sqlaccess", "run a read-only SQL SELECT (or the SQL shell)"),
    "export": ("timeline.surfaces.export", "write (or verify) a dated projection snapshot"),
    "report": ("timeline.surfaces.report", "write the morning briefing page for a date"),
    "chart": ("timeline.surfaces.chart", "draw a history or total query as an SVG/PNG chart"),
    "copy": ("timeline.surfaces.copy", "copy a whole log between databases, verifying the chain"),
    "serve": ("timeline.surfaces.serve.command", "serve the read-only web pages and JSON "
              "API on this machine"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's default prints usage and exits 2 itself
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _chosen(argv: list[str]) -> str | None:
    """The command named in argv, found without parsing (skips --db and its value)."""
    skip = False
    for tok in argv:
        if skip:
            skip = False
        elif tok == "--db":
            skip = True
        elif not tok.startswith("-"):
            return tok if tok in COMMANDS else None
    return None


def _seconds(text: str) -> float | None:
    """argparse type of --timeout: seconds >= 0 (0 means no limit)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 10 ** 7:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"--timeout needs seconds from 0 to 10000000, "
                                         f"not {text!r}")
    return value or None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser. Only the module of the command `only` is imported, to add that
    command's own arguments: a command never pays for another's imports, and `--help` and
    `--version` pay for none (the command list comes from COMMANDS)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH_OR_URL", default=argparse.SUPPRESS,
                        help="database file or SQLAlchemy URL (default: $TIMELINE_DB or the "
                             "per-user data directory)")
    common.add_argument("--timeout", type=_seconds, metavar="SECONDS", default=argparse.SUPPRESS,
                        help="stop a read (query, sql, repl, export, chart) running longer "
                             "than this (default 30; 0: no limit)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an unexpected error, print the Python traceback too")
    parser = _Parser(prog="timeline", parents=[common],
                     description="An event-sourced, bitemporal timeline database.")
    from timeline import __version__

    parser.add_argument("--version", action="version", version=f"timeline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           parents=[common])  # type: ignore[list-item]  # typeshed: _Parser only
        if name == only:
            mod = importlib.import_module(module)
            getattr(mod, f"configure_{name}".replace("-", "_"))(p)
        p.set_defaults(_module=module, _name=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `timeline` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv and sys.stdin.isatty() and sys.stdout.isatty() and "repl" in COMMANDS:
        argv = ["repl"]
    parser = build_parser(_chosen(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not getattr(args, "command", None):
        parser.print_usage(sys.stderr)
        print("timeline: error: a command is required (see timeline --help)", file=sys.stderr)
        return EXIT_USAGE
    if not hasattr(args, "db"):
        args.db = None
    args.debug = getattr(args, "debug", False)
    if not hasattr(args, "timeout"):
        args.timeout = DEFAULT_TIMEOUT_S
    try:
        mod = importlib.import_module(args._module)
        return int(getattr(mod, f"run_{args._name}".replace("-", "_"))(args) or 0)
    except TimelineError as exc:
        print(describe(exc), file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except OSError as exc:
        # the output's disk is full or gone (stdout into /dev/full, a pipe's device failing):
        # the user's environment, not a bug to report; file writes name their own file
        where = exc.filename or "the output"
        print(f"error: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
        _silence_stdout()
        return EXIT_FAIL
    except MemoryError:
        # the traceback itself might not fit; say what to do instead
        print("error: out of memory; narrow the query, add a LIMIT or use sql --max-rows",
              file=sys.stderr)
        return EXIT_FAIL
    except Exception as exc:  # noqa: BLE001 - the one catch-all: no traceback reaches a user
        return _internal_error(exc, args.debug)


def _silence_stdout() -> None:
    # what is still buffered for stdout would fail again when Python flushes it at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _internal_error(exc: Exception, debug: bool) -> int:
    """An unexpected exception as one line (the traceback only with --debug); exit 1."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    first = (str(exc).strip().splitlines() or [""])[0]
    print(f"internal error: {type(exc).__name__}: {first} (please report; run again with "
          f"--debug for the traceback)", file=sys.stderr)
    return EXIT_FAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The `timeline` command line: argument parsing, dispatch, and the one place errors become exits.

Command modules are imported only when their command runs, so `timeline query` does not pay
for Alembic, prompt_toolkit or matplotlib at start-up.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from timeline.errors import TimelineError, describe

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

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
    "review": (_CORE, "record that the sources were checked through a date (the horizon)"),
    "repl": ("timeline.surfaces.repl", "interactive query shell"),
    "sql": ("timeline.surfaces.sqlaccess", "run a read-only SQL SELECT (or the SQL shell)"),
    "export": ("timeline.surfaces.export", "write (or verify) a dated projection snapshot"),
    "chart": ("timeline.surfaces.chart", "draw a history or total query as an SVG/PNG chart"),
    "copy": ("timeline.surfaces.copy", "copy a whole log between databases, verifying the chain"),
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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser. Only the module of the command `only` is imported, to add that
    command's own arguments: a command never pays for another's imports, and `--help` and
    `--version` pay for none (the command list comes from COMMANDS)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH_OR_URL", default=argparse.SUPPRESS,
                        help="database file or SQLAlchemy URL (default: $TIMELINE_DB or the "
                             "per-user data directory)")
    parser = _Parser(prog="timeline", parents=[common],
                     description="An event-sourced, bitemporal timeline database.")
    from timeline import __version__

    parser.add_argument("--version", action="version", version=f"timeline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
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
    mod = importlib.import_module(args._module)
    try:
        return int(getattr(mod, f"run_{args._name}".replace("-", "_"))(args) or 0)
    except TimelineError as exc:
        print(describe(exc), file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

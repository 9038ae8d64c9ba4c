"""`timeline sql`: run one read-only SQL statement against the documented views (docs/sql.md).

The guards that keep the statement read-only live in the store layer
(`timeline.store.readonly_sql`); this module is the command and its output.
"""
from __future__ import annotations

import sys

from timeline.store.readonly_sql import single_statement
from timeline.surfaces.common import open_timeline
from timeline.surfaces.output import FORMATS, render_rows
from timeline.surfaces.repl import run_repl


def configure_sql(p) -> None:
    """Arguments of `timeline sql`."""
    p.add_argument("query", nargs="?", metavar="SQL",
                   help="one SELECT statement; without it, an interactive SQL shell opens")
    p.add_argument("--format", choices=FORMATS, default="table")


def run_sql(args) -> int:
    """Run one read-only statement and print its rows, or open the REPL in SQL mode."""
    if args.query is None:
        args.mode = "sql"
        return run_repl(args)
    statement = single_statement(args.query)
    with open_timeline(args, readonly=True) as tl:
        columns, rows = tl.sql(statement)
    out = render_rows(columns, rows, args.format, pretty=sys.stdout.isatty())
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0

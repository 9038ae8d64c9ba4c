"""`timeline sql`: run one read-only SQL statement against the documented views (docs/sql.md).

The guards that keep the statement read-only live in the store layer
(`timeline.store.readonly_sql`); this module is the command and its output.
"""
from __future__ import annotations

import argparse
import sys

from timeline.store.readonly_sql import single_statement
from timeline.surfaces.common import open_timeline
from timeline.surfaces.output import FORMATS, add_expanded_option, render_rows, terminal_width
from timeline.surfaces.repl import run_repl


def configure_sql(p) -> None:
    """Arguments of `timeline sql`."""
    p.add_argument("query", nargs="?", metavar="SQL",
                   help="one SELECT statement; without it, an interactive SQL shell opens")
    p.add_argument("--format", choices=FORMATS, default="table")
    add_expanded_option(p)
    p.add_argument("--max-rows", type=_count, metavar="N",
                   help="print at most N rows (a note on stderr says when there were more)")


def _count(text: str) -> int:
    """argparse type of --max-rows: a whole number >= 0."""
    if not text.isdigit() or int(text) > 10 ** 12:
        raise argparse.ArgumentTypeError(f"--max-rows needs a whole number from 0, not "
                                         f"{text!r}")
    return int(text)


def run_sql(args) -> int:
    """Run one read-only statement and print its rows, or open the REPL in SQL mode."""
    if args.query is None:
        args.mode = "sql"
        return run_repl(args)
    statement = single_statement(args.query)
    limit = args.max_rows
    with open_timeline(args, readonly=True) as tl:
        columns, rows = tl.sql(statement, max_rows=None if limit is None else limit + 1)
    if limit is not None and len(rows) > limit:
        rows = rows[:limit]
        print(f"timeline sql: stopped at --max-rows {limit}; there are more rows",
              file=sys.stderr)
    out = render_rows(columns, rows, args.format, pretty=sys.stdout.isatty(),
                      width=terminal_width(sys.stdout), expanded=args.expanded)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0

"""`timeline sql`: run one read-only SQL statement against the documented views (docs/sql.md).

The guards that keep the statement read-only live in the store layer, behind
`Timeline.sql_stream` and `api.single_statement`; this module is the command and its output.
"""
from __future__ import annotations

import argparse
import sys

from timeline import api
from timeline.surfaces.common import open_timeline
from timeline.surfaces.output import FORMATS, add_expanded_option, terminal_width, write_rows
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
    if not (text.isascii() and text.isdigit()) or int(text) > 10 ** 12:
        raise argparse.ArgumentTypeError(f"--max-rows needs a whole number from 0, not "
                                         f"{text!r}")
    return int(text)


def run_sql(args) -> int:
    """Run one read-only statement and print its rows, or open the REPL in SQL mode."""
    if args.query is None:
        args.mode = "sql"
        return run_repl(args)
    statement = api.single_statement(args.query)
    limit = args.max_rows
    with open_timeline(args, readonly=True) as tl, tl.sql_stream(statement) as stream:
        more: list[tuple] = []
        batches = _at_most(stream.batches(), limit, more)
        write_rows(sys.stdout, stream.columns, batches, args.format,
                   pretty=sys.stdout.isatty(), width=terminal_width(sys.stdout),
                   expanded=args.expanded)
    if more:
        print(f"timeline sql: stopped at --max-rows {limit}; there are more rows",
              file=sys.stderr)
    return 0


def _at_most(batches, limit: int | None, more: list):
    """The batches cut after `limit` rows; `more` gets an entry when rows were left out."""
    if limit is None:
        yield from batches
        return
    left = limit
    for batch in batches:
        if len(batch) > left:
            more.append(True)
            if left:
                yield batch[:left]
            return
        left -= len(batch)
        yield batch
        if left == 0:
            # one more row tells whether the limit cut anything
            for nxt in batches:
                if nxt:
                    more.append(True)
                return
            return

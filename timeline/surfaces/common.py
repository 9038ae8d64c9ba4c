"""What every command shares: opening the database named on the command line."""
from __future__ import annotations

import sys

from timeline import api


def announce(msg: str) -> None:
    """Print a notice (e.g. "created the database") on standard error."""
    print(msg, file=sys.stderr)


# The read surfaces --timeout applies to; verify, load, rebuild and copy run to the end.
TIMED = frozenset({"query", "sql", "repl", "export", "report", "chart", "info"})


def open_timeline(args, *, readonly: bool = False, create: bool = False) -> api.Timeline:
    """The database named by --db / $TIMELINE_DB / the default, announcing its creation."""
    timeout = getattr(args, "timeout", None) if getattr(args, "_name", None) in TIMED else None
    return api.open(args.db, readonly=readonly, create=create, announce=announce,
                    timeout=timeout)

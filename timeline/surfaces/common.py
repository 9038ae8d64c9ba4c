"""What every command shares: opening the database named on the command line."""
from __future__ import annotations

import sys

from timeline import api


def announce(msg: str) -> None:
    """Print a notice (e.g. "created the database") on standard error."""
    print(msg, file=sys.stderr)


def open_timeline(args, *, readonly: bool = False, create: bool = False) -> api.Timeline:
    """The database named by --db / $TIMELINE_DB / the default, announcing its creation."""
    return api.open(args.db, readonly=readonly, create=create, announce=announce)

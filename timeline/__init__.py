"""timeline: an event-sourced, bitemporal timeline database with its own query language.

The public Python API (see docs/python-api.md)::

    import timeline
    with timeline.open() as tl:            # the default database; or a path / SQLAlchemy URL
        a = tl.query("total tariff by us on cn as of 2025-04-10")
        a.total, a.rows                     # 145, a list of dicts
        tl.state("us.tariff.ieepa-reciprocal.cn", as_of="2025-08-13", known_on="2025-06-10")

Errors are the classes below, all subclasses of TimelineError.
"""
from __future__ import annotations

from timeline.errors import (ConcurrencyError, EventValidationError, ImmutableLogError,
                             IntegrityError, QueryError, ReadOnlyError, SchemaError, StoreError,
                             TimelineError)

__version__ = "0.1.0"

__all__ = [
    "open", "init", "Timeline", "Snapshot", "Result", "LoadResult", "Head", "NewEvent",
    "TimelineError", "QueryError", "EventValidationError", "StoreError", "SchemaError",
    "ReadOnlyError", "IntegrityError", "ImmutableLogError", "ConcurrencyError",
    "__version__",
]

# The API module is imported on first use, not here: every `timeline.*` import (the CLI's
# start-up included) runs this file, and most commands never need SQLAlchemy's ORM-free
# core, Lark and the planner all at once just to print --help.
_LAZY = {"open": "timeline.api", "init": "timeline.api", "Timeline": "timeline.api",
         "Snapshot": "timeline.api", "Result": "timeline.api", "LoadResult": "timeline.api",
         "Head": "timeline.log.chain", "NewEvent": "timeline.log.events"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'timeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

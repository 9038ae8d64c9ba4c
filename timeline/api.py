"""The public Python API: open a timeline, ask it questions, load events, verify it.

The command line, the REPL, the report, the charts, the export and `timeline serve` are
built on these same calls, and on nothing below them (tests/test_architecture.py)::

    import timeline
    with timeline.open() as tl:
        a = tl.query("total tariff by us on cn as of 2025-04-10")
        a.total, a.rows
        with tl.snapshot() as s:        # several reads of one state of the log
            s.head(), s.horizon(), s.query("state of us.tariff.*")

Besides `Timeline`, the module names what the surfaces share with the layers below: the
query parser (`parse`, `parse_date`), the grammar's words for completion, the closed sets
of the event vocabulary, the row types a snapshot returns, and the hash-chain check of an
exported log. docs/python-api.md documents them all.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping, Sequence

from timeline.errors import QueryError, TimelineError
from timeline.log.chain import Head
from timeline.log.db import user_data_dir
from timeline.log.events import Event, NewEvent
from timeline.log.migrate import HEAD_REVISION
from timeline.log.vocabulary import EVENT_TYPES, KINDS, LEGAL_STATUSES, STATUSES
from timeline.projections.reader import (EVENT_COLUMNS, MEASURE_COLUMNS, STATE_COLUMNS,
                                         CatalogueEntry, StateRow)
from timeline.query.parser import parse, parse_date
from timeline.query.planner import Answer
from timeline.query.suggest import suggest
from timeline.query.syntax import (DateExpr, Pos, Query, StateQuery, Target,
                                   TariffHistoryQuery, TariffQuery)
from timeline.snapshot import VALUE_AT as _AT
from timeline.snapshot import Result, Snapshot, date_option, product_node
from timeline.store.store import AppendResult, StateChange, Store

if TYPE_CHECKING:  # `timeline sql`'s module is loaded only when SQL is run
    from timeline.store.readonly_sql import RowStream

REVIEW_STREAM = "log.review"  # where `reviewed` events go: the log's own record of checks
REVIEW_SOURCE = "timeline review"

__all__ = ["open", "init", "Timeline", "Snapshot", "Result", "LoadResult", "StateChange",
           "Head", "event_schema", "event_field_tables", "rate_decimals", "single_statement",
           "chain_head", "next_terminals", "terminal_words", "parse", "parse_date", "suggest",
           "user_data_dir", "Answer", "Event", "StateRow", "CatalogueEntry", "HEAD_REVISION",
           "EVENT_TYPES", "KINDS", "STATUSES", "LEGAL_STATUSES", "EVENT_COLUMNS",
           "MEASURE_COLUMNS", "STATE_COLUMNS"]


@dataclass(frozen=True)
class LoadResult:
    """What `Timeline.load` did (or would do, with `dry_run`): events appended, ids already
    in the log, the head, and for a dry run each measure's state changes."""

    appended: list[Event]
    skipped: int
    head: Head
    changes: list[StateChange] = field(default_factory=list)
    dry_run: bool = False


class Timeline:
    """An open timeline database (use `timeline.open`)."""

    def __init__(self, store: Store):
        # private: the surfaces reach the database only through the methods below
        self._store = store

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Release the database's connections."""
        self._store.close()

    def __enter__(self) -> "Timeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self._store.readonly else "read-write"
        return f"<Timeline {self._store.where} ({mode})>"

    # -- where it is ------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """The database file path or URL (for messages)."""
        return self._store.where

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the database (two timelines on one URL are one database)."""
        return self._store.url

    @property
    def path(self) -> Path | None:
        """The database file, or None for a server database (PostgreSQL)."""
        return self._store.path

    @property
    def readonly(self) -> bool:
        """Whether the timeline was opened read-only."""
        return self._store.readonly

    @property
    def timeout(self) -> float | None:
        """Seconds a read may run before it is stopped (`open(timeout=…)`); None: no limit."""
        return self._store.timeout

    # -- reading ----------------------------------------------------------------------------
    @property
    def head(self) -> Head:
        """Position and hash of the log's last event."""
        return self._store.head()

    @property
    def horizon(self) -> str | None:
        """The knowledge horizon: the latest date the log knows of (None when empty)."""
        with self.snapshot() as s:
            return s.horizon()

    @contextlib.contextmanager
    def snapshot(self, *, check: bool = True) -> Iterator[Snapshot]:
        """Several reads of one consistent state of the log: `with tl.snapshot() as s:`.

        With `check` (the default, as every query), a log whose projections do not reflect
        its head — changed behind the store's back — is refused; `check=False` is for the
        commands that look at such a log (`info`, `verify --against`)."""
        with self._store.reading(check=check) as r:
            snap = Snapshot(r)
            try:
                yield snap
            finally:
                snap._close()  # its connection is gone: a later read says so plainly

    # -- questions --------------------------------------------------------------------------
    def query(self, text: str, *, today: dt.date | None = None,
              as_of: str | dt.date | DateExpr | None = None,
              known_on: str | dt.date | DateExpr | None = None,
              explain: bool = False, sql: bool = False, parsed: Query | None = None) -> Result:
        """Run one query of the query language; `as_of`/`known_on` apply where it has none.

        `today` fixes the date that "today" and a missing `as of` mean (default: the real
        today); `explain=True` answers as `explain <query>` does, and `sql=True` has its
        table view list the SQL statements it ran. `parsed` is `parse(text)` when the caller
        has it already (the CLI checks a query before it opens the database).
        """
        with self.snapshot() as s:
            return s.query(text, today=today, as_of=as_of, known_on=known_on,
                           explain=explain, sql=sql, parsed=parsed)

    def tariff(self, product: str, *, origin: str = "cn", on: str | dt.date | None = None,
               known_on: str | dt.date | None = None, shares: dict[str, float] | None = None,
               postal: bool = False, today: dt.date | None = None) -> "Result":
        """What a good from `origin` paid on `on` (default today), as known on `known_on`.

        `product` is an HTS code (`"8517.13.00"`, `"8471"`) or a product group's name
        (`"smartphones"`); `shares` gives content shares (`{"steel": 40}`) for measures
        charged on a material's content; `postal=True` asks about a postal shipment. The
        query is built from these values, never from text: `.total`, `.layers`, `.data`.
        """
        return self._ask(TariffQuery(product_node(product), _code(origin, "origin"),
                                     date_option(on), date_option(known_on), _AT,
                                     shares=_share_pairs(shares), postal=bool(postal)), today)

    def tariff_history(self, product: str, *, origin: str = "cn",
                       start: str | dt.date | None = None, end: str | dt.date | None = None,
                       known_on: str | dt.date | None = None,
                       shares: dict[str, float] | None = None, postal: bool = False,
                       today: dt.date | None = None) -> "Result":
        """Each change of a good's duty between `start` and `end`, as known on `known_on`
        (`.rows`, `.to_pandas()`)."""
        return self._ask(TariffHistoryQuery(product_node(product), _code(origin, "origin"),
                                            date_option(start), date_option(end),
                                            date_option(known_on), _AT,
                                            shares=_share_pairs(shares), postal=bool(postal)),
                         today)

    def _ask(self, q, today: dt.date | None) -> "Result":
        return self.query(q.render(), today=today, parsed=q)

    def state(self, measure: str, as_of: str | dt.date | None = None,
              known_on: str | dt.date | None = None) -> dict | None:
        """The state of one measure on `as_of` (default today), as known on `known_on`.

        Returns `{"measure", "state", "since", "until", "events"}`, or None when the
        measure has no state on that date; an unknown measure is a QueryError.
        """
        from timeline.log.validation import STREAM_RE

        if not isinstance(measure, str) or not STREAM_RE.fullmatch(measure):
            raise QueryError(f"state() takes one measure id (lowercase dotted parts, no "
                             f"pattern or clause), not {measure!r}; use query() for patterns "
                             f"and conditions")
        # the query is built from the values, never from text: an id cannot carry a clause
        # positions as in the rendered text, `state of <id> …`, for the caret of an error
        q = StateQuery(Target(measure, Pos(1, len("state of ") + 1)), date_option(as_of),
                       date_option(known_on), _AT, conditions=())
        res = self._ask(q, None)
        result = res.data["results"][0]
        return result if result["state"] is not None else None

    def sql(self, statement: str, *, max_rows: int | None = None
            ) -> tuple[list[str], list[tuple]]:
        """Run one read-only SQL statement over the documented views: (columns, rows).

        With `max_rows`, at most that many rows are fetched (ask for one more to know
        whether there were more). For large results use `sql_stream`."""
        with self.sql_stream(statement) as stream:
            rows: list[tuple] = []
            for row in stream:
                if max_rows is not None and len(rows) >= max_rows:
                    break
                rows.append(row)
            return stream.columns, rows

    @contextlib.contextmanager
    def sql_stream(self, statement: str) -> Iterator["RowStream"]:
        """Run one read-only SQL statement and yield its rows as they are fetched.

        `with tl.sql_stream("SELECT …") as rows:` gives `rows.columns` and iterates the row
        tuples (or `rows.batches()`); memory stays bounded whatever the result's size."""
        from timeline.store.readonly_sql import stream_select  # `timeline sql` only

        if self._store.readonly:
            with stream_select(self._store, statement) as stream:
                yield stream
            return
        ro = Store.open(self._store.url, readonly=True)
        ro.timeout = self._store.timeout
        try:
            with stream_select(ro, statement) as stream:
                yield stream
        finally:
            ro.close()

    # -- changes and checks -----------------------------------------------------------------
    def load(self, paths: Iterable[str | Path], *, sources: str | Path | None = None,
             dry_run: bool = False) -> LoadResult:
        """Validate event files (TOML or JSON; folders expand) and append them all or none.

        `sources` is the folder holding the cited documents (its `sources/` and
        `reference/`); `dry_run` writes nothing and reports what would change.
        """
        from timeline.log.loader import load_paths  # not on a query's start-up path

        events = load_paths([Path(p) for p in paths], Path(sources) if sources else None)
        return self._result(self._store.append(events, dry_run=dry_run))

    def append(self, events: Sequence[NewEvent],
               expected_versions: dict[str, int] | None = None) -> LoadResult:
        """Append events built in Python, atomically (optimistic concurrency per stream)."""
        return self._result(self._store.append(list(events), expected_versions))

    def verify(self, *, quick: bool = False) -> Head:
        """Check the chain, triggers, views and projections (only the cheap checks when
        `quick`); IntegrityError naming every finding."""
        return self._store.verify(quick=quick)

    def review(self, through: str | dt.date, note: str, *,
               source: str = REVIEW_SOURCE) -> LoadResult:
        """Record that the sources were checked through `through`: a `reviewed` event that
        moves the knowledge horizon there (docs/query-language.md)."""
        day = through if isinstance(through, dt.date) else _iso(through, "--through")
        if day > dt.date.today():
            raise TimelineError(f"cannot review through {day}: it is after today")
        if not isinstance(note, str) or not note.strip():
            raise TimelineError("a review needs a note saying what was checked")
        ev = NewEvent(REVIEW_STREAM, "reviewed", day,
                      {"title": f"Sources checked through {day}", "note": note.strip()},
                      {"name": source}, known=day)
        return self.append([ev])

    def copy_from(self, source: "Timeline") -> tuple[Head, int]:
        """Copy `source`'s whole log, hash chain intact, into this empty timeline; returns
        the head copied and the number of cross-measure links."""
        return self._store.copy_from(source._store)

    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Recompute every projection from the log; returns the number of measures.

        `progress(done, total)` is called as the fold goes, with events folded so far and
        the log's length (`timeline rebuild` draws its bar with it)."""
        return self._store.rebuild(progress)

    def _result(self, res: AppendResult) -> LoadResult:
        return LoadResult(res.appended, res.skipped, self._store.head(), res.changes,
                          res.dry_run)


def open(db: str | Path | None = None, *, readonly: bool = False, create: bool = False,
         announce: Callable[[str], None] | None = None,
         timeout: float | None = None) -> Timeline:  # noqa: A001
    """Open a timeline: a SQLite file path, a SQLAlchemy URL, or the default database.

    The default database (``$TIMELINE_DB`` or the per-user data directory) is created from
    the bundled seeds on first use; another missing file only with `create=True`.
    `announce` receives a one-line notice when a database is created. `timeout` stops any
    read (query, sql) running longer than that many seconds (default: no limit).
    """
    store = Store.open(None if db is None else str(db), readonly=readonly, create=create,
                       announce=announce)
    store.timeout = timeout
    return Timeline(store)


def init(db: str | Path | None = None, *, seeds: bool = True,
         announce: Callable[[str], None] | None = None) -> Timeline:
    """Create a timeline (schema, then the bundled seeds unless `seeds=False`), or bring an
    existing one's schema up to date; returns it open for reading and writing."""
    return Timeline(Store.open(None if db is None else str(db), create=True, seeds=seeds,
                               upgrade=True, announce=announce))


def event_schema() -> dict:
    """The JSON Schema of the event-file format (editors can check files against it)."""
    from timeline.log.validation import json_schema

    return json_schema()


def event_field_tables() -> str:
    """The field tables of docs/event-format.md, as Markdown (`timeline schema --markdown`)."""
    from timeline.log.validation import field_tables

    return field_tables()


def rate_decimals() -> int:
    """The most decimal places a rate may have in an event (the export's Parquet scale)."""
    from timeline.log.validation import RATE_DECIMALS  # the validator: not a query's import

    return RATE_DECIMALS


def single_statement(sql: str) -> str:
    """The one statement in `sql` (a trailing `;` allowed), else a TimelineError: the first
    guard of `Timeline.sql`, for callers that check before opening a database."""
    from timeline.store.readonly_sql import single_statement as check  # `timeline sql` only

    return check(sql)


def chain_head(events: Iterable[Mapping], what: str = "log") -> Head:
    """Recompute the hash chain of stored events given as dicts (as `Event.as_dict()` and
    an export's events.jsonl hold them), in position order; their head, or IntegrityError
    at the first break."""
    from timeline.log.chain import ChainChecker
    from timeline.log.events import canonical_json

    checker = ChainChecker(what)
    for ev in events:
        # the stored row is hashed: payload and source as canonical JSON text
        checker.check({**ev, "payload": canonical_json(ev.get("payload")),
                       "source": canonical_json(ev.get("source"))})
    return checker.head


def next_terminals(prefix: str) -> set[str] | None:
    """The grammar's terminal names that may follow `prefix` (completion asks the parser
    itself), or None when no query starts with `prefix`."""
    from lark.exceptions import LarkError

    from timeline.query.lark_parser import lark_parser

    try:
        ip = lark_parser().parse_interactive(prefix, start="start")
        ip.exhaust_lexer()
        return set(ip.accepts())
    except LarkError:
        return None


def terminal_words() -> dict[str, str]:
    """The grammar's literal terminals (keywords, punctuation) and their text, lowercased:
    `{"STATE": "state", …}`."""
    from timeline.query.lark_parser import terminal_words as words

    return words()


def _iso(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(text))
    except ValueError:
        raise TimelineError(f"{what} must be a date written YYYY-MM-DD, not {text!r}") from None


def _code(value, what: str) -> str:
    import re

    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_-]*", value):
        raise QueryError(f"{what} must be a jurisdiction code such as 'cn', not {value!r}")
    return value


def _share_pairs(shares) -> tuple:
    if not shares:
        return ()
    if not isinstance(shares, dict):
        raise QueryError(f"shares is a dict of material -> percent, not {shares!r}")
    out = []
    for name, pct in shares.items():
        if (not isinstance(name, str) or not name.isalpha() or isinstance(pct, bool)
                or not isinstance(pct, (int, float)) or not 0 <= pct <= 100):
            raise QueryError(f"a content share is a material name and a percentage from 0 to "
                             f"100, not {name!r}: {pct!r}")
        out.append((name.lower(), pct))
    return tuple(out)

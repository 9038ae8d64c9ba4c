"""The public Python API: open a timeline, ask it questions, load events, verify it.

The command line, the REPL and the export are built on these same calls::

    import timeline
    with timeline.open() as tl:
        a = tl.query("total tariff by us on cn as of 2025-04-10")
        a.total, a.rows
"""
from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from timeline.errors import QueryError, TimelineError
from timeline.log.chain import Head
from timeline.log.events import Event, NewEvent
from timeline.query.execute import run
from timeline.query.parser import parse, parse_date
from timeline.query.planner import Answer, Context
from timeline.query.syntax import (DateExpr, ExplainQuery, Pos, Product, Query, StateQuery,
                                   Target, TariffHistoryQuery, TariffQuery)
from timeline.store.store import AppendResult, StateChange, Store

if TYPE_CHECKING:  # `timeline sql`'s module is loaded only when SQL is run
    from timeline.store.readonly_sql import RowStream

REVIEW_STREAM = "log.review"  # where `reviewed` events go: the log's own record of checks
REVIEW_SOURCE = "timeline review"

__all__ = ["open", "init", "Timeline", "Result", "LoadResult", "StateChange", "Head",
           "event_schema"]


@dataclass(frozen=True)
class Result:
    """The answer to one query.

    `data` is the stable JSON shape the CLI prints with `--format json`; `rows` are the
    answer's table rows as dicts (for a `total`, the components without the TOTAL line);
    `total` is the summed rate of a `total` query and None for every other form.
    """

    query: str
    answer: Answer

    @property
    def kind(self) -> str:
        """The query form: state, history, diff, total, events, measures or explain."""
        return self.answer.kind

    @property
    def data(self) -> dict:
        """The answer in its stable JSON shape (a dict)."""
        return self.answer.data

    @property
    def columns(self) -> list[str]:
        """Column names of `rows`."""
        return list(self.answer.columns)

    @property
    def rows(self) -> list[dict]:
        """The answer's rows, each a dict of `columns` (summary lines left out)."""
        body = self.answer.rows[:len(self.answer.rows) - self.answer.summary_rows]
        return [dict(zip(self.answer.columns, r)) for r in body]

    @property
    def total(self) -> float | int | None:
        """The total rate of a `total` or `tariff` query; None for other forms (and for a
        product whose lines pay different totals, or whose content share is not given)."""
        return self.data.get("total") if self.kind in ("total", "tariff") else None

    @property
    def layers(self) -> list[dict]:
        """A `tariff` answer's layers (of its first HTS line): measure, rate, applies, why…"""
        lines = self.data.get("lines") or []
        return list(lines[0]["layers"]) if lines and self.kind == "tariff" else []

    def to_pandas(self):
        """`rows` as a pandas DataFrame (needs pandas: pip install 'timeline[pandas]')."""
        try:
            import pandas as pd  # optional extra: only this method needs it
        except ImportError:
            raise TimelineError("to_pandas needs pandas, which is not installed: "
                                "pip install 'timeline[pandas]'") from None
        return pd.DataFrame(self.rows, columns=self.columns)

    def __repr__(self) -> str:
        extra = f", total={self.total!r}" if self.kind in ("total", "tariff") else ""
        return f"<Result {self.kind} of {self.query!r}: {len(self.rows)} rows{extra}>"


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
        self.store = store

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Release the database's connections."""
        self.store.close()

    def __enter__(self) -> "Timeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.store.readonly else "read-write"
        return f"<Timeline {self.store.where} ({mode})>"

    @property
    def where(self) -> str:
        """The database file path or URL."""
        return self.store.where

    @property
    def head(self) -> Head:
        """Position and hash of the log's last event."""
        return self.store.head()

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
        q = parsed if parsed is not None else parse(text)
        if explain and not isinstance(q, ExplainQuery):
            q = ExplainQuery(q, q.pos)
        ctx = Context(today=today or dt.date.today(), as_of=_date_expr(as_of),
                      known_on=_date_expr(known_on), sql=sql)
        with self.store.reading() as r:
            return Result(text, run(r, q, text, ctx))

    def tariff(self, product: str, *, origin: str = "cn", on: str | dt.date | None = None,
               known_on: str | dt.date | None = None, shares: dict[str, float] | None = None,
               postal: bool = False, today: dt.date | None = None) -> "Result":
        """What a good from `origin` paid on `on` (default today), as known on `known_on`.

        `product` is an HTS code (`"8517.13.00"`, `"8471"`) or a product group's name
        (`"smartphones"`); `shares` gives content shares (`{"steel": 40}`) for measures
        charged on a material's content; `postal=True` asks about a postal shipment. The
        query is built from these values, never from text: `.total`, `.layers`, `.data`.
        """
        return self._ask(TariffQuery(_product(product), _code(origin, "origin"),
                                     _date_expr(on), _date_expr(known_on), _AT,
                                     shares=_share_pairs(shares), postal=bool(postal)), today)

    def tariff_history(self, product: str, *, origin: str = "cn",
                       start: str | dt.date | None = None, end: str | dt.date | None = None,
                       known_on: str | dt.date | None = None,
                       shares: dict[str, float] | None = None, postal: bool = False,
                       today: dt.date | None = None) -> "Result":
        """Each change of a good's duty between `start` and `end`, as known on `known_on`
        (`.rows`, `.to_pandas()`)."""
        return self._ask(TariffHistoryQuery(_product(product), _code(origin, "origin"),
                                            _date_expr(start), _date_expr(end),
                                            _date_expr(known_on), _AT,
                                            shares=_share_pairs(shares), postal=bool(postal)),
                         today)

    def _ask(self, q, today: dt.date | None) -> "Result":
        text = q.render()
        ctx = Context(today=today or dt.date.today())
        with self.store.reading() as r:
            return Result(text, run(r, q, text, ctx))

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
        q = StateQuery(Target(measure, Pos(1, len("state of ") + 1)), _date_expr(as_of),
                       _date_expr(known_on), _AT, conditions=())
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

        if self.store.readonly:
            with stream_select(self.store, statement) as stream:
                yield stream
            return
        ro = Store.open(self.store.url, readonly=True)
        ro.timeout = self.store.timeout
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
        return self._result(self.store.append(events, dry_run=dry_run))

    def append(self, events: Sequence[NewEvent],
               expected_versions: dict[str, int] | None = None) -> LoadResult:
        """Append events built in Python, atomically (optimistic concurrency per stream)."""
        return self._result(self.store.append(list(events), expected_versions))

    def verify(self, *, quick: bool = False) -> Head:
        """Check the chain, triggers, views and projections (only the cheap checks when
        `quick`); IntegrityError naming every finding."""
        return self.store.verify(quick=quick)

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
        return self.store.copy_from(source.store)

    def rebuild(self) -> int:
        """Recompute every projection from the log; returns the number of measures."""
        return self.store.rebuild()

    def _result(self, res: AppendResult) -> LoadResult:
        return LoadResult(res.appended, res.skipped, self.store.head(), res.changes,
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


def _iso(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(text))
    except ValueError:
        raise TimelineError(f"{what} must be a date written YYYY-MM-DD, not {text!r}") from None


def _date_expr(value):
    """A date option (ISO text, any query-language date, or a date) as a DateExpr."""
    if value is None or isinstance(value, DateExpr):
        return value
    if isinstance(value, dt.date):
        value = value.isoformat()
    return parse_date(str(value))



_AT = Pos(1, 1)


def _product(value) -> Product:
    """An HTS code or a group name as the query's product node (checked, never spliced)."""
    from timeline.projections.scopes import hts_digits

    if not isinstance(value, str) or not value.strip():
        raise QueryError(f"a product is an HTS code or a group name, not {value!r}")
    text = value.strip()
    if text[0].isdigit():
        if hts_digits(text) is None:
            raise QueryError(f"{text!r} is not an HTS code: give 2, 4, 6, 8 or 10 digits, "
                             f"dotted as 8517.13.00 or 8507.60.0010")
        return Product("hts", text, _AT)
    return Product("group", text.lower(), _AT)


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

"""A read snapshot: several reads of one consistent state of the log (`Timeline.snapshot`).

    with tl.snapshot() as s:
        a = s.query("total tariff by us on cn as of 2025-04-10")
        b = s.query("state of us.tariff.* as of 2025-04-10")  # the same log as `a`
        s.head(), s.horizon()

A Snapshot wraps one read transaction of the store (`Store.reading`): whatever another
process appends meanwhile, every method answers from the log as it was when the block
began, and the `--timeout` of `timeline.open` bounds the whole block. It is the door the
surfaces (report, briefing, charts, export, REPL, serve) read through; `Result`, the answer
to one query, lives here because a snapshot is what runs queries.

Product-level reads (`product_groups` … `tariff_changes`) import the product planner on
first use, so a plain query's start-up never pays for it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from timeline.errors import QueryError, TimelineError
from timeline.log.chain import Head
from timeline.log.events import Event
from timeline.projections.reader import CatalogueEntry, Reader, StateRow
from timeline.query.execute import run
from timeline.query.parser import parse, parse_date
from timeline.query.planner import Answer, Context
from timeline.query.syntax import DateExpr, ExplainQuery, Pos, Product, Query

if TYPE_CHECKING:  # the product planner is loaded by the first product read
    from timeline.query.scene import Scene

END_OF_TIME = "9999-12-31"


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


def date_option(value) -> DateExpr | None:
    """A date option (ISO text, any query-language date, or a date) as a DateExpr."""
    if value is None or isinstance(value, DateExpr):
        return value
    if isinstance(value, dt.date):
        value = value.isoformat()
    return parse_date(str(value))


class Snapshot:
    """Reads of one consistent snapshot of a timeline (use `Timeline.snapshot()`).

    Dates are ISO text (`"2025-04-10"`); `known_on` None means everything in the log.
    Measures are named by id (`"us.tariff.ieepa-reciprocal.cn"`)."""

    def __init__(self, reader: Reader):
        self._reader: Reader | None = reader
        self._scene: Scene | None = None

    @property
    def _r(self) -> Reader:
        if self._reader is None:
            raise TimelineError("this snapshot is closed: read inside "
                                "`with tl.snapshot() as s:`")
        return self._reader

    def _close(self) -> None:
        self._reader = self._scene = None

    # -- queries ----------------------------------------------------------------------------
    def query(self, text: str, *, today: dt.date | None = None,
              as_of: str | dt.date | DateExpr | None = None,
              known_on: str | dt.date | DateExpr | None = None,
              explain: bool = False, sql: bool = False, goods: bool = True,
              parsed: Query | None = None) -> Result:
        """Run one query of the query language (the options of `Timeline.query`).

        `goods=False` leaves out what a `total` says of the product groups paying otherwise
        (`data["other_goods"]`, a product answer per group): for callers that want the sum
        alone. `parsed` is the query already parsed (or built) for `text`."""
        q = parsed if parsed is not None else parse(text)
        if explain and not isinstance(q, ExplainQuery):
            q = ExplainQuery(q, q.pos)
        ctx = Context(today=today or dt.date.today(), as_of=date_option(as_of),
                      known_on=date_option(known_on), goods=goods, sql=sql)
        return Result(text, run(self._r, q, text, ctx))

    # -- the log ----------------------------------------------------------------------------
    def head(self) -> Head:
        """Position and hash of the log's last event."""
        return self._r.head()

    def count(self) -> int:
        """The number of events in the log."""
        return self._r.count()

    def revision(self) -> str | None:
        """The schema revision the database records."""
        return self._r.revision()

    def hash_at(self, position: int) -> str | None:
        """The stored hash of the event at `position`, or None past the log's end."""
        return self._r.hash_at(position)

    def iter_events(self) -> Iterator[Event]:
        """Every event in position order (read in batches: any size of log)."""
        return self._r.iter_events()

    def events_by_id(self, ids: Iterable[str]) -> dict[str, Event]:
        """Stored events by id (ids not in the log are absent from the result)."""
        return self._r.events_by_id(ids)

    def effective_between(self, start: str, end: str, *, known_on: str | None = None,
                          types: Sequence[str] | None = None,
                          exclude_types: Sequence[str] = ()) -> list[Event]:
        """Events effective in [start, end] (known by `known_on`), of `types` and not of
        `exclude_types`; retracted and corrected ones left out."""
        return self._r.effective_between(start, end, known_on=known_on, types=types,
                                         exclude_types=exclude_types)

    def links(self) -> Iterator[tuple[int, str]]:
        """(event position, measure) of every cross-measure link: a measure an event of
        another stream reaches (the measures a ruling affects, those a retraction names)."""
        return ((row["position"], row["stream"]) for row in self._r.link_rows())

    def horizon(self, known_on: str | None = None) -> str | None:
        """The knowledge horizon: `known_on` when given, else the latest date the log
        knows of (an event's `known` date, or a review's); None for an empty log."""
        return known_on or self._r.horizon()

    # -- measures ---------------------------------------------------------------------------
    def catalogue(self) -> list[CatalogueEntry]:
        """Every measure of the catalogue (kind, imposer, target, scope, title …), by id."""
        return self._r.catalogue()

    def measure_ids(self) -> list[str]:
        """Every measure's id, sorted."""
        return self._r.all_streams()

    def tariff_ids(self, imposer: str) -> list[str]:
        """The ids of the tariff measures `imposer` imposes, sorted."""
        return self._r.tariff_streams(imposer)

    def state(self, measure: str, day: str, known_on: str | None = None) -> StateRow | None:
        """The measure's state on `day` as known on `known_on`, or None when it has none."""
        return self._r.state(measure, day, known_on)

    def history(self, measure: str, start: str | None = None, end: str | None = None,
                known_on: str | None = None) -> list[StateRow]:
        """The measure's intervals overlapping [start, end], as known on `known_on`."""
        return self._r.history(measure, start, end, known_on)

    def refundable(self, measure: str, known_on: str | None = None) -> bool:
        """Whether what the measure collected is refundable: its authority ends invalidated,
        as known on `known_on`."""
        return self._r.refundable(measure, known_on)

    def table_columns(self) -> dict[str, list[str]]:
        """The columns of every table and view `timeline sql` can read, by name."""
        return self._r.table_columns()

    # -- products (docs/products.md) --------------------------------------------------------
    def _products(self) -> Scene:
        if self._scene is None:
            from timeline.query.scene import Scene

            self._scene = Scene(self._r)
        return self._scene

    def product_groups(self) -> dict[str, str | None]:
        """Every product group's name (`smartphones`) and title, by name."""
        from timeline.query.scene import GROUP_PREFIX

        scene = self._products()
        return {g.removeprefix(GROUP_PREFIX): scene.titles.get(g) for g in scene.groups}

    def group_hts(self, group: str, day: str = END_OF_TIME,
                  known_on: str | None = None) -> list[str]:
        """The HTS codes a product group lists on `day` (else in its last state), dotted,
        in its own order; a malformed code is left out."""
        from timeline.projections.scopes import hts_digits, hts_render
        from timeline.query.scene import GROUP_PREFIX

        scene = self._products()
        stream = GROUP_PREFIX + group
        st = scene.state(stream, day, known_on) or scene.state(stream, END_OF_TIME,
                                                               known_on) or {}
        digits = (hts_digits(str(p)) for p in st.get("hts") or ())
        return [hts_render(d) for d in digits if d]

    def product_lines(self, product: str | Product, day: str, known_on: str | None = None,
                      text: str = "") -> tuple[list[str], dict[str, Any]]:
        """The HTS lines (dotted) a product — an HTS code or a group's name, or a parsed
        product of `text` — stands for on `day`, and what a `tariff` answer says of it
        (its `data["product"]`: kind, title, hts …); QueryError for an unknown group."""
        from timeline.projections.scopes import hts_render
        from timeline.query.products import _lines

        node = product if isinstance(product, Product) else product_node(product)
        lines, info = _lines(self._products(), node, day, known_on, text or node.render())
        return [hts_render(d) for d in lines], info

    def tariff_line(self, hts: str, origin: str, day: str, known_on: str | None = None, *,
                    shares: dict[str, float] | None = None, postal: bool = False) -> dict:
        """What goods of one HTS line from `origin` paid on `day`, as known on `known_on`:
        one entry of a `tariff` answer's `data["lines"]` (total, complete, layers …)."""
        from timeline.query.products import _line_json, assess

        ev = assess(self._products(), [_digits(hts)], origin, day, known_on, shares or {},
                    postal)[0]
        return _line_json(ev, {})

    def tariff_changes(self, hts: Sequence[str], origin: str, start: str | None = None,
                       end: str | None = None, known_on: str | None = None, *,
                       shares: dict[str, float] | None = None,
                       postal: bool = False) -> list[dict]:
        """Each change of the duty on goods of the HTS lines `hts` from `origin` between
        `start` and `end`: the entries of a `history of tariff on …` answer's
        `data["changes"]` (hts, from, until, total, complete, changed, layers)."""
        from timeline.query.products import tariff_history

        return tariff_history(self._products(), [_digits(h) for h in hts], origin, start, end,
                              known_on, shares or {}, postal)


VALUE_AT = Pos(1, 1)  # where an error points in a query built from values, not text


def product_node(value) -> Product:
    """An HTS code or a group name as the query's product node (checked, never spliced)."""
    if not isinstance(value, str) or not value.strip():
        raise QueryError(f"a product is an HTS code or a group name, not {value!r}")
    text = value.strip()
    if text[0].isdigit():
        _digits(text)
        return Product("hts", text, VALUE_AT)
    return Product("group", text.lower(), VALUE_AT)


def _digits(hts: str) -> str:
    """An HTS code, dotted or not, as the digits the product planner indexes by."""
    from timeline.projections.scopes import hts_digits

    digits = hts_digits(str(hts))
    if digits is None:
        raise QueryError(f"{hts!r} is not an HTS code: give 2, 4, 6, 8 or 10 digits, "
                         f"dotted as 8517.13.00 or 8507.60.0010")
    return digits

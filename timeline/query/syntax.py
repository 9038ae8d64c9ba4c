"""The query language's syntax tree: immutable nodes that render back to canonical text.

Positions (`pos`) are excluded from equality and hashing: two queries that differ only
in layout are the same query, which is what the planner and its caches care about.
`parse(q.render()).render() == q.render()` holds for every node the parser produces.
"""
from __future__ import annotations

import bisect
import datetime as dt
import re
from dataclasses import dataclass, field as _field
from decimal import Decimal
from typing import Any

from timeline.query import dates

# The operator of a bare field in `where` (`where scheduled`): true when the field has a
# value (not null, not empty), false otherwise — never unknown.
PRESENT = "present"

# Must agree with WORD in grammar/timeline.lark: strings matching it render unquoted.
BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.*-]*")


@dataclass(frozen=True, slots=True)
class Pos:
    """A 1-based line and column in the query text."""

    line: int
    column: int


class Positions:
    """Offset → Pos in one query text, counting lines exactly as QueryError.render splits them."""

    def __init__(self, text: str):
        self.starts = [0]
        for line in text.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))

    def at(self, offset: int) -> Pos:
        """The position of a 0-based character offset."""
        index = bisect.bisect_right(self.starts, offset) - 1
        # The end of a text that finishes with a newline still belongs to its last line,
        # the one QueryError.render can show.
        index = min(index, max(len(self.starts) - 2, 0))
        return Pos(index + 1, offset - self.starts[index] + 1)


def quote(text: str) -> str:
    """Render a string as a double-quoted query literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_value(value: str | int | float | dt.date) -> str:
    """Render a condition value so that it parses back to the same type and value."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text or "E" in text:  # the grammar has no exponent syntax
            text = format(Decimal(text), "f")
        return text if "." in text else text + ".0"
    if isinstance(value, dt.date):
        return value.isoformat()
    return value if BARE_WORD.fullmatch(value) else quote(value)


@dataclass(frozen=True, slots=True)
class DateExpr:
    """A date as written: an ISO date, a quoted free-text date or `today`, plus offsets."""

    kind: str  # 'iso' | 'text' | 'today' | 'yesterday' | 'last' (text: week, month, year)
    text: str
    offsets: tuple[tuple[int, str], ...]
    pos: Pos = _field(compare=False)

    def resolve(self, today: dt.date) -> dt.date:
        """The calendar date this expression denotes, given today's date."""
        return dates.resolve(self.kind, self.text, self.offsets, today,
                             line=self.pos.line, column=self.pos.column)

    def render(self) -> str:
        """Canonical text of the date expression."""
        base = {"iso": self.text, "text": quote(self.text), "today": "today",
                "yesterday": "yesterday", "last": f"last {self.text}"}[self.kind]
        parts = [base]
        for amount, unit in self.offsets:
            word = unit[:-1] if abs(amount) == 1 else unit
            parts.append(f"{'-' if amount < 0 else '+'} {abs(amount)} {word}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Target:
    """A measure id or a glob over measure ids (`*` matches any run of characters)."""

    pattern: str
    pos: Pos = _field(compare=False)

    @property
    def is_glob(self) -> bool:
        """True when the pattern contains a `*` wildcard."""
        return "*" in self.pattern

    def render(self) -> str:
        """Canonical text of the target."""
        return self.pattern


@dataclass(frozen=True, slots=True)
class Condition:
    """A filter `<field> <op> <value>`."""

    field: str
    op: str
    value: str | int | float | dt.date
    pos: Pos = _field(compare=False)
    value_pos: Pos | None = _field(default=None, compare=False)  # where the value starts

    def render(self) -> str:
        """Canonical text of the condition."""
        if self.op == PRESENT:
            return self.field
        return f"{self.field} {self.op} {render_value(self.value)}"


@dataclass(frozen=True, slots=True)
class BoolExpr:
    """`a or b`, `a and b` (inside an `or` or a `not`) and `not a` over conditions."""

    op: str  # 'and' | 'or' | 'not'
    items: tuple  # of Condition | BoolExpr
    pos: Pos = _field(compare=False)

    def render(self) -> str:
        """Canonical text: parentheses only where precedence needs them."""
        if self.op == "not":
            return "not " + _atom(self.items[0], "not")
        return f" {self.op} ".join(_atom(i, self.op) for i in self.items)


_BINDS = {"or": 0, "and": 1, "not": 2}


def _atom(node, parent: str) -> str:
    """`node` rendered inside `parent`, in parentheses when it binds less tightly."""
    if isinstance(node, BoolExpr) and _BINDS[node.op] <= _BINDS[parent] and not (
            node.op == "not" and parent == "not"):
        return f"({node.render()})"
    return node.render()


def leaves(conditions) -> list[Condition]:
    """Every Condition of a `where` (a tuple of conditions and BoolExprs), in order."""
    out: list[Condition] = []
    for c in conditions:
        out += leaves(c.items) if isinstance(c, BoolExpr) else [c]
    return out


@dataclass(frozen=True, slots=True)
class OrderBy:
    """`order by <field> [asc|desc]`."""

    field: str
    descending: bool
    pos: Pos = _field(compare=False)

    def render(self) -> str:
        """Canonical text (ascending is the default, so it is not written)."""
        return self.field + (" desc" if self.descending else "")


def _tail(order: "OrderBy | None", limit: int | None) -> str:
    return _clause("order by", order) + (f" limit {limit}" if limit is not None else "")


def _clause(keyword: str, node) -> str:
    return f" {keyword} {node.render()}" if node is not None else ""


def _where(conditions: tuple[Condition, ...]) -> str:
    if not conditions:
        return ""
    if len(conditions) == 1:
        return " where " + conditions[0].render()
    return " where " + " and ".join(_atom(c, "and") for c in conditions)


@dataclass(frozen=True, slots=True)
class StateQuery:
    """`state of <target> [as of <date>] [known on <date>]`."""

    target: Target
    as_of: DateExpr | None
    known_on: DateExpr | None
    pos: Pos = _field(compare=False)
    conditions: tuple = ()  # `where`: conditions and-ed, any of them a BoolExpr

    def render(self) -> str:
        """Canonical query text."""
        return (f"state of {self.target.render()}"
                + _clause("as of", self.as_of) + _clause("known on", self.known_on)
                + _where(self.conditions))


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """`history of <target> [from <date>] [to <date>] [known on <date>]`."""

    target: Target
    start: DateExpr | None
    end: DateExpr | None
    known_on: DateExpr | None
    pos: Pos = _field(compare=False)
    conditions: tuple = ()
    order: OrderBy | None = None
    limit: int | None = None

    def render(self) -> str:
        """Canonical query text."""
        return (f"history of {self.target.render()}" + _clause("from", self.start)
                + _clause("to", self.end) + _clause("known on", self.known_on)
                + _where(self.conditions) + _tail(self.order, self.limit))


@dataclass(frozen=True, slots=True)
class EventsQuery:
    """`events [for <target>] [from <date>] [to <date>] [where …] [limit <n>]`."""

    target: Target | None
    start: DateExpr | None
    end: DateExpr | None
    conditions: tuple[Condition, ...]
    limit: int | None
    pos: Pos = _field(compare=False)
    order: OrderBy | None = None

    def render(self) -> str:
        """Canonical query text."""
        return ("events" + _clause("for", self.target) + _clause("from", self.start)
                + _clause("to", self.end) + _where(self.conditions)
                + _tail(self.order, self.limit))


@dataclass(frozen=True, slots=True)
class DiffQuery:
    """`diff <target> between <date> and <date> [known on <date>] [where …] [fields …]`."""

    target: Target
    first: DateExpr
    second: DateExpr
    known_on: DateExpr | None
    pos: Pos = _field(compare=False)
    conditions: tuple = ()
    fields: tuple[str, ...] = ()  # `fields a, b`: compare only these
    fields_pos: tuple = _field(default=(), compare=False)  # where each is written

    def render(self) -> str:
        """Canonical query text."""
        return (f"diff {self.target.render()} between {self.first.render()} "
                f"and {self.second.render()}" + _clause("known on", self.known_on)
                + _where(self.conditions)
                + (" fields " + ", ".join(self.fields) if self.fields else ""))


@dataclass(frozen=True, slots=True)
class TotalQuery:
    """`total tariff by <jurisdiction> on <jurisdiction> [as of <date>] [known on <date>]`."""

    imposer: str
    target: str
    as_of: DateExpr | None
    known_on: DateExpr | None
    pos: Pos = _field(compare=False)
    # where each code is written, so an unknown one is reported at its position
    imposer_pos: Pos | None = _field(default=None, compare=False)
    target_pos: Pos | None = _field(default=None, compare=False)
    conditions: tuple = ()

    def render(self) -> str:
        """Canonical query text."""
        return (f"total tariff by {self.imposer} on {self.target}"
                + _clause("as of", self.as_of) + _clause("known on", self.known_on)
                + _where(self.conditions))


@dataclass(frozen=True, slots=True)
class MeasuresQuery:
    """`measures [as of D] [known on K] [where …] [order by F [asc|desc]] [limit n]`."""

    conditions: tuple[Condition, ...]
    pos: Pos = _field(compare=False)
    as_of: DateExpr | None = None
    known_on: DateExpr | None = None
    order: OrderBy | None = None
    limit: int | None = None

    def render(self) -> str:
        """Canonical query text."""
        return ("measures" + _clause("as of", self.as_of) + _clause("known on", self.known_on)
                + _where(self.conditions) + _tail(self.order, self.limit))


@dataclass(frozen=True, slots=True)
class FirstQuery:
    """`first date where <target> <condition> [from <date>] [known on <date>]`."""

    target: Target
    conditions: tuple
    start: DateExpr | None
    known_on: DateExpr | None
    pos: Pos = _field(compare=False)

    def render(self) -> str:
        """Canonical query text."""
        return (f"first date where {self.target.render()}"
                + _where(self.conditions).removeprefix(" where")
                + _clause("from", self.start) + _clause("known on", self.known_on))


@dataclass(frozen=True, slots=True)
class TotalFirstQuery:
    """`first date where total tariff by A on B <op> N [from D] [known on K]`."""

    imposer: str
    target: str
    op: str
    value: Any
    start: DateExpr | None
    known_on: DateExpr | None
    pos: Pos = _field(compare=False)
    imposer_pos: Pos | None = _field(default=None, compare=False)
    target_pos: Pos | None = _field(default=None, compare=False)
    value_pos: Pos | None = _field(default=None, compare=False)

    def render(self) -> str:
        """Canonical query text."""
        return (f"first date where total tariff by {self.imposer} on {self.target} "
                f"{self.op} {render_value(self.value)}" + _clause("from", self.start)
                + _clause("known on", self.known_on))


@dataclass(frozen=True, slots=True)
class LearnedQuery:
    """`learned [for <target>] between <date> and <date> [as of <date>]`: what became known."""

    target: Target | None
    first: DateExpr
    second: DateExpr
    as_of: DateExpr | None
    pos: Pos = _field(compare=False)

    def render(self) -> str:
        """Canonical query text."""
        return ("learned" + _clause("for", self.target) + f" between {self.first.render()} "
                f"and {self.second.render()}" + _clause("as of", self.as_of))


@dataclass(frozen=True, slots=True)
class Product:
    """A good asked about: an HTS code (`hts 8517.13.00`) or a product group's name."""

    kind: str  # "hts" or "group"
    value: str
    pos: Pos = _field(compare=False)

    def render(self) -> str:
        """Canonical text."""
        if self.kind == "hts":
            return f"hts {self.value}"
        return self.value if BARE_WORD.fullmatch(self.value) else quote(self.value)


def _product_tail(shares: tuple, postal: bool) -> str:
    text = ""
    if shares:
        text += " with " + ", ".join(f"{name} content {render_value(pct)}%"
                                     for name, pct in shares)
    return text + (" by post" if postal else "")


@dataclass(frozen=True, slots=True)
class TariffQuery:
    """`tariff on <product> from <origin> [as of D] [known on K] [with … content N%] [by post]`."""

    product: Product
    origin: str
    as_of: DateExpr | None
    known_on: DateExpr | None
    pos: Pos = _field(compare=False)
    origin_pos: Pos | None = _field(default=None, compare=False)
    shares: tuple = ()  # (material, percent) pairs
    postal: bool = False

    def render(self) -> str:
        """Canonical query text."""
        return (f"tariff on {self.product.render()} from {self.origin}"
                + _clause("as of", self.as_of) + _clause("known on", self.known_on)
                + _product_tail(self.shares, self.postal))


@dataclass(frozen=True, slots=True)
class TariffHistoryQuery:
    """`history of tariff on <product> from <origin> [from D] [to D] [known on K] …`."""

    product: Product
    origin: str
    start: DateExpr | None
    end: DateExpr | None
    known_on: DateExpr | None
    pos: Pos = _field(compare=False)
    origin_pos: Pos | None = _field(default=None, compare=False)
    shares: tuple = ()
    postal: bool = False

    def render(self) -> str:
        """Canonical query text."""
        return (f"history of tariff on {self.product.render()} from {self.origin}"
                + _clause("from", self.start) + _clause("to", self.end)
                + _clause("known on", self.known_on) + _product_tail(self.shares, self.postal))


@dataclass(frozen=True, slots=True)
class TariffFirstQuery:
    """`first date where tariff on <product> from <origin> <op> N [from D] [known on K] …`."""

    product: Product
    origin: str
    op: str
    value: Any
    start: DateExpr | None
    known_on: DateExpr | None
    pos: Pos = _field(compare=False)
    origin_pos: Pos | None = _field(default=None, compare=False)
    value_pos: Pos | None = _field(default=None, compare=False)
    shares: tuple = ()
    postal: bool = False

    def render(self) -> str:
        """Canonical query text."""
        return (f"first date where tariff on {self.product.render()} from {self.origin} "
                f"{self.op} {render_value(self.value)}" + _clause("from", self.start)
                + _clause("known on", self.known_on) + _product_tail(self.shares, self.postal))


@dataclass(frozen=True, slots=True)
class TariffDiffQuery:
    """`diff tariff on <product> from <origin> between D1 and D2 [known on K] …`."""

    product: Product
    origin: str
    first: DateExpr
    second: DateExpr
    known_on: DateExpr | None
    pos: Pos = _field(compare=False)
    origin_pos: Pos | None = _field(default=None, compare=False)
    shares: tuple = ()
    postal: bool = False

    def render(self) -> str:
        """Canonical query text."""
        return (f"diff tariff on {self.product.render()} from {self.origin} between "
                f"{self.first.render()} and {self.second.render()}"
                + _clause("known on", self.known_on) + _product_tail(self.shares, self.postal))


@dataclass(frozen=True, slots=True)
class ProductsQuery:
    """`products [where …] [order by F [asc|desc]] [limit n]`: the product groups."""

    conditions: tuple
    pos: Pos = _field(compare=False)
    order: OrderBy | None = None
    limit: int | None = None

    def render(self) -> str:
        """Canonical query text."""
        return "products" + _where(self.conditions) + _tail(self.order, self.limit)


@dataclass(frozen=True, slots=True)
class ExplainQuery:
    """`explain <query>`: describe the plan instead of running it."""

    query: (StateQuery | HistoryQuery | EventsQuery | DiffQuery | TotalQuery | MeasuresQuery
            | FirstQuery | TotalFirstQuery | LearnedQuery | TariffQuery | TariffHistoryQuery
            | TariffFirstQuery | TariffDiffQuery | ProductsQuery)
    pos: Pos = _field(compare=False)

    def render(self) -> str:
        """Canonical query text."""
        return "explain " + self.query.render()


Query = (StateQuery | HistoryQuery | EventsQuery | DiffQuery | TotalQuery | MeasuresQuery
         | FirstQuery | TotalFirstQuery | LearnedQuery | TariffQuery | TariffHistoryQuery
         | TariffFirstQuery | TariffDiffQuery | ProductsQuery | ExplainQuery)

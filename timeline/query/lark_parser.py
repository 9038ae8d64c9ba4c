"""The full query parser: the shipped Lark grammar, the tree builder and error wording.

Loaded only for queries the quick reading in `timeline.query.parser` leaves to it, so that a
process asking `state of ID as of D` never imports Lark. Every failure, whether Lark's own
or a validation error raised while building the tree, leaves `parse_with_lark` as a
QueryError with a 1-based line and column; `_to_query_error` is the only place a Lark
exception is translated.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Iterator

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.lark import PostLex
from lark.lexer import PatternStr

from timeline.query import dates
from timeline.errors import QueryError
from timeline.query.suggest import suggest
from timeline.query.syntax import (BoolExpr, Condition, DateExpr, DiffQuery, EventsQuery,
                                   ExplainQuery, FirstQuery, HistoryQuery, LearnedQuery,
                                   MeasuresQuery, OrderBy, PRESENT, Pos, Positions, Product,
                                   ProductsQuery, Query, StateQuery, TariffDiffQuery,
                                   TariffFirstQuery,
                                   TariffHistoryQuery, TariffQuery, Target, TotalFirstQuery,
                                   TotalQuery)
from timeline.projections.scopes import hts_digits
from timeline.resources import grammar_path

# Longer numbers are certainly mistakes; the cap also keeps int() and float() away from
# Python's digit limit and from overflowing to infinity.
MAX_NUMBER_DIGITS = 100

_MEASURE_ID = re.compile(r"[a-z0-9*][a-z0-9*-]*(\.[a-z0-9*][a-z0-9*-]*)*")
_JURISDICTION = re.compile(r"[a-z][a-z0-9-]*")

# Human names for the value-carrying terminals; keywords and punctuation are shown as
# written. JUNK never appears: it is accepted by the lexer, never by the parser.
_TERMINAL_NAMES = {
    "MEASURE_ID": "a measure id",
    "FIELD": "a field name",
    "JURISDICTION": "a jurisdiction code",
    "WORD": "a bare word",
    "ISO_DATE": "a date",
    "NUMBER": "a number",
    "INT": "a whole number",
    "STRING": "a quoted string",
    "$END": "end of query",
}


class _AcceptJunk(PostLex):
    """Passes tokens through; exists to put JUNK into every contextual lexer state."""

    always_accept = ("JUNK",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        """Return the token stream unchanged."""
        return stream


@functools.cache
def lark_parser() -> Lark:
    """The LALR parser of the shipped grammar, built (or loaded from Lark's cache) once."""
    # One parser per process: building the LALR tables is the expensive part, and the
    # resulting object is reusable and holds no per-parse state. Lark also caches the
    # tables on disk (temp dir, keyed by grammar, options and Lark version), which cuts a
    # new process's start-up by ~50 ms; a missing or stale cache file is just rebuilt.
    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr",
                lexer="contextual", propagate_positions=True, maybe_placeholders=True,
                start=["start", "date_only"], postlex=_AcceptJunk(), cache=True)


@functools.cache
def terminal_words() -> dict[str, str]:
    """Terminal name → its literal text, for the keywords and punctuation of the grammar."""
    return {t.name: t.pattern.value.lower() for t in lark_parser().terminals
            if isinstance(t.pattern, PatternStr)}


def _show(value: str, limit: int = 30) -> str:
    return repr(value if len(value) <= limit else value[:limit - 3] + "...")


@v_args(meta=True)
class _Builder(Transformer):
    """Turns Lark's tree into query_ast nodes, validating values as it goes."""

    def __init__(self, text: str):
        super().__init__()
        self._positions = Positions(text)

    def _pos(self, item) -> Pos:
        return self._positions.at(item.start_pos)

    def _error(self, message: str, item, hint: str | None = None) -> QueryError:
        pos = self._pos(item)
        return QueryError(message, line=pos.line, column=pos.column, hint=hint)

    def start(self, meta, children):
        return children[0]

    def date_only(self, meta, children):
        return children[0]

    def explain(self, meta, children):
        return ExplainQuery(children[0], self._pos(meta))

    def state_query(self, meta, children):
        *rest, where = children
        return StateQuery(*rest, pos=self._pos(meta),  # type: ignore[misc]  # rest: leading
                          conditions=where or ())

    def history_query(self, meta, children):
        *rest, where, order, limit = children
        return HistoryQuery(*rest, pos=self._pos(meta),  # type: ignore[misc]  # rest: leading
                            conditions=where or (), order=order, limit=limit)

    def events_query(self, meta, children):
        target, start, end, where, order, limit = children
        return EventsQuery(target, start, end, where or (), limit, self._pos(meta), order)

    def diff_query(self, meta, children):
        *rest, where, fields = children
        names, places = fields or ((), ())
        return DiffQuery(*rest, pos=self._pos(meta),  # type: ignore[misc]  # rest: leading
                         conditions=where or (), fields=names, fields_pos=places)

    def fields(self, meta, children):
        seen = {str(f).lower(): self._pos(f) for f in reversed(children)}
        names = tuple(dict.fromkeys(str(f).lower() for f in children))
        return names, tuple(seen[n] for n in names)

    def total_query(self, meta, children):
        (imposer, imposer_pos), (target, target_pos), as_of, known_on, where = children
        return TotalQuery(imposer, target, as_of, known_on, self._pos(meta), imposer_pos,
                          target_pos, where or ())

    def measures_query(self, meta, children):
        as_of, known_on, where, order, limit = children
        return MeasuresQuery(where or (), self._pos(meta), as_of, known_on, order, limit)

    def first_query(self, meta, children):
        target, node, start, known_on = children
        conds = node.items if isinstance(node, BoolExpr) and node.op == "and" else (node,)
        return FirstQuery(target, conds, start, known_on, self._pos(meta))

    def total_first_query(self, meta, children):
        (imposer, imposer_pos), (target, target_pos), op, (value, value_pos), start, \
            known_on = children
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise QueryError(f"a total is compared with a number (percent), not "
                             f"{_show(str(value))}", line=value_pos.line, column=value_pos.column)
        return TotalFirstQuery(imposer, target, op, value, start, known_on, self._pos(meta),
                               imposer_pos, target_pos, value_pos)

    def learned_query(self, meta, children):
        target, first, second, as_of = children
        return LearnedQuery(target, first, second, as_of, self._pos(meta))

    def tariff_query(self, meta, children):
        product, (origin, origin_pos), as_of, known_on, shares, postal = children
        return TariffQuery(product, origin, as_of, known_on, self._pos(meta), origin_pos,
                           shares or (), bool(postal))

    def tariff_history_query(self, meta, children):
        product, (origin, origin_pos), start, end, known_on, shares, postal = children
        return TariffHistoryQuery(product, origin, start, end, known_on, self._pos(meta),
                                  origin_pos, shares or (), bool(postal))

    def tariff_first_query(self, meta, children):
        product, (origin, origin_pos), op, (value, value_pos), start, known_on, shares, \
            postal = children
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            pos = value_pos
            raise QueryError(f"a tariff is compared with a number (percent), not "
                             f"{_show(str(value))}", line=pos.line, column=pos.column)
        return TariffFirstQuery(product, origin, op, value, start, known_on, self._pos(meta),
                                origin_pos, value_pos, shares or (), bool(postal))

    def tariff_diff_query(self, meta, children):
        product, (origin, origin_pos), first, second, known_on, shares, postal = children
        return TariffDiffQuery(product, origin, first, second, known_on, self._pos(meta),
                               origin_pos, shares or (), bool(postal))

    def products_query(self, meta, children):
        where, order, limit = children
        return ProductsQuery(where or (), self._pos(meta), order, limit)

    def hts_product(self, meta, children):
        token = children[0]
        if hts_digits(str(token)) is None:
            raise self._error(f"{_show(str(token))} is not an HTS code: give 2, 4, 6, 8 or 10 "
                              f"digits, dotted as 8517.13.00 or 8507.60.0010", token)
        return Product("hts", str(token), self._pos(token))

    def named_product(self, meta, children):
        token = children[0]
        name = _unquote(token) if token.type == "STRING" else str(token)
        return Product("group", name.lower(), self._pos(token))

    def shares(self, meta, children):
        return tuple(children)

    def share(self, meta, children):
        material, number = children[0], children[1]
        pct = self._number(number)
        if not 0 <= pct <= 100:
            raise self._error(f"a content share is a percentage from 0 to 100, not {number}",
                              number)
        return (str(material).lower(), pct)

    def by_post(self, meta, children):
        return True

    def order_by(self, meta, children):
        field, direction = children
        return OrderBy(str(field), direction == "desc", self._pos(field))

    def direction(self, meta, children):
        return str(children[0]).lower()

    def as_of(self, meta, children):
        return children[0]

    known_on = from_date = to_date = for_target = as_of

    def where(self, meta, children):
        node = children[0]
        # a plain conjunction stays a tuple of conditions; anything else is one BoolExpr in it
        return node.items if isinstance(node, BoolExpr) and node.op == "and" else (node,)

    def _bool(self, op: str, meta, children) -> BoolExpr:
        items: list = []
        for c in children:  # flatten a and b and c (the grammar nests them)
            items += c.items if isinstance(c, BoolExpr) and c.op == op != "not" else [c]
        return BoolExpr(op, tuple(items), self._pos(meta))

    def or_(self, meta, children):
        return self._bool("or", meta, children)

    def and_(self, meta, children):
        return self._bool("and", meta, children)

    def not_(self, meta, children):
        return self._bool("not", meta, children)

    def limit(self, meta, children):
        token = children[0]
        if not token.isdigit():
            raise self._error(f"limit must be a non-negative integer, not {token}", token)
        return self._number(token)

    def target(self, meta, children):
        token = children[0]
        pattern = str(token)
        if not _MEASURE_ID.fullmatch(pattern):
            fixed = re.sub(r"\.+", ".", pattern.lower().replace("_", "-")).strip(".")
            hint = f"did you mean {_show(fixed, 120)}?" if _MEASURE_ID.fullmatch(fixed) else None
            raise self._error(f"invalid measure id {_show(pattern)}: ids are lowercase letters, "
                              "digits and '-' in dot-separated parts", token, hint)
        return Target(pattern, self._pos(token))

    def first_target(self, meta, children):
        return self.target(meta, children)

    def jurisdiction(self, meta, children):
        token = children[0]
        if not _JURISDICTION.fullmatch(token):
            from timeline.query.suggest import COUNTRY_CODES

            fixed = token.lower().replace("_", "-")
            fixed = COUNTRY_CODES.get(fixed, fixed)
            raise self._error(f"invalid jurisdiction {_show(str(token))}: codes are lowercase",
                              token, f"did you mean {_show(fixed)}?")
        return str(token), self._pos(token)

    def condition(self, meta, children):
        field, op, (value, value_pos) = children
        return Condition(str(field), op, value, self._pos(meta), value_pos)

    def present(self, meta, children):
        return Condition(str(children[0]), PRESENT, True, self._pos(meta))

    def op(self, meta, children):
        return str(children[0]).lower()

    def value(self, meta, children):
        token = children[0]
        return self._value(token), self._pos(token)

    def _value(self, token: Token):
        if token.type == "NUMBER":
            return self._number(token)
        if token.type == "STRING":
            return _unquote(token)
        if token.type == "ISO_DATE":
            pos = self._pos(token)
            return dates.parse_iso(str(token), line=pos.line, column=pos.column)
        return str(token)

    def _number(self, token: Token) -> int | float:
        if len(token) > MAX_NUMBER_DIGITS:
            raise self._error(f"number {_show(str(token))} is too long", token)
        return float(token) if "." in token else int(token)

    def date(self, meta, children):
        base, offsets = children[0], tuple(children[1:])
        pos = self._pos(meta)
        expr = DateExpr(base[0], base[1], offsets, pos)
        if expr.kind not in dates.RELATIVE:
            # Fixed dates do not depend on the day the query runs, so every error they can
            # produce (invalid day, ambiguity, out of range) is reported at parse time.
            expr.resolve(dt.date(2000, 1, 1))
        return expr

    def iso_date(self, meta, children):
        return ("iso", str(children[0]))

    def text_date(self, meta, children):
        return ("text", _unquote(children[0]))

    def today(self, meta, children):
        return ("today", "today")

    def yesterday(self, meta, children):
        return ("yesterday", "yesterday")

    def last(self, meta, children):
        return ("last", children[0])

    def period(self, meta, children):
        return str(children[0]).lower()

    def offset(self, meta, children):
        sign, amount, unit = children
        if len(amount.lstrip("0")) > len(str(dates.MAX_OFFSET)):
            raise self._error(f"date offset {_show(str(amount))} is out of range", amount)
        return (-int(amount) if sign == "-" else int(amount), unit)

    def unit(self, meta, children):
        return dates.normalize_unit(children[0])


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def _expected(exc: UnexpectedInput) -> set[str]:
    interactive = getattr(exc, "interactive_parser", None)
    if interactive is not None:
        # The LALR tables merge look-aheads of similar states; asking the parser which
        # terminals it would really accept here gives the honest list.
        return set(interactive.accepts())
    return set(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())


def _describe(names: set[str]) -> list[str]:
    words = terminal_words()
    if names == {"NUMBER"}:
        return ["a non-negative integer"]
    dated = "TODAY" in names
    if dated:
        names = names - {"YESTERDAY", "LAST"}
    out = []
    for name in names:
        if name == "STRING" and dated:
            out.append("a quoted date")
        elif name in words:
            out.append(words[name])
        elif name in _TERMINAL_NAMES:
            out.append(_TERMINAL_NAMES[name])
        elif name == "SIGN":
            out += ["+", "-"]
    return out


def _to_query_error(exc: UnexpectedInput | VisitError, text: str) -> QueryError:
    """The single translation of a Lark exception into a positioned QueryError."""
    if isinstance(exc, VisitError):
        orig = exc.orig_exc
        if isinstance(orig, QueryError):
            return QueryError(orig.message, query=text, line=orig.line, column=orig.column,
                              expected=orig.expected, hint=orig.hint)
        start = getattr(getattr(exc.obj, "meta", None), "start_pos", 0) or 0
        pos = Positions(text).at(start)
        return QueryError(f"internal error while reading the query: {orig!r}", query=text,
                          line=pos.line, column=pos.column)
    names = _expected(exc)
    expected = _describe(names)
    token = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedToken) and token is not None and token.type != "$END":
        offset, word = token.start_pos, str(token)
        message = f"unexpected {_show(word)}"
    elif isinstance(exc, UnexpectedCharacters):
        # a character error always has its position; \w* always matches
        offset = exc.pos_in_stream
        word = re.match(r"\w*", text[offset:])[0]  # type: ignore[index]
        char = text[offset]  # type: ignore[index]
        message = ("unterminated string" if char in "\"'"
                   else f"unexpected character {_show(char)}")
    else:
        offset, word = len(text.rstrip()), ""
        message = "unexpected end of query"
    pos = Positions(text).at(offset)
    if "TODAY" in names:
        unquoted = _unquoted_date(text, offset)
        if unquoted is not None:
            return QueryError(unquoted[0], query=text, line=pos.line, column=pos.column,
                              hint=unquoted[1])
    named = _country_name(text, offset)
    if named is not None:
        (start, name), code = named
        at = Positions(text).at(start)
        return QueryError(f"unknown jurisdiction {name!r}: jurisdictions are written as codes",
                          query=text, line=at.line, column=at.column,
                          hint=f"did you mean {code!r}?")
    accepted = {terminal_words().get(n) for n in names}
    if "MEASURE_ID" in names and word.lower() in set(terminal_words().values()) - accepted:
        return QueryError(f"missing measure before {word!r}: write a measure id or glob here",
                          query=text, line=pos.line, column=pos.column,
                          hint=_missing_target_hint(text, offset))
    keywords = [w for w in map(terminal_words().get, names) if w and w.isalpha()]
    guess = suggest(word, keywords) if word else None
    hint = f"did you mean {guess!r}?" if guess and guess != word.lower() else None
    return QueryError(message, query=text, line=pos.line, column=pos.column,
                      expected=expected, hint=hint)


_DATE_CLAUSE = re.compile(r"(?:\bas\s+of|\bknown\s+on|\bfrom|\bto|\bbetween|\band)\s*$",
                          re.I)


def _unquoted_date(text: str, offset: int) -> tuple[str, str] | None:
    """(message, hint) when a date is expected at `offset` and the words there read as an
    unquoted free-text date (`as of April 10 2025`): quote it, or write it as ISO."""
    words = text[offset:].split()
    for n in range(min(len(words), 5), 0, -1):
        phrase = " ".join(words[:n]).rstrip(";")
        if not re.search(r"\d", phrase) or not re.search(r"[a-z]", phrase, re.I):
            continue  # a free-text date names its month: digits alone are not one
        try:
            day = dates.parse_text(phrase)
        except QueryError:
            continue
        clause = _DATE_CLAUSE.search(text[:offset])
        lead = (" ".join(clause.group(0).split()) + " ") if clause else ""
        return (f"unquoted date {phrase!r}: a free-text date is written in quotes",
                f'write {lead}"{phrase}" (or {lead}{day.isoformat()})')
    return None


def _country_name(text: str, offset: int):
    """((start, name), code) when the word before `offset` begins a country name of several
    words (`by united states on cn`), which the grammar read as a code and then stumbled."""
    from timeline.query.suggest import COUNTRY_CODES

    prev = re.search(r"([A-Za-z][\w'.-]*)\s+$", text[:offset])
    if prev is None:
        return None
    words = text[offset:].split()
    for n in range(min(len(words), 3), 0, -1):
        name = " ".join([prev.group(1)] + words[:n])
        code = COUNTRY_CODES.get(name.lower())
        if code is not None:
            return (prev.start(1), name), code
    return None


def _missing_target_hint(text: str, offset: int) -> str:
    """What to write where a keyword stands in a measure's place (`learned for between …`)."""
    before = text[:offset].split()
    if before and before[-1].lower() == "for":
        return ("name the measures, e.g. `for us.tariff.*`, or leave out `for` to ask about "
                "every measure")
    return "name a measure id such as us.tariff.ieepa-fentanyl.cn, or a glob such as us.tariff.*"


def parse_with_lark(text: str, start: str) -> Query:
    """Parse `text` from the grammar rule `start` ('start' or 'date_only')."""
    try:
        tree = lark_parser().parse(text, start=start)
        return _Builder(text).transform(tree)
    except (UnexpectedInput, VisitError) as exc:
        raise _to_query_error(exc, text) from None

"""Completion for the REPL: a pure suggestion engine and a thin prompt_toolkit Completer.

`suggest(text_before_cursor, catalogue)` knows nothing about terminals, so it is tested
directly. In query mode it asks the grammar itself (Lark's interactive parser) which
terminals may come next, so completion can never drift from what the parser accepts:
keywords come from the grammar, measure ids, jurisdictions, field names and values come
from the catalogue. prompt_toolkit is imported only by `make_completer`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from timeline import api
from timeline.api import (EVENT_COLUMNS, EVENT_TYPES, KINDS, LEGAL_STATUSES, MEASURE_COLUMNS,
                          STATE_COLUMNS, STATUSES)

# Meta-commands and their argument words; repl.py registers the commands themselves and
# a test keeps the two lists equal.
META_ARGS: dict[str, tuple[str, ...]] = {
    "help": (), "measures": (), "format": ("table", "json", "csv"), "timing": ("on", "off"),
    "known": ("today", "off"), "asof": ("today", "off"), "sql": (), "explain": (),
    "chart": (), "x": ("on", "off", "auto"), "quit": (),
    "q": (),
}
HELP_TOPICS = ("state", "history", "events", "diff", "total", "tariff", "products", "measures",
               "explain", "dates", "where", "sql", "meta")

SQL_KEYWORDS = (
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "GLOB",
    "BETWEEN", "ORDER", "BY", "GROUP", "HAVING", "LIMIT", "OFFSET", "AS", "ON", "JOIN",
    "LEFT", "INNER", "CROSS", "USING", "DISTINCT", "UNION", "ALL", "WITH", "CASE", "WHEN",
    "THEN", "ELSE", "END", "ASC", "DESC", "EXISTS", "CAST", "COUNT", "SUM", "MIN", "MAX",
    "AVG", "TOTAL", "COALESCE", "json_extract", "json_each", "date", "strftime", "PRAGMA",
    "EXPLAIN", "QUERY", "PLAN",
)
_SQL_TABLE_CONTEXT = {"FROM", "JOIN", "INTO", "UPDATE", "TABLE"}

_WORD = re.compile(r"[A-Za-z0-9_.*\-]*$")
_SQL_WORD = re.compile(r"[A-Za-z0-9_.]*$")
_FIELD_OP = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)\s*(=|!=|<=|>=|<|>|contains)\s*$", re.I)
_OPS = ("=", "!=", "<", "<=", ">", ">=", "contains")


@dataclass
class Catalogue:
    """What completion draws on: measure ids, field names, values and the SQL schema."""

    measures: list[str] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict)
    jurisdictions: list[str] = field(default_factory=list)
    event_fields: list[str] = field(default_factory=list)
    measure_fields: list[str] = field(default_factory=list)
    values: dict[str, list[str]] = field(default_factory=dict)
    tables: dict[str, list[str]] = field(default_factory=dict)
    products: list[str] = field(default_factory=list)  # product group names
    hts: list[str] = field(default_factory=list)  # HTS prefixes the log names

    def globs(self) -> list[str]:
        """`prefix.*` patterns for every dotted prefix shared by at least two measures."""
        counts: dict[str, int] = {}
        for m in self.measures:
            parts = m.split(".")
            for i in range(1, len(parts)):
                p = ".".join(parts[:i])
                counts[p] = counts.get(p, 0) + 1
        return sorted(p + ".*" for p, n in counts.items() if n >= 2)


def partial_word(text_before_cursor: str, mode: str = "query") -> str:
    """The word being typed at the cursor (what a completion replaces)."""
    stmt = _current_statement(text_before_cursor)
    stripped = stmt.lstrip()
    if stripped.startswith("\\"):
        name, sep, rest = stripped[1:].partition(" ")
        if not sep:
            return stripped  # the meta-command name itself, backslash included
        mode = "sql" if name.lower() == "sql" else "query"
        stmt = rest
    return (_SQL_WORD if mode == "sql" else _WORD).search(stmt).group(0)  # type: ignore[union-attr]  # `*$` always matches


def suggest(text_before_cursor: str, catalogue: Catalogue, mode: str = "query") -> list[str]:
    """Completions for the text before the cursor, best first (already filtered by prefix)."""
    text = _current_statement(text_before_cursor)
    stripped = text.lstrip()
    if stripped.startswith("\\"):
        return _suggest_meta(stripped, catalogue, mode)
    if mode == "sql":
        return _suggest_sql(text, catalogue)
    return _suggest_query(text, catalogue)


def _current_statement(text: str) -> str:
    """The text after the last `;` that is outside quotes (earlier statements are done)."""
    quote, start, i = None, 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == ";":
            start = i + 1
        i += 1
    return text[start:]


def _filter(candidates, word: str, substring=()) -> list[str]:
    """Prefix matches in the given order, then `substring` candidates containing the word."""
    low = word.lower()
    seen, first, second = set(), [], []
    for c in candidates:
        if c not in seen and c.lower().startswith(low) and c != word:
            seen.add(c)
            first.append(c)
    # "ieepa" finds us.tariff.ieepa-fentanyl.cn: measure ids are long and their middle
    # part is what people remember
    for c in substring:
        if c not in seen and len(low) >= 2 and low in c.lower():
            seen.add(c)
            second.append(c)
    return first + second


def _query_kind(text: str) -> str:
    words = text.split()
    if words and words[0].lower() == "explain":
        words = words[1:]
    return words[0].lower() if words else ""


def _suggest_query(text: str, cat: Catalogue) -> list[str]:
    word = _WORD.search(text).group(0)  # type: ignore[union-attr]  # `*$` always matches
    prefix = text[:len(text) - len(word)]
    names = api.next_terminals(prefix)
    if names is None:
        return []
    words = api.terminal_words()
    keywords, other, anywhere = [], [], []
    for name in sorted(names):
        w = words.get(name, "")
        if w.isalpha() and name not in ("TODAY", "YESTERDAY", "LAST") and w not in _OPS:
            keywords.append(w)
    if "MEASURE_ID" in names:
        other += cat.globs() + sorted(cat.measures)
        anywhere = sorted(cat.measures)
    if "FIELD" in names:
        # every form but `events` filters measure states
        fields = cat.event_fields if _query_kind(text) == "events" else cat.measure_fields
        other += fields
    if "JURISDICTION" in names:
        other += cat.jurisdictions
    if "PRODUCT_NAME" in names:
        other += cat.products
    if "HTS_CODE" in names:
        other += cat.hts
    if "TODAY" in names:
        other += ["today", "yesterday", "last week", "last month"]
    if {"EQUAL", "CONTAINS"} <= names and not word:
        other += list(_OPS)
    elif "CONTAINS" in names:
        other.append("contains")
    if "WORD" in names or ("STRING" in names and "TODAY" not in names):
        m = _FIELD_OP.search(prefix)
        if m:
            other += cat.values.get(m.group(1).split(".")[-1].lower(), [])
    return _filter(other + _order_keywords(keywords), word, anywhere)


def _order_keywords(words: list[str]) -> list[str]:
    # the grammar's statement order reads better than the alphabet
    order = ("state", "history", "events", "diff", "total", "tariff", "products", "measures",
             "first", "learned", "explain",
             "of", "for", "on", "hts", "from", "to", "between", "and", "as", "known", "where",
             "with", "content", "order", "limit", "fields", "by", "post")
    rank = {w: i for i, w in enumerate(order)}
    return sorted(words, key=lambda w: (rank.get(w, len(order)), w))


def _suggest_meta(text: str, cat: Catalogue, mode: str) -> list[str]:
    name, sep, rest = text[1:].partition(" ")
    if not sep:
        return _filter(["\\" + n for n in META_ARGS if n != "q"], text)
    name = name.lower()
    rest = rest.lstrip()
    if name in ("explain", "chart"):
        return _suggest_query(rest, cat)
    if name == "sql":
        return _suggest_sql(rest, cat)
    word = _WORD.search(rest).group(0)  # type: ignore[union-attr]  # `*$` always matches
    if name == "help":
        return _filter(list(HELP_TOPICS) + [n for n in META_ARGS if n != "q"], word)
    if name == "measures":
        return _filter(cat.globs() + sorted(cat.measures), word, sorted(cat.measures))
    if " " in rest.strip():
        return []
    return _filter(list(META_ARGS.get(name, ())), word)


def _suggest_sql(text: str, cat: Catalogue) -> list[str]:
    word = _SQL_WORD.search(text).group(0)  # type: ignore[union-attr]  # `*$` always matches
    before = text[:len(text) - len(word)]
    prev = re.findall(r"[A-Za-z_]+", before)
    upper = not word or word[:1].isupper()
    keywords = [k if upper or not k.isupper() else k.lower() for k in SQL_KEYWORDS]
    if "." in word:
        table, _, _ = word.rpartition(".")
        return _filter([f"{table}.{c}" for c in cat.tables.get(table, [])], word)
    tables = sorted(cat.tables, key=lambda t: (not t.startswith("v_"), t))
    if prev and prev[-1].upper() in _SQL_TABLE_CONTEXT:
        return _filter(tables, word)
    mentioned = [t for t in cat.tables if re.search(rf"\b{re.escape(t)}\b", text)]
    # before FROM is typed, offer the documented views' columns
    mentioned = mentioned or [t for t in cat.tables if t.startswith("v_")]
    columns = sorted({c for t in mentioned for c in cat.tables[t]})
    if not prev:
        return _filter(["SELECT" if upper else "select", "WITH" if upper else "with",
                        "PRAGMA" if upper else "pragma"], word)
    return _filter(columns + keywords + tables, word)


def load_catalogue(s: api.Snapshot) -> Catalogue:
    """Read measure ids, titles, jurisdictions and the SQL views' columns from the database."""
    rows = s.catalogue()
    juris = sorted({j for m in rows for j in (m.imposer, m.target) if j})
    state_fields = list(STATE_COLUMNS) + ["suspended_points", "authority", "value", "unit",
                                          "period", "scope"]
    event_fields = sorted(set(EVENT_COLUMNS) | set(MEASURE_COLUMNS) | {"source", "quote", "title"}
                          | set(state_fields))
    measure_fields = sorted(set(MEASURE_COLUMNS) | set(STATE_COLUMNS) | set(state_fields)
                            | {"measure", "events", "first_effective", "last_change"})
    tables = s.table_columns()
    values = {"status": list(STATUSES), "legal_status": list(LEGAL_STATUSES),
              "kind": list(KINDS), "type": list(EVENT_TYPES), "imposer": juris, "target": juris}
    products, hts = _product_words(s, rows)
    return Catalogue([m.stream for m in rows], {m.stream: m.title or "" for m in rows}, juris,
                     event_fields, measure_fields, values, tables, products, hts)


def _product_words(s: api.Snapshot, rows) -> tuple[list[str], list[str]]:
    """Product group names and every HTS prefix a group, tariff or exemption names."""
    names: list[str] = []
    codes: set[str] = set()
    for m in rows:
        if m.kind not in ("product", "tariff", "exemption"):
            continue
        if m.kind == "product":
            names.append(m.stream.removeprefix("product."))
        last = s.state(m.stream, "9999-12-31")
        state = last.state if last else {}
        for key in ("hts", "hts_rates", "hts_excluded"):
            value = state.get(key)
            codes.update(str(v) for v in (value if isinstance(value, (list, dict)) else ()))
    return sorted(names), sorted(codes)


def make_completer(get_catalogue, get_mode):
    """A prompt_toolkit Completer over `suggest`; both arguments are zero-argument callables."""
    from prompt_toolkit.completion import Completer, Completion

    class TimelineCompleter(Completer):
        """Yields `suggest`'s words, replacing the word at the cursor."""

        def get_completions(self, document, complete_event):
            """Completions for the document's text before the cursor."""
            before = document.text_before_cursor
            mode, cat = get_mode(), get_catalogue()
            word = partial_word(before, mode)
            for w in suggest(before, cat, mode):
                yield Completion(w, start_position=-len(word),
                                 display_meta=cat.titles.get(w, ""))

    return TimelineCompleter()


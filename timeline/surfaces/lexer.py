"""Syntax highlighting for the REPL: a pure tokenizer plus a thin prompt_toolkit Lexer.

`tokens(line, mode)` splits one line into (style class, text) pairs and is tested without a
terminal. The query language's keywords are read from the shipped grammar file with a
regular expression (no Lark needed), so highlighting follows the grammar as it grows.
"""
from __future__ import annotations

import functools
import re

from timeline.resources import grammar_path

STYLE = {
    "keyword": "bold ansiblue",
    "date": "ansimagenta",
    "string": "ansigreen",
    "number": "ansicyan",
    "measure": "ansiyellow",
    "operator": "bold",
    "meta": "bold ansired",
    "comment": "italic ansibrightblack",
    "name": "",
}

SQL_KEYWORDS = frozenset("""
select from where and or not in is null like glob between order by group having limit offset
as on join left right full outer inner cross natural using distinct union intersect except all
with recursive case when then else end asc desc exists cast collate escape pragma explain query
plan insert into values update set delete create drop alter table view index trigger attach
detach database vacuum reindex analyze begin commit rollback replace
""".split())

_DATE_WORDS = frozenset({"today", "yesterday", "last", "day", "days", "week", "weeks", "month",
                         "months", "year", "years"})

_QUERY_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?)
  | (?P<date>\d+-\d+-\d+)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<word>[A-Za-z_*][A-Za-z0-9_.*-]*)
  | (?P<operator>!=|<=|>=|[=<>+\-;])
  | (?P<other>.)
""", re.X)

_SQL_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>--.*)
  | (?P<string>'(?:[^']|'')*'?)
  | (?P<quoted>"(?:[^"]|"")*"?|\[[^\]]*\]?|`[^`]*`?)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<operator>!=|<>|<=|>=|\|\||[-+*/%=<>(),.;])
  | (?P<other>.)
""", re.X)


@functools.cache
def query_keywords() -> frozenset[str]:
    """Every keyword of the query language, read from grammar/timeline.lark."""
    grammar = grammar_path().read_text(encoding="utf-8")
    return frozenset(w.lower() for w in re.findall(r'"([A-Za-z]+)"i', grammar))


def tokens(line: str, mode: str = "query") -> list[tuple[str, str]]:
    """(style class, text) pairs covering `line` exactly, for the given mode."""
    m = re.match(r"(\s*)(\\\S*)(.*)", line, re.S)
    if m:
        # a meta-command: its name, then its argument in the language it takes
        name = m.group(2)[1:].lower()
        rest_mode = {"sql": "sql", "explain": "query"}.get(name)
        out = [("", m.group(1))] if m.group(1) else []
        out.append(("class:meta", m.group(2)))
        if rest_mode:
            return out + tokens(m.group(3), rest_mode)
        return out + ([("class:name", m.group(3))] if m.group(3) else [])
    if mode == "sql":
        return _sql_tokens(line)
    return _query_tokens(line)


def _query_tokens(line: str) -> list[tuple[str, str]]:
    keywords = query_keywords()
    out = []
    for m in _QUERY_TOKEN.finditer(line):
        kind, text = m.lastgroup, m.group(0)
        if kind == "word":
            low = text.lower()
            if low in _DATE_WORDS:
                kind = "date"
            elif low in keywords:
                kind = "keyword"
            elif "." in text or "*" in text:
                kind = "measure"
            else:
                kind = "name"
        out.append(("" if kind in ("ws", "other") else f"class:{kind}", text))
    return out


def _sql_tokens(line: str) -> list[tuple[str, str]]:
    out = []
    for m in _SQL_TOKEN.finditer(line):
        kind, text = m.lastgroup, m.group(0)
        if kind == "word":
            kind = "keyword" if text.lower() in SQL_KEYWORDS else "name"
        elif kind == "quoted":
            kind = "name"
        out.append(("" if kind in ("ws", "other") else f"class:{kind}", text))
    return out


def make_lexer(get_mode):
    """A prompt_toolkit Lexer using `tokens`; `get_mode()` returns 'query' or 'sql'."""
    from prompt_toolkit.lexers import Lexer

    class TimelineLexer(Lexer):
        """Highlights each line of the buffer with `tokens`."""

        def lex_document(self, document):
            """A function from line number to styled fragments."""
            lines = document.lines
            mode = get_mode()

            def get_line(lineno: int):
                """Styled fragments of one line."""
                return tokens(lines[lineno], mode) if lineno < len(lines) else []

            return get_line

    return TimelineLexer()


def make_style():
    """The prompt_toolkit Style for the classes `tokens` emits."""
    from prompt_toolkit.styles import Style

    return Style.from_dict({**{k: v for k, v in STYLE.items() if v},
                            "prompt": "bold", "continuation": "ansibrightblack"})

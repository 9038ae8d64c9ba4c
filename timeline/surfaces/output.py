"""Formatting answers: a readable table, stable JSON, or RFC 4180 CSV.

A table fits the width it is given (the terminal's): the longest columns are cut with `…`
first; a row that cannot fit even so is shown expanded, one `column | value` line per field
(psql's `\\x`). JSON and CSV are never cut.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import shutil
import textwrap
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # a type only: rendering needs no module of the query layer
    from timeline.api import Answer

FORMATS = ("table", "json", "csv")
MAX_CELL = 80  # without a width to fit (piped output), no cell is longer than this
MIN_CELL = 10  # cut below this, a column stops being readable: expand the rows instead
EXPANDED = ("auto", "on", "off")
KEY_CELL = 40  # the first column is kept whole up to this, if the others can give way
GAP = "  "


def terminal_width(stream=None) -> int | None:
    """The width a table must fit: $COLUMNS, else the terminal's when `stream` is one."""
    env = os.environ.get("COLUMNS", "")
    if env.isascii() and env.isdigit() and int(env) > 0:  # isdigit alone takes '²'
        return int(env)
    try:
        tty = stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return shutil.get_terminal_size().columns if tty else None


def add_expanded_option(p) -> None:
    """The `--expanded` option of the commands that print tables (query, sql)."""
    p.add_argument("-x", "--expanded", action="store_const", const="on", default="auto",
                   help="print each row as a record, one 'column | value' line per field "
                        "(rows too wide for the terminal are printed so anyway)")


def render(answer: Answer, fmt: str = "table", *, pretty: bool = False,
           width: int | None = None, expanded: str = "auto") -> str:
    """The answer in `fmt` (table, json or csv); only CSV ends with its line end (CRLF).

    JSON is one compact line unless `pretty` (the CLI asks for it on a terminal): the C
    encoder only runs without indentation, and one line per answer suits pipelines. A table
    fits `width` when given; `expanded` is auto (only rows that cannot fit), on or off.
    """
    if fmt == "json":
        if pretty:
            return json.dumps(answer.data, indent=2, ensure_ascii=False)
        return json.dumps(answer.data, ensure_ascii=False, separators=(",", ":"))
    if fmt == "csv":
        return to_csv(answer.columns, answer.rows)
    parts = []
    if answer.text:
        parts.append(answer.text)
    results = answer.data.get("results") if answer.kind == "state" else \
        answer.data.get("answer", {}).get("results") if answer.kind == "explain" else None
    as_of = answer.data.get("as_of") or answer.data.get("answer", {}).get("as_of")
    missing = [f"{r['measure']}: no state as of {as_of}"
               for r in results or () if "state" in r and r["state"] is None]
    if missing:
        parts.append("\n".join(missing))
    if answer.rows or not answer.text:
        parts.append(table(answer.columns, answer.rows, width, expanded) if answer.rows
                     else "(no rows)")
    data = answer.data.get("answer", answer.data) if answer.kind == "explain" else answer.data
    if "horizon" in data:
        parts.append(horizon_lines(data))
    return "\n\n".join(parts)


def horizon_lines(data: dict) -> str:
    """The knowledge horizon line of an answer, then one line per warning and per note."""
    h = data["horizon"]["known_through"]
    lines = [f"known through {h} (knowledge horizon)" if h else
             "known through: nothing (the log is empty)"]
    return "\n".join(lines + [f"warning: {w}" for w in data.get("warnings", ())]
                     + [f"note: {n}" for n in data.get("notes", ())])


_BYTES = (bytes, bytearray, memoryview)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, _BYTES):
        return _hex(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return str(v)


def _hex(v) -> str:
    # PostgreSQL's bytea output form, on both backends: not Python's b'…' repr
    return "\\x" + bytes(v).hex()


def _json_cell(v: Any) -> Any:
    """A value JSON can hold: infinities and NaN as text (as PostgreSQL's to_json writes
    them; bare they are not JSON), binary as hex."""
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, _BYTES):
        return _hex(v)
    if isinstance(v, list):
        return [_json_cell(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_cell(x) for k, x in v.items()}
    return v


# a control character in a cell would reach the terminal raw (ESC starts a command); a line
# break or a tab would break the table's rows or columns apart
_CONTROL_CELL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _visible(text: str) -> str:
    if not _CONTROL_CELL.search(text):
        return text
    return _CONTROL_CELL.sub(
        lambda m: " " if m.group() in "\r\n\t" else f"\\x{ord(m.group()):02x}", text)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _cells(rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    return [[_visible(_fmt(v)) for v in row] for row in rows]


def grid(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_cell: int = MAX_CELL,
         widths: Sequence[int] | None = None) -> str:
    """A plain-text table with a header rule; cells longer than their column are cut with `…`."""
    cells = _cells(rows)
    if widths is None:
        widths = [min(max_cell, max([len(h)] + [len(r[i]) for r in cells]))
                  for i, h in enumerate(columns)]
    out = [columns, ["-" * w for w in widths], *cells]
    return "\n".join(GAP.join(_cut(v, w).ljust(w) for v, w in zip(vals, widths)).rstrip()
                     for vals in out)


def fitted_widths(columns: Sequence[str], rows: Sequence[Sequence[Any]],
                  width: int) -> list[int] | None:
    """Column widths that fit `width`, the longest columns cut first (the first column last);
    None if none would fit without cutting a column below MIN_CELL (or its header)."""
    cells = _cells(rows)
    natural = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(columns)]
    floor = [min(n, max(len(h), MIN_CELL)) for n, h in zip(natural, columns)]
    budget = width - len(GAP) * (len(columns) - 1)
    if sum(natural) <= budget:
        return natural
    if sum(floor) > budget:
        return None
    # the first column names the row (a measure id): the others give way to it first
    floor[0] = max(floor[0], min(natural[0], KEY_CELL, budget - sum(floor[1:])))
    # the largest cap for which every column at min(natural, max(cap, floor)) still fits
    lo, hi = 0, max(natural)
    while lo < hi:
        cap = (lo + hi + 1) // 2
        if sum(min(n, max(cap, f)) for n, f in zip(natural, floor)) <= budget:
            lo = cap
        else:
            hi = cap - 1
    widths = [min(n, max(lo, f)) for n, f in zip(natural, floor)]
    spare = budget - sum(widths)
    for i in sorted(range(len(widths)), key=lambda i: -natural[i]):
        if spare and widths[i] < natural[i]:  # hand what is left to the longest columns
            widths[i] += 1
            spare -= 1
    return widths


def expanded_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]],
                  width: int | None = None, start: int = 1) -> str:
    """Each row as a record, one `column | value` line per field; long values wrap, uncut.
    Records are numbered from `start`."""
    label = max(len(c) for c in columns)
    room = max((width or 0) - label - 3, 20) if width else None
    out = []
    for n, row in enumerate(_cells(rows), start):
        head = f"-[ RECORD {n} ]"
        out.append(head + "-" * max(0, min(width or 0, label + 3 + 40) - len(head)))
        for c, v in zip(columns, row):
            parts = textwrap.wrap(v, room, break_long_words=True, drop_whitespace=False) \
                if room and len(v) > room else [v]
            out.append(f"{c.ljust(label)} | {parts[0]}".rstrip())
            out += [f"{''.ljust(label)} | {p}".rstrip() for p in parts[1:]]
    return "\n".join(out)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None = None,
          expanded: str = "auto") -> str:
    """Rows as a table fitting `width` (when given), or expanded: always when `expanded` is
    on, and in auto mode when the table cannot fit."""
    if expanded not in EXPANDED:
        raise ValueError(f"expanded must be one of {EXPANDED}, not {expanded!r}")
    if expanded == "on" and rows:
        return expanded_rows(columns, rows, width)
    if width is None:
        return grid(columns, rows)
    widths = fitted_widths(columns, rows, width)
    if widths is None:
        if expanded == "auto" and rows:
            return expanded_rows(columns, rows, width)
        return grid(columns, rows, max_cell=MIN_CELL)  # off: as narrow as it can be
    return grid(columns, rows, widths=widths)


def to_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """RFC 4180 CSV: a header row, every record ending in CRLF."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for row in rows:
        w.writerow(["" if v is None else
                    (_fmt(v) if isinstance(v, (dict, list, float, *_BYTES)) else v)
                    for v in row])
    return buf.getvalue()


def render_rows(columns: list[str], rows: list[tuple], fmt: str = "table", *,
                pretty: bool = False, width: int | None = None, expanded: str = "auto") -> str:
    """Rows as a table, JSON (a list of objects) or RFC 4180 CSV, as `output.render` does."""
    if fmt == "json":
        # like output.render: one compact line for pipelines, indented for a person
        return json.dumps([dict(zip(columns, map(_json_cell, r))) for r in rows],
                          ensure_ascii=False,
                          default=str, **({"indent": 2} if pretty else
                                          {"separators": (",", ":")}))
    if fmt == "csv":
        return to_csv(columns, rows)
    columns = [_visible(c) for c in columns]
    if not columns:
        return "(statement returned no columns)"
    if not rows:
        return table(columns, [], width, expanded) + "\n(no rows)"
    return table(columns, rows, width, expanded) + \
        f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})"


# rows a streamed table is laid out from: later rows keep these column widths
TABLE_LAYOUT_ROWS = 10_000


def write_rows(out, columns: list[str], batches, fmt: str = "table", *,
               pretty: bool = False, width: int | None = None, expanded: str = "auto") -> int:
    """Write rows arriving in batches as `render_rows` would, holding one batch at a time
    (a table holds its first TABLE_LAYOUT_ROWS rows to size its columns); the row count."""
    if fmt == "csv":
        return _write_csv(out, columns, batches)
    if fmt == "json":
        return _write_json(out, columns, batches, pretty)
    columns = [_visible(c) for c in columns]
    head: list[tuple] = []
    it = iter(batches)
    for batch in it:
        head.extend(batch)
        if len(head) >= TABLE_LAYOUT_ROWS:
            break
    else:
        out.write(render_rows(columns, head, fmt, width=width, expanded=expanded) + "\n")
        return len(head)
    # too many rows to hold: the first rows size the columns, later cells are cut to fit
    widths = None if expanded == "on" else (
        fitted_widths(columns, head, width) if width else
        [min(MAX_CELL, max([len(h)] + [len(r[i]) for r in _cells(head)]))
         for i, h in enumerate(columns)])
    count = 0
    if widths is None:  # expanded: records numbered on across batches
        for batch in itertools.chain([head], it):
            if batch:
                out.write(expanded_rows(columns, batch, width, start=count + 1) + "\n")
            count += len(batch)
    else:
        out.write(grid(columns, [], widths=widths) + "\n")
        for batch in itertools.chain([head], it):
            if batch:
                out.write(_grid_rows(batch, widths) + "\n")
            count += len(batch)
    out.write(f"({count} rows)\n")
    return count


def _grid_rows(rows: Sequence[Sequence[Any]], widths: Sequence[int]) -> str:
    return "\n".join(GAP.join(_cut(v, w).ljust(w) for v, w in zip(vals, widths)).rstrip()
                     for vals in _cells(rows))


def _write_csv(out, columns, batches) -> int:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    count = 0
    for batch in batches:
        for row in batch:
            w.writerow(["" if v is None else (_fmt(v) if isinstance(v, (dict, list, float, *_BYTES))
                                              else v) for v in row])
        count += len(batch)
        out.write(buf.getvalue())
        buf.seek(0)
        buf.truncate()
    out.write(buf.getvalue())
    return count


def _write_json(out, columns, batches, pretty: bool) -> int:
    # byte for byte what json.dumps of the whole list gives, one object at a time
    count = 0
    for batch in batches:
        for row in batch:
            obj = dict(zip(columns, map(_json_cell, row)))
            if pretty:
                text = json.dumps(obj, ensure_ascii=False, default=str, indent=2)
                out.write(("[\n" if count == 0 else ",\n") + "  " + text.replace("\n", "\n  "))
            else:
                text = json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":"))
                out.write(("[" if count == 0 else ",") + text)
            count += 1
    out.write("[]\n" if count == 0 else ("\n]\n" if pretty else "]\n"))
    return count

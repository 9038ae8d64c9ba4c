"""Formatting answers: a readable table, stable JSON, or RFC 4180 CSV."""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

from timeline.query.planner import Answer

FORMATS = ("table", "json", "csv")
MAX_CELL = 80


def render(answer: Answer, fmt: str = "table", *, pretty: bool = False) -> str:
    """The answer in `fmt` (table, json or csv); only CSV ends with its line end (CRLF).

    JSON is one compact line unless `pretty` (the CLI asks for it on a terminal): the C
    encoder only runs without indentation, and one line per answer suits pipelines.
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
        parts.append(grid(answer.columns, answer.rows) if answer.rows else "(no rows)")
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


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return str(v)


def grid(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_cell: int = MAX_CELL) -> str:
    """A plain-text table with a header rule; long cells are cut with an ellipsis."""
    cells = [[_fmt(v) for v in row] for row in rows]
    cells = [[c if len(c) <= max_cell else c[:max_cell - 1] + "…" for c in row] for row in cells]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def to_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """RFC 4180 CSV: a header row, every record ending in CRLF."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for row in rows:
        w.writerow(["" if v is None else (_fmt(v) if isinstance(v, (dict, list, float)) else v)
                    for v in row])
    return buf.getvalue()


def render_rows(columns: list[str], rows: list[tuple], fmt: str = "table", *,
                pretty: bool = False) -> str:
    """Rows as a table, JSON (a list of objects) or RFC 4180 CSV, as `output.render` does."""
    if fmt == "json":
        # like output.render: one compact line for pipelines, indented for a person
        return json.dumps([dict(zip(columns, r)) for r in rows], ensure_ascii=False,
                          default=str, **({"indent": 2} if pretty else
                                          {"separators": (",", ":")}))
    if fmt == "csv":
        return to_csv(columns, rows)
    if not columns:
        return "(statement returned no columns)"
    if not rows:
        return grid(columns, []) + "\n(no rows)"
    return grid(columns, rows) + f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})"

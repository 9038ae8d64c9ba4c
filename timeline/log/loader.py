"""Event files (TOML or JSON) to validated NewEvents, with citations checked against sources."""
from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from timeline.errors import EventValidationError
from timeline.log.events import NewEvent, content_id, validate

ENVELOPE = ("stream", "type", "effective", "announced", "known", "id", "source")
PAYLOAD = ("title", "set", "unset", "schedule", "affects", "affects_set", "supersedes",
           "disputed", "note", "precision")
_QUOTEISH = re.compile(r"[\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u2032\u2033'\"`"
                       r"\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u0e42-]+")
_SPACE = re.compile(r"\s+")


def fold_text(s: str) -> str:
    """Fold whitespace, typographic quotes and dashes (and the U+0E42 damage) for matching."""
    s = s.replace("\u2026", "...").replace("\u00a0", " ")
    s = _QUOTEISH.sub("'", s)
    return _SPACE.sub(" ", s).strip()


def expand(paths: list[Path]) -> list[Path]:
    """Files named, with directories expanded to their *.toml/*.json files, sorted."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out += sorted(x for x in p.iterdir() if x.suffix in (".toml", ".json"))
        else:
            out.append(p)
    return out


def load_paths(paths: list[Path]) -> list[NewEvent]:
    """Parse and validate every file; raise on the first problem, before anything is written."""
    events: list[NewEvent] = []
    for path in expand(paths):
        events += load_file(path)
    return events


def load_file(path: Path) -> list[NewEvent]:
    """NewEvents from one TOML or JSON event file."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise EventValidationError(f"cannot read: {exc.strerror}", file=name) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventValidationError(f"not UTF-8 (byte {exc.start})", file=name) from exc
    try:
        doc = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EventValidationError(f"TOML syntax error: {exc}", file=name) from exc
    except json.JSONDecodeError as exc:
        raise EventValidationError(f"JSON syntax error: {exc.msg}", file=name,
                                   line=exc.lineno) from exc
    if not isinstance(doc, dict) or set(doc) - {"events"}:
        raise EventValidationError("expected only an `events` array of tables", file=name,
                                   field=next(iter(set(doc) - {"events"}), "events")
                                   if isinstance(doc, dict) else "events")
    items = doc.get("events")
    if not isinstance(items, list) or not items:
        raise EventValidationError("no events: expected one or more [[events]] tables",
                                   file=name, field="events")
    lines = _event_lines(text, path.suffix == ".json")
    out = []
    for n, item in enumerate(items):
        origin = f"{name}:{lines[n]}" if n < len(lines) else name
        ev = _to_event(item, origin, n + 1)
        validate(ev)
        _check_citation(ev, path)
        out.append(ev if ev.id else ev.with_id(content_id(ev)))
    return out


def _event_lines(text: str, is_json: bool) -> list[int]:
    pat = re.compile(r'^\s*\{' if is_json else r"^\s*\[\[\s*events\s*\]\]")
    return [i + 1 for i, line in enumerate(text.splitlines()) if pat.match(line)]


def _err(origin: str, n: int, field: str, message: str, stream: Any = None) -> None:
    file, _, line = origin.rpartition(":")
    raise EventValidationError(message, file=file or origin, line=int(line) if line.isdigit()
                               else None, event=f"#{n}" + (f" ({stream})" if stream else ""),
                               field=field)


def _date(value: Any, origin: str, n: int, field: str, stream: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        _err(origin, n, field, f"must be a date without a time, got {value}", stream)
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    _err(origin, n, field, f"unparseable date {value!r}; use YYYY-MM-DD", stream)
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _to_event(item: Any, origin: str, n: int) -> NewEvent:
    if not isinstance(item, dict):
        _err(origin, n, "events", "each event must be a table")
    stream = item.get("stream")
    unknown = set(item) - set(ENVELOPE) - set(PAYLOAD)
    if unknown:
        _err(origin, n, sorted(unknown)[0], "unknown key", stream)
    for req in ("stream", "type", "effective", "known", "title", "source"):
        if req not in item:
            _err(origin, n, req, "missing required field", stream)
    for key in ("stream", "type"):
        if not isinstance(item[key], str):
            _err(origin, n, key, "must be a string", stream)
    if not isinstance(item["source"], dict):
        _err(origin, n, "source", "must be a table", stream)
    if "schedule" in item and isinstance(item["schedule"], list):
        for i, s in enumerate(item["schedule"]):
            if isinstance(s, dict) and "on" in s:
                _date(s["on"], origin, n, f"schedule[{i}].on", stream)
    if "published" in item["source"]:
        _date(item["source"]["published"], origin, n, "source.published", stream)
    payload = {k: _jsonable(item[k]) for k in PAYLOAD if k in item}
    return NewEvent(
        stream=item["stream"], type=item["type"],
        effective=_date(item["effective"], origin, n, "effective", stream),
        known=_date(item["known"], origin, n, "known", stream),
        announced=_date(item.get("announced"), origin, n, "announced", stream),
        payload=payload, source=_jsonable(item["source"]), id=item.get("id"), origin=origin,
    )


_TEXT_CACHE: dict[Path, str] = {}


def _folded(path: Path) -> str | None:
    if path not in _TEXT_CACHE:
        try:
            _TEXT_CACHE[path] = fold_text(path.read_text(encoding="utf-8"))
        except OSError:
            return None
    return _TEXT_CACHE[path]


def _check_citation(ev: NewEvent, path: Path) -> None:
    """A quoted file must contain the quote; a facts-table reference must name a source in it."""
    src, base = ev.source, path.resolve().parent
    label = f"{ev.stream} {ev.type} {ev.effective}"
    file, line = ev.origin.rpartition(":")[0] if ev.origin else str(path), None
    if ev.origin and ev.origin.rpartition(":")[2].isdigit():
        line = int(ev.origin.rpartition(":")[2])
    if src.get("file"):
        text = _folded(base / src["file"])
        if text is None:
            raise EventValidationError(f"cited file {src['file']!r} not found next to {path.name}",
                                       file=file, line=line, event=label, field="source.file")
        if fold_text(str(src.get("quote", ""))) not in text:
            raise EventValidationError(f"quote does not appear verbatim in {src['file']}",
                                       file=file, line=line, event=label, field="source.quote")
    if src.get("reference"):
        text = _folded(base / "reference" / src["reference"])
        if text is None:
            raise EventValidationError(f"reference {src['reference']!r} not found under "
                                       f"{base / 'reference'}", file=file, line=line,
                                       event=label, field="source.reference")
        for part in str(src["name"]).split(";"):
            if fold_text(part) and fold_text(part) not in text:
                raise EventValidationError(f"source {part.strip()!r} is not named in "
                                           f"{src['reference']}", file=file, line=line,
                                           event=label, field="source.name")

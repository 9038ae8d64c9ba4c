"""Event files (TOML or JSON) to validated NewEvents, with citations checked against sources.

Every event is checked against the declared schema (timeline.log.validation), its citation
against the cited document, and its id against every other event of the same load: the
same id with other content is a conflict naming both places, never a silent skip.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from timeline.errors import EventValidationError
from timeline.log.events import NewEvent, canonical_json, content_id
from timeline.log.validation import (PAYLOAD_KEYS, STREAM_RE, UNSET, Event, Invalid,
                                     check_rules, convert)
from timeline.resources import seeds_path

_QUOTEISH = re.compile(r"[\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u2032\u2033'\"`"
                       r"\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u0e42-]+")
_SPACE = re.compile(r"\s+")
MAX_FILE_BYTES = 64 * 1024 * 1024


def fold_text(s: str) -> str:
    """Fold whitespace, typographic quotes and dashes (and the U+0E42 damage) for matching."""
    s = s.replace("\u2026", "...").replace("\u00a0", " ")
    s = _QUOTEISH.sub("'", s)
    return _SPACE.sub(" ", s).strip()


def expand(paths: Sequence[Path]) -> list[Path]:
    """Files named, with directories expanded to their *.toml/*.json files, sorted."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out += sorted(x for x in p.iterdir() if x.suffix in (".toml", ".json"))
        else:
            out.append(p)
    return out


def read_regular_file(path: Path, cap: int) -> bytes:
    """The bytes of a regular file of at most `cap` bytes, else EventValidationError.

    A device, FIFO or socket is refused before anything is read (opened without blocking,
    then looked at through its descriptor, so a swap after a check changes nothing), and
    the cap is enforced while reading: /dev/zero, or a file growing meanwhile, says 0 or
    less in its size than it holds."""
    import os

    from timeline.files import kind_of_mode

    def refuse_special(mode: int) -> None:
        what = kind_of_mode(mode)
        if what:
            raise EventValidationError(f"is {what}, not an event file; only regular files "
                                       f"are loaded", file=str(path))

    refuse_special(os.stat(path).st_mode)  # a socket cannot even be opened
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        refuse_special(os.fstat(fd).st_mode)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(cap + 1)
    finally:
        os.close(fd)
    if len(data) > cap:
        size = f"{cap >> 20} MiB" if cap >= 1 << 20 else f"{cap:,} bytes"
        raise EventValidationError(f"larger than {size}", file=str(path))
    return data


def load_paths(paths: Sequence[Path], sources: Path | None = None) -> list[NewEvent]:
    """Parse and validate every file; raise on the first problem, before anything is written.

    `sources` is the folder holding the cited documents (`sources/` and `reference/`);
    without it, a file's own folder is tried first, then the bundled seeds' folder.
    """
    events: list[NewEvent] = []
    seen: dict[str | None, NewEvent] = {}
    for path in expand(paths):
        for ev in load_file(path, sources):
            other = seen.setdefault(ev.id, ev)
            if other is not ev and _identity(other) != _identity(ev):
                raise EventValidationError(
                    f"conflict: id {ev.id} is also used at {other.origin} with other "
                    f"content; give one of them another id (or none)", **_where(ev, "id"))
            events.append(ev)
    return events


def load_file(path: Path, sources: Path | None = None) -> list[NewEvent]:
    """NewEvents from one TOML or JSON event file."""
    name = str(path)
    try:
        if path.is_dir():
            raise EventValidationError("is a directory, not an event file", file=name)
        raw = read_regular_file(path, MAX_FILE_BYTES)
    except OSError as exc:
        raise EventValidationError(f"cannot read: {exc.strerror}", file=name) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventValidationError(f"not UTF-8 (byte {exc.start})", file=name) from exc
    # a byte-order mark is how some editors save UTF-8: not part of the document
    text = text.removeprefix("\ufeff")
    is_json = path.suffix == ".json"
    try:
        # NaN and Infinity parse here and are refused by the schema, with their field
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys) if is_json \
            else tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EventValidationError(f"TOML syntax error: {exc}", file=name) from exc
    except json.JSONDecodeError as exc:
        raise EventValidationError(f"JSON syntax error: {exc.msg}", file=name,
                                   line=exc.lineno) from exc
    except _DuplicateKey as exc:
        raise EventValidationError(f"JSON syntax error: {exc}", file=name) from None
    except (RecursionError, ValueError) as exc:
        raise EventValidationError(f"cannot parse: {exc}"[:200], file=name) from None
    if not isinstance(doc, dict) or set(doc) - {"events"}:
        raise EventValidationError("expected only an `events` array of tables", file=name,
                                   field=next(iter(set(doc) - {"events"}), "events")
                                   if isinstance(doc, dict) else "events")
    items = doc.get("events")
    if not isinstance(items, list) or not items:
        raise EventValidationError("no events: expected one or more [[events]] tables",
                                   file=name, field="events")
    lines = _event_lines(text, is_json)
    roots = _roots(path, sources)
    out: list[NewEvent] = []
    seen: dict[str | None, NewEvent] = {}
    for n, item in enumerate(items, 1):
        origin = f"{name}:{lines[n - 1]}" if n - 1 < len(lines) else name
        ev = _to_event(item, origin, n, native_dates=not is_json)
        _check_citation(ev, roots)
        ev = ev if ev.id else ev.with_id(content_id(ev))
        other = seen.setdefault(ev.id, ev)
        if other is not ev and _identity(other) != _identity(ev):
            raise EventValidationError(
                f"conflict: id {ev.id} is also used at {other.origin} with other content",
                **_where(ev, "id"))
        out.append(ev)
    return out


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refusing a key given twice (TOML refuses it itself): `"rate": 5,
    "rate": 999` must not quietly become 999."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"duplicate key {key!r} in one object")
        out[key] = value
    return out


def _identity(ev: NewEvent) -> tuple:
    return (ev.stream, ev.type, ev.effective, ev.announced, ev.known,
            canonical_json(ev.payload), canonical_json(ev.source))


def _where(ev: NewEvent, field: str) -> dict:
    file, _, line = (ev.origin or "").rpartition(":")
    return {"file": file or ev.origin, "line": int(line) if line.isdigit() else None,
            "event": f"{ev.stream} {ev.type} {ev.effective}", "field": field}


def _event_lines(text: str, is_json: bool) -> list[int]:
    pat = re.compile(r'^\s*\{' if is_json else r"^\s*\[\[\s*events\s*\]\]")
    return [i + 1 for i, line in enumerate(text.splitlines()) if pat.match(line)]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _to_event(item: Any, origin: str, n: int, native_dates: bool) -> NewEvent:
    """Check one `[[events]]` table against the schema and build its NewEvent."""
    file, _, line_s = origin.rpartition(":")
    stream = item.get("stream") if isinstance(item, dict) else None
    label = f"#{n}" + (f" ({stream})" if isinstance(stream, str) and len(stream) < 200
                       and STREAM_RE.fullmatch(stream) else "")

    def fail(inv: Invalid):
        raise EventValidationError(inv.describe(), file=file or origin,
                                   line=int(line_s) if line_s.isdigit() else None,
                                   event=label, field=inv.path or None)
    try:
        if not isinstance(item, dict):
            raise Invalid("", item, "each event must be a table")
        ev = convert(item, Event, native_dates=native_dates)
        if ev.known is UNSET:
            raise Invalid("known", None, "missing required field: the day it became public")
        check_rules(ev)
    except Invalid as inv:
        fail(inv)
    payload = {k: _jsonable(item[k]) for k in PAYLOAD_KEYS if k in item}
    return NewEvent(stream=ev.stream, type=ev.type, effective=ev.effective, known=ev.known,
                    announced=None if ev.announced is UNSET else ev.announced,
                    payload=payload, source=_jsonable(item["source"]),
                    id=None if ev.id is UNSET else ev.id, origin=origin)


# -- citations -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Roots:
    """Folders a citation may be found in, in the order they are tried."""

    folders: tuple[Path, ...]

    def find(self, sub: str, name: str) -> tuple[Path | None, list[Path]]:
        """The cited document `sub/name` inside one of the folders; never outside them."""
        tried = []
        for root in self.folders:
            base = (root / sub).resolve()
            target = (base / name).resolve()
            tried.append(base)
            if base not in target.parents:
                continue  # `..` or an absolute path: outside the documents folder
            if target.is_file():
                return target, tried
        return None, tried


def _roots(path: Path, sources: Path | None) -> _Roots:
    folders = [Path(sources)] if sources else []
    folders += [path.resolve().parent, seeds_path()]
    return _Roots(tuple(dict.fromkeys(f.resolve() for f in folders)))


@lru_cache(maxsize=64)
def _folded(path: Path) -> str | None:
    try:
        return fold_text(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


@lru_cache(maxsize=16)
def source_names(path: Path) -> frozenset[str]:
    """The whole source names a fact table lists in its Source columns (folded, lower case).

    A cell names one or more sources separated by `;`; a name ends before ` — ` (the address)
    and may be followed by a title after a comma or a quotation mark.
    """
    names: set[str] = set()
    col = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            col = None
            continue
        if set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if col is None:
            col = next((i for i, c in enumerate(cells) if c.lower().startswith("source")), -1)
            continue
        if not 0 <= col < len(cells):
            continue
        names |= cell_source_names(cells[col])
    return frozenset(names)


def cell_source_names(cell: str) -> set[str]:
    """The whole source names one Source cell gives (folded, lower case): each `;`-separated
    part up to its address, and that part up to a title or a parenthesis."""
    names: set[str] = set()
    for part in cell.split(";"):
        publisher = part.split(" \u2014 ")[0].strip()
        m = re.match(r'^([^,"(\u201c]+?)\s*(,|"|\(|\u201c|$)', publisher)
        for name in (publisher, m.group(1) if m else ""):
            folded = fold_text(name).lower()
            if re.search(r"\w", folded):
                names.add(folded)
    return names


def _check_citation(ev: NewEvent, roots: _Roots) -> None:
    """A quoted file must contain the quote; a reference names whole sources of its table."""
    src = ev.source

    def fail(field: str, message: str):
        raise EventValidationError(message, **_where(ev, field))
    if src.get("file"):
        rel = str(src["file"])
        found, tried = (roots.find("sources", rel.removeprefix("sources/"))
                        if rel.startswith("sources/") else (None, []))
        if found is None:
            fail("source.file", f"cited file {rel!r} not found: a source article is cited as "
                                f"sources/NAME and must be inside a sources/ folder "
                                f"({' or '.join(str(t) for t in tried) or 'none tried'}; give "
                                f"the folder holding sources/ with --sources)")
        text = _folded(found)
        if text is None or fold_text(str(src.get("quote", ""))) not in text:
            fail("source.quote", f"quote does not appear verbatim in {src['file']}")
    if src.get("reference"):
        found, tried = roots.find("reference", src["reference"])
        if found is None:
            fail("source.reference", f"reference {src['reference']!r} not found under "
                                     f"{' or '.join(str(t) for t in tried)} (a file name "
                                     f"inside a reference/ folder; give it with --sources)")
        names = source_names(found)
        for part in str(src["name"]).split(";"):
            folded = fold_text(part).lower()
            if folded not in names:
                fail("source.name", f"{part.strip()!r} is not a source named in "
                                    f"{src['reference']} (a whole name from its Source "
                                    f"column, e.g. {_example(names, folded)!r})")
        if src.get("quote") and fold_text(str(src["quote"])) not in (_folded(found) or ""):
            fail("source.quote", f"quote does not appear verbatim in {src['reference']}")


def _example(names: frozenset[str], near: str) -> str:
    import difflib

    close = difflib.get_close_matches(near, sorted(names), n=1, cutoff=0.3)
    return close[0] if close else sorted(names)[0]

"""Event files (TOML or JSON) to admitted events, with citations checked against sources.

Every event is admitted by the declared schema (`timeline.log.validation.admit_document`:
the store then takes it as checked, without checking it again) and its citation checked
against the cited document. Ids are the store's to check, with every other event of the
same append and against the log, by one definition of the same event
(`timeline.log.events.identity`): the same id with other content is a conflict naming both
places, never a silent skip.
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from timeline.errors import EventValidationError
from timeline.log.events import CheckedEvent, NewEvent, reject
from timeline.log.validation import STREAM_RE, admit_document
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


def load_paths(paths: Sequence[Path], sources: Path | None = None
               ) -> list[CheckedEvent]:
    """Parse and validate every file; raise on the first problem, before anything is written.

    `sources` is the folder holding the cited documents (`sources/` and `reference/`);
    without it, a file's own folder is tried first, then the bundled seeds' folder.
    """
    return [ev for path in expand(paths) for ev in load_file(path, sources)]


def load_file(path: Path, sources: Path | None = None) -> list[CheckedEvent]:
    """The admitted events of one TOML or JSON event file."""
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
    out: list[CheckedEvent] = []
    for n, item in enumerate(items, 1):
        origin = f"{name}:{lines[n - 1]}" if n - 1 < len(lines) else name
        ev = _to_event(item, origin, n, native_dates=not is_json)
        _check_citation(ev, roots)
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


def _event_lines(text: str, is_json: bool) -> list[int]:
    """The line each event of a file starts on, in order."""
    if is_json:
        return _json_event_lines(text)
    pat = re.compile(r"^\s*\[\[\s*events\s*\]\]")
    return [i + 1 for i, line in enumerate(text.splitlines()) if pat.match(line)]


# a JSON string (skipped whole: it may hold braces), a bracket, or a line break
_JSON_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"|[{}\[\]\n]')


def _json_event_lines(text: str) -> list[int]:
    """The line of each object directly inside the top-level object's array: the events of
    `{"events": [...]}` however the file is laid out (one line, or pretty-printed)."""
    lines: list[int] = []
    stack: list[str] = []
    line = 1
    for m in _JSON_TOKENS.finditer(text):
        tok = m.group()
        if tok == "\n":
            line += 1
        elif tok in "{[":
            if tok == "{" and stack == ["{", "["]:
                lines.append(line)
            stack.append(tok)
        elif tok in "}]":
            if stack:
                stack.pop()
    return lines


def _to_event(item: Any, origin: str, n: int, native_dates: bool) -> CheckedEvent:
    """Check one `[[events]]` table against the schema: the admitted event."""
    stream = item.get("stream") if isinstance(item, dict) else None
    label = f"#{n}" + (f" ({stream})" if isinstance(stream, str) and len(stream) < 200
                       and STREAM_RE.fullmatch(stream) else "")
    return admit_document(item, origin, label, native_dates=native_dates)


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
        reject(ev, field, message)

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

"""`timeline export`: dated projection snapshots for cron — atomic, deterministic, idempotent.

Everything goes through `write_snapshot` (and `verify_snapshot` to re-check one). A snapshot
is built in a temporary folder beside its target, every file fsynced, the manifest written
last, then the folder is renamed into place and `DIR/latest` (a one-line text file naming
the newest nightly snapshot) is replaced atomically. A crash at any point leaves the previous
complete snapshot and a valid `latest`; leftovers of a killed run are removed by the next.

A nightly is named by its as-of date. A backfill (a `--known-on` date, an as-of after today,
or one older than the newest nightly) is named `…_known_K` or `…_backfill` and never moves
`latest`.

Each snapshot holds events.jsonl, the tables (intervals, state, totals) as CSV and, with
pyarrow, as Parquet, report.html (the briefing, compared with the previous nightly) and the
manifest that hashes them all.

Hooks:
- `EXTRA_WRITERS`: callables `(snapshot, snapshot_tmp_dir, as_of, known_on) -> list[filename]`
  run after the built-in files and before the manifest, so their files are hashed and
  counted in it. `snapshot` is the `timeline.api.Snapshot` every file is read from, `as_of`
  an ISO date, `known_on` one or None.
- `TIMELINE_EXPORT_TEST_DELAY` (environment, seconds): sleep after each file is written.
  A test hook only: it lets the tests kill an export part-way through.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from timeline import __version__, api
from timeline.api import Snapshot
from timeline.errors import IntegrityError, QueryError, TimelineError
from timeline.files import fsync_path, special_kind
from timeline.surfaces.common import date_arg, open_timeline, resolve_date
from timeline.surfaces import columnar
from timeline.surfaces.manifest import (LATEST, MANIFEST, NIGHTLY_NAME, SNAPSHOT_NAME,  # noqa: F401
                                        read_latest, read_manifest)
from timeline.surfaces.report import write_report

MANIFEST_VERSION = 1
TEST_DELAY_ENV = "TIMELINE_EXPORT_TEST_DELAY"
EXTRA_WRITERS: list[Callable] = []

# (name, type) of each table's columns; the type is the Parquet column's (see columnar.py)
# what the query language says of a state besides its fields (docs/export.md): the rate it
# had or would have, the sources' confidence, whether what it collects is refundable and
# whether it rests on a change after the knowledge horizon
QUALIFIER_COLUMNS = (("last_rate", "rate"), ("announced_rate", "rate"),
                     ("threatened_rate", "rate"), ("confidence", "text"),
                     ("refundable", "bool"), ("projected", "bool"))
INTERVAL_COLUMNS = (("measure", "text"), ("valid_from", "date"), ("valid_to", "date"),
                    ("rate", "rate"), ("status", "text"), ("legal_status", "text"),
                    ("kind", "text"), ("imposer", "text"), ("target", "text"), ("scope", "text"),
                    ("state", "text"), ("event_ids", "text")) + QUALIFIER_COLUMNS
STATE_COLUMNS = (("measure", "text"), ("kind", "text"), ("imposer", "text"), ("target", "text"),
                 ("rate", "rate"), ("status", "text"), ("legal_status", "text"),
                 ("scope", "text"), ("authority", "text"), ("since", "date"), ("until", "date"),
                 ("state", "text"), ("event_ids", "text")) + QUALIFIER_COLUMNS
TOTAL_COLUMNS = (("imposer", "text"), ("target", "text"), ("as_of", "date"),
                 ("known_on", "date"), ("total", "rate"), ("measures", "text"),
                 ("event_ids", "text"), ("projected", "bool"), ("known_through", "date"),
                 ("refundable", "rate"))
TOTAL_PAIRS = (("us", "cn"), ("cn", "us"))
# products.csv: each product group's HTS line, one row per change of its duty (docs/products.md)
PRODUCT_COLUMNS = (("product", "text"), ("hts", "text"), ("valid_from", "date"),
                   ("valid_to", "date"), ("total", "number"), ("complete", "bool"),
                   ("refundable", "number"), ("layers", "text"), ("changed", "text"),
                   ("projected", "bool"), ("known_on", "date"), ("known_through", "date"))
_TMP_PREFIX, _OLD_PREFIX = ".tmp-", ".old-"


@dataclass
class ExportResult:
    """What `write_snapshot` did: the snapshot folder, whether it wrote, and what it pruned."""

    path: Path
    written: bool
    manifest: dict
    pruned: list[str] = field(default_factory=list)


def snapshot_name(as_of: str, known_on: str | None, backfill: bool = False) -> str:
    """Folder name of a snapshot: `YYYY-MM-DD` for a nightly, `YYYY-MM-DD_known_YYYY-MM-DD`
    with a knowledge date, `YYYY-MM-DD_backfill` for an as-of older than the newest nightly."""
    if known_on is not None:
        return f"{as_of}_known_{known_on}"
    return f"{as_of}_backfill" if backfill else as_of


def nightlies(out_dir) -> list[str]:
    """The nightly snapshots under `out_dir` (plain dates), oldest first."""
    return [n for n in snapshots(out_dir) if NIGHTLY_NAME.fullmatch(n)]


def previous_nightly(out_dir, as_of: str) -> str | None:
    """As-of date of the newest nightly before `as_of`: what its report compares with."""
    older = [n for n in nightlies(out_dir) if n < as_of]
    return older[-1] if older else None


def write_snapshot(tl: api.Timeline, out_dir, as_of=None, known_on=None, force: bool = False,
                   keep: int | None = None) -> ExportResult:
    """Write (or find up to date) the snapshot of timeline `tl` for the dates under `out_dir`."""
    if not str(out_dir).strip():
        # Path("") is ".": an empty --out would write into the current directory
        raise TimelineError("--out needs a folder name (it was empty)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        what = special_kind(out) or "a file"
        raise TimelineError(f"--out {out} is {what}, not a folder; nothing was written")
    try:
        return _write_snapshot(tl, out, as_of, known_on, force, keep)
    except OSError as exc:
        # a full or read-only disk: the temporary folder is gone, older snapshots and
        # `latest` are as they were (they are replaced only by renames)
        where = exc.filename or out
        raise TimelineError(f"cannot write the snapshot into {out}: {where}: "
                            f"{exc.strerror or exc}; earlier snapshots and {LATEST} are "
                            f"unchanged") from exc


def _write_snapshot(tl: api.Timeline, out: Path, as_of, known_on, force: bool,
                    keep: int | None) -> ExportResult:
    as_of = _iso(as_of) or dt.date.today().isoformat()
    known_on = _iso(known_on)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TimelineError(f"cannot create {out}: {exc.strerror or exc}") from exc
    with _locked(out):
        _clean_leftovers(out)
        dated = nightlies(out)
        newest = dated[-1] if dated else None
        # a backfill never takes a nightly's name, so it can never move `latest`; a date
        # after today is a projection: taken for a nightly, it would hold `latest` on itself
        # and make every real nightly before that date a backfill
        backfill = (known_on is not None or (newest is not None and as_of < newest)
                    or as_of > dt.date.today().isoformat())
        name = snapshot_name(as_of, known_on, backfill)
        target = out / name
        with tl.snapshot() as r:
            # one read transaction: the head and every file describe the same log
            head = r.head()
            current = read_manifest(target)
            if (not force and current is not None and current.get("head", {}).get("hash")
                    == head.hash and current.get("as_of") == as_of
                    and current.get("known_on") == known_on and not verify_snapshot(target)):
                _point_latest(out)
                return ExportResult(target, False, current)
            since = previous_nightly(out, as_of)
            tmp = out / f"{_TMP_PREFIX}{name}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                def report(r, folder, a, k):
                    return write_report(r, folder, a, k, since=since)
                writers = [write_events, write_tables, report, *EXTRA_WRITERS]
                names: list[str] = []
                for writer in writers:
                    names += writer(r, tmp, as_of, known_on)
                    _test_delay()
                manifest = _manifest(tmp, names, r.revision(), head, as_of, known_on)
                manifest.update({"kind": "backfill" if backfill else "nightly",
                                 "previous_nightly": since,
                                 "parquet": "written" if columnar.available()
                                 else columnar.MISSING})
                _write_file(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True,
                                                       ensure_ascii=False) + "\n")
                fsync_path(tmp)
                _install(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        try:
            fsync_path(out)
            _point_latest(out)
        except OSError as exc:
            # the snapshot is complete and in place; only its rename's flush or `latest` failed
            raise TimelineError(
                f"the snapshot {name} was written into {out}, but the disk failed after it "
                f"({exc.strerror or exc}); {LATEST} names {read_latest(out) or 'nothing'}. "
                f"Run the export again once there is room: it finds {name} up to date and "
                f"moves {LATEST}") from exc
        pruned = prune(out, keep, protect={name}) if keep else []
    return ExportResult(target, True, manifest, pruned)


def _point_latest(out: Path) -> None:
    """Make `latest` name the newest nightly (left alone when there is none yet)."""
    dated = nightlies(out)
    newest = dated[-1] if dated else None
    if newest is None or read_latest(out) == newest:
        return
    try:
        _write_file(out / ".latest.tmp", newest + "\n")
        os.replace(out / ".latest.tmp", out / LATEST)
    finally:
        (out / ".latest.tmp").unlink(missing_ok=True)
    fsync_path(out)


def verify_snapshot(path) -> list[str]:
    """Problems found re-checking a snapshot folder against its manifest (empty: it is intact)."""
    path = Path(path)
    manifest = read_manifest(path)
    if manifest is None:
        return [f"{path}: no readable {MANIFEST}"]
    problems = []
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return [f"{path / MANIFEST}: lists no files"]
    for fname, info in sorted(files.items()):
        f = path / fname
        if not f.is_file():
            problems.append(f"{fname}: missing")
            continue
        if _sha256(f) != info.get("sha256"):
            problems.append(f"{fname}: SHA-256 differs from the manifest (file was changed)")
        elif f.stat().st_size != info.get("bytes"):
            problems.append(f"{fname}: size differs from the manifest")
        elif info.get("rows") is not None and _rows(f) not in (None, info["rows"]):
            # None: a Parquet file where pyarrow is missing; its SHA-256 was checked above
            problems.append(f"{fname}: row count differs from the manifest")
    for extra in sorted(p.name for p in path.iterdir() if p.name not in files
                        and p.name != MANIFEST):
        problems.append(f"{extra}: not listed in the manifest")
    if not problems and "events.jsonl" in files:
        problems += _check_head(path / "events.jsonl", manifest.get("head") or {})
    return problems


def snapshots(out_dir) -> list[str]:
    """Names of the complete snapshot folders under `out_dir`, oldest date first."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir()
                  if p.is_dir() and SNAPSHOT_NAME.fullmatch(p.name) and (p / MANIFEST).is_file())


def prune(out_dir, keep: int, protect=frozenset()) -> list[str]:
    """Delete all but the `keep` newest-dated snapshots (never `latest` or `protect`)."""
    names = snapshots(out_dir)
    spared = set(protect) | {read_latest(out_dir)}
    doomed = [n for n in names[:max(len(names) - keep, 0)] if n not in spared]
    for n in doomed:
        # renamed first so that a crash mid-delete never leaves a half snapshot under a
        # snapshot name; the next run removes the leftover
        gone = Path(out_dir) / f"{_OLD_PREFIX}pruned-{n}-{os.getpid()}"
        os.rename(Path(out_dir) / n, gone)
        shutil.rmtree(gone)
    return doomed


# -- the built-in files ---------------------------------------------------------------------
def write_events(r: Snapshot, folder: Path, as_of: str, known_on: str | None) -> list[str]:
    """events.jsonl: the whole log in position order, one canonical JSON object a line."""
    with _open(folder / "events.jsonl") as f:
        for ev in r.iter_events():
            f.write(json.dumps(ev.as_dict(), sort_keys=True, ensure_ascii=False,
                               separators=(",", ":")) + "\n")
    return ["events.jsonl"]


def _qualifiers(r: Snapshot, stream: str, row, known_on: str | None, horizon: str | None,
                as_of: str | None = None) -> tuple:
    """The QUALIFIER_COLUMNS of one interval (`as_of`: a state on that day, which is
    projected too when the day itself is past the horizon)."""
    s = row.state
    collects = s.get("kind") == "tariff" and s.get("rate") is not None \
        and s.get("status") == "in_force"
    past = horizon is not None and (row.valid_from > horizon
                                    or (as_of is not None and as_of > horizon))
    return (s.get("last_rate"), s.get("announced_rate"), s.get("threatened_rate"),
            s.get("confidence"), collects and r.refundable(stream, known_on), past)


def interval_rows(r: Snapshot, as_of: str, known_on: str | None) -> list[tuple]:
    """Rows of intervals.csv (raw values): every interval of every measure, as known on K."""
    cat = _catalogue(r)
    horizon = known_on or r.horizon()
    rows = []
    for stream in r.measure_ids():
        kind, imposer, target = cat.get(stream, (None, None, None))
        for row in r.history(stream, None, None, known_on):
            s = row.state
            rows.append((stream, row.valid_from, row.valid_to, s.get("rate"), s.get("status"),
                         s.get("legal_status"), kind, imposer, target, s.get("scope"), s,
                         row.event_ids) + _qualifiers(r, stream, row, known_on, horizon))
    return rows


def state_rows(r: Snapshot, as_of: str, known_on: str | None) -> list[tuple]:
    """Rows of state.csv: the state of every measure that has one on `as_of`, as known on K."""
    cat = _catalogue(r)
    horizon = known_on or r.horizon()
    rows = []
    for stream in r.measure_ids():
        row = r.state(stream, as_of, known_on)
        if row is None:
            continue
        kind, imposer, target = cat.get(stream, (None, None, None))
        s = row.state
        rows.append((stream, kind, imposer, target, s.get("rate"), s.get("status"),
                     s.get("legal_status"), s.get("scope"), s.get("authority"), row.valid_from,
                     row.valid_to, s, row.event_ids)
                    + _qualifiers(r, stream, row, known_on, horizon, as_of))
    return rows


def total_rows(r: Snapshot, as_of: str, known_on: str | None) -> list[tuple]:
    """Rows of totals.csv: the total tariff each way on `as_of`, apart from the data rows."""
    rows = []
    for imposer, target in TOTAL_PAIRS:
        text = f"total tariff by {imposer} on {target} as of {as_of}" + (
            f" known on {known_on}" if known_on else "")
        try:
            ans = r.query(text, today=dt.date.fromisoformat(as_of), goods=False).data
        except QueryError:
            continue  # a log without one side's measures has no total that way
        rows.append((imposer, target, as_of, known_on, ans["total"],
                     [c["measure"] for c in ans["components"]],
                     [i for c in ans["components"] for i in c["events"]], ans["projected"],
                     ans["horizon"]["known_through"], ans["refundable"]))
    return rows


def product_rows(r: Snapshot, as_of: str, known_on: str | None) -> list[tuple]:
    """Rows of products.csv: every product group's lines, each change of the duty they pay
    from goods of China, as known on K (everything in the log without one)."""
    known = known_on  # like intervals.csv: everything in the log unless a knowledge date
    h = r.horizon(known_on)
    rows = []
    for g in r.product_groups():
        lines = r.group_hts(g, "9999-12-31", known)
        for it in r.tariff_changes(lines, "cn", None, None, known):
            layers = {l["measure"]: l["rate"] for l in it["layers"] if l["applies"]}
            rows.append((g, it["hts"], it["from"], it["until"],
                         it["total"], it["complete"], it.get("refundable", 0),
                         layers, it["changed"], h is not None and it["from"] > h, known_on,
                         h))
    return rows


# (file stem, columns, row builder); each table is written as CSV and, with pyarrow, Parquet
TABLES = (("intervals", INTERVAL_COLUMNS, interval_rows), ("state", STATE_COLUMNS, state_rows),
          ("totals", TOTAL_COLUMNS, total_rows), ("products", PRODUCT_COLUMNS, product_rows))


def write_tables(r: Snapshot, folder: Path, as_of: str, known_on: str | None) -> list[str]:
    """The CSV tables, and their Parquet copies when pyarrow is importable."""
    names = []
    parquet = columnar.available()
    for stem, columns, build in TABLES:
        rows = build(r, as_of, known_on)
        with _open(folder / f"{stem}.csv") as f:
            w = csv.writer(f, lineterminator="\r\n")
            w.writerow([name for name, _ in columns])
            w.writerows([_cell(v) for v in row] for row in rows)
        names.append(f"{stem}.csv")
        if parquet:
            columnar.write_parquet(folder / f"{stem}.parquet", columns, rows)
            fsync_path(folder / f"{stem}.parquet")
            names.append(f"{stem}.parquet")
    return names


def _catalogue(r: Snapshot) -> dict[str, tuple]:
    return {m.stream: (m.kind, m.imposer, m.target) for m in r.catalogue()}


def _cell(v):
    """A CSV cell: empty for None, whole floats without `.0`, JSON for dicts and lists."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return str(v)


# -- manifest and checks --------------------------------------------------------------------
def _manifest(folder: Path, names: list[str], revision, head, as_of, known_on) -> dict:
    listed = sorted(set(names))
    on_disk = sorted(p.name for p in folder.iterdir())
    if listed != on_disk:
        raise TimelineError(f"export writers reported {listed} but wrote {on_disk}")
    files = {n: {"sha256": _sha256(folder / n), "bytes": (folder / n).stat().st_size,
                 "rows": _rows(folder / n)} for n in listed}
    return {
        "manifest_version": MANIFEST_VERSION, "tool": "timeline", "tool_version": __version__,
        "schema_revision": revision, "head": {"position": head.position, "hash": head.hash},
        "as_of": as_of, "known_on": known_on,
        "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": files, "row_counts": {n: files[n]["rows"] for n in listed},
    }


def _rows(path: Path) -> int | None:
    """Data rows of a CSV (header excluded) or lines of a JSONL file; None for others."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            return max(sum(1 for _ in csv.reader(f)) - 1, 0)
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())
    if path.suffix == ".parquet":
        return columnar.parquet_rows(path)
    return None


def _check_head(events_file: Path, head: dict) -> list[str]:
    """Recompute the hash chain of events.jsonl and compare its end with the manifest's head:
    a snapshot forged with a recomputed manifest is caught where it contains the log."""
    n = 0  # the line being checked: the chain check pulls them one at a time

    def stored():
        nonlocal n
        with events_file.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):  # noqa: B007 - `n` is read by the handlers
                if not line.strip():
                    continue
                ev = json.loads(line)
                if not isinstance(ev, dict):
                    raise _NotAnEvent
                yield ev

    try:
        got = api.chain_head(stored(), "events.jsonl")
    except _NotAnEvent:
        return [f"events.jsonl: line {n} is not an event"]
    except IntegrityError as exc:
        return [f"{exc} (the hash chain of the snapshot's events is broken)"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"events.jsonl: line {n} is not a stored event ({exc})"]
    if (got.position, got.hash) != (head.get("position"), head.get("hash")):
        if got.position == 0:
            return ["events.jsonl: empty but head is not"]
        return ["events.jsonl: its last event is not the head named in the manifest"]
    return []


class _NotAnEvent(Exception):
    """A line of events.jsonl holds JSON that is not an object."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- files, folders and atomicity -----------------------------------------------------------
@contextlib.contextmanager
def _open(path: Path):
    """A text file opened for writing that is flushed and fsynced when closed."""
    with path.open("w", encoding="utf-8", newline="") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def _write_file(path: Path, content: str) -> None:
    with _open(path) as f:
        f.write(content)


def _test_delay() -> None:
    delay = os.environ.get(TEST_DELAY_ENV)
    if delay:
        time.sleep(float(delay))


def _install(tmp: Path, target: Path) -> None:
    """Move the finished folder to `target`, replacing an older snapshot of the same name."""
    if not target.exists():
        os.rename(tmp, target)
    elif _exchange(tmp, target):
        shutil.rmtree(tmp)  # tmp now holds the replaced snapshot
    else:
        # Without an atomic swap there is a moment with no `target`; the old folder is
        # kept under a recognisable name so that the next run can put it back
        old = target.parent / f"{_OLD_PREFIX}{target.name}-{os.getpid()}"
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux renameat2(RENAME_EXCHANGE); False if unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _clean_leftovers(out: Path) -> None:
    """Remove what killed runs left behind; restore a snapshot caught mid-replacement."""
    for p in sorted(out.iterdir()):
        if p.name.startswith(_TMP_PREFIX) or p.name == ".latest.tmp":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        elif p.name.startswith(_OLD_PREFIX):
            m = re.fullmatch(rf"{re.escape(_OLD_PREFIX)}(.+)-\d+", p.name)
            original = out / m.group(1) if m else None
            if original is not None and SNAPSHOT_NAME.fullmatch(original.name) \
                    and not original.exists():
                os.rename(p, original)
            else:
                shutil.rmtree(p)


@contextlib.contextmanager
def _locked(out: Path):
    """Hold DIR/.lock for the whole export so that overlapping cron runs cannot interleave."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; exports must not overlap
        yield
        return
    with open(out / ".lock", "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TimelineError(f"another export into {out} is running") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _iso(value, today: dt.date | None = None) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    return resolve_date(str(value), today)


# -- the command ----------------------------------------------------------------------------
def configure_export(p) -> None:
    """Arguments of `timeline export`."""
    def positive(text):
        """argparse type: a whole number of at least 1."""
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise argparse.ArgumentTypeError(f"--keep needs a whole number >= 1, not {text!r}")
        return int(text)

    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", metavar="DIR", help="folder holding the dated snapshots")
    what.add_argument("--verify", metavar="SNAPSHOT_DIR",
                      help="re-check a snapshot (or DIR, meaning its latest) against its manifest")
    p.add_argument("--as-of", type=date_arg, metavar="DATE",
                   help="state date, as in queries: 2025-05-14, today - 1 day (default: today)."
                        " After today or older than the newest nightly: a backfill, under its own"
                        " name")
    p.add_argument("--known-on", type=date_arg, metavar="DATE",
                   help="use only what was public by this date (a backfill: `latest` stays)")
    p.add_argument("--force", action="store_true", help="rewrite even when up to date")
    p.add_argument("--keep", type=positive, metavar="N",
                   help="keep only the N newest-dated snapshots")


def run_export(args) -> int:
    """Write a snapshot (exit 0, also when up to date) or verify one (exit 1 on a mismatch)."""
    if args.verify:
        if args.as_of or args.known_on or args.force or args.keep:
            print("timeline export: error: --verify takes no other options", file=sys.stderr)
            return 2
        path = Path(args.verify)
        latest = None if (path / MANIFEST).exists() else read_latest(path)
        if latest:
            path = path / latest
        problems = verify_snapshot(path)
        for problem in problems:
            print(f"FAILED: {path}: {problem}", file=sys.stderr)
        if problems:
            return 1
        manifest = read_manifest(path)
        assert manifest is not None  # verify_snapshot found it readable
        n = len(manifest["files"])
        print(f"ok: {path} matches its manifest ({n} files)")
        return 0
    with open_timeline(args, readonly=True) as tl:
        res = write_snapshot(tl, args.out, args.as_of, args.known_on, args.force, args.keep)
    head = res.manifest["head"]
    if not res.written:
        print(f"up to date: {res.path} (head {head['position']} {head['hash'][:12]})")
        return 0
    counts = ", ".join(f"{n} {r}" for n, r in sorted(res.manifest["row_counts"].items())
                       if r is not None)
    print(f"wrote {res.path}: {counts} (head {head['position']} {head['hash'][:12]})")
    for name in res.pruned:
        print(f"pruned {Path(args.out) / name}")
    return 0


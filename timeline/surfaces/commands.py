"""The core commands: init, info, verify, load, query, rebuild, review."""
from __future__ import annotations

import argparse
import json
import sys

from timeline import api
from timeline.errors import IntegrityError, TimelineError
from timeline.surfaces.common import announce, open_timeline
from timeline.surfaces.output import FORMATS, add_expanded_option, render, terminal_width


def configure_init(p: argparse.ArgumentParser) -> None:
    """Arguments of `timeline init`."""
    p.add_argument("--no-seeds", action="store_true", help="create an empty log")


def run_init(args) -> int:
    """Create or upgrade the database."""
    notices: list[str] = []

    def note(msg: str) -> None:
        notices.append(msg)
        announce(msg)

    with api.init(args.db, seeds=not args.no_seeds, announce=note) as tl:
        if not notices:  # it existed, at the schema head already
            announce(f"{tl.where}: schema at {api.HEAD_REVISION}")
        head = tl.head
        print(f"database: {tl.where}\nevents: {head.position}\nhead: {head.hash}")
    return 0


def configure_info(p):
    """Arguments of `timeline info`."""
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--path", action="store_true",
                   help="print only the database file's path, e.g. for "
                        "sqlite3 \"$(timeline info --path)\"")


def run_info(args) -> int:
    """Print where the database is and the state of its log."""
    if args.path:
        return _print_path(args)
    # no head check: `info` is how one looks at a database that fails it
    with open_timeline(args, readonly=True) as tl, tl.snapshot(check=False) as s:
        head = s.head()
        info = {"database": tl.where, "schema_revision": s.revision(),
                "events": s.count(), "head_position": head.position, "head_hash": head.hash}
    if args.format == "json":
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for k, v in info.items():
            print(f"{k.replace('_', ' ').ljust(width)}  {v}")
    return 0


def _print_path(args) -> int:
    """The file of the database --db / $TIMELINE_DB / the default names (created on first use,
    as `info` creates it); a server database has no file to print."""
    with open_timeline(args, readonly=True) as tl:
        path = tl.path
        if path is None:
            raise TimelineError(f"info --path: {tl.where} is not a database file; "
                                f"`timeline info` shows where it is")
    print(path)
    return 0


def configure_verify(p):
    """Arguments of `timeline verify`."""
    p.add_argument("--against", metavar="MANIFEST.json",
                   help="also check the log still holds the head recorded in an export "
                        "manifest (a manifest.json, a snapshot folder, or the export folder "
                        "for its latest snapshot): catches a truncated or rewritten tail")
    p.add_argument("--quick", action="store_true",
                   help="only the cheap checks, for cron: triggers, views and the head the "
                        "projections reflect (no chain walk, no fold)")


def run_verify(args) -> int:
    """Recompute the chain; `ok` or the first altered position."""
    from timeline.surfaces.manifest import check_against_manifest  # verify --against only

    findings: list[str] = []
    head, against = None, ""
    with open_timeline(args, readonly=True) as tl:
        try:
            head = tl.verify(quick=args.quick)
        except IntegrityError as exc:
            findings.append(str(exc))
        try:  # also after a finding: the manifest may say more (a truncated tail)
            against = check_against_manifest(tl, args.against) if args.against else ""
        except IntegrityError as exc:
            findings.append(str(exc))
    if findings:
        print(f"FAILED: {'; '.join(findings)}", file=sys.stderr)
        return 1
    assert head is not None  # no finding: verify returned the head
    print(f"ok: {head.position} events, head position {head.position}, head hash {head.hash}"
          f"{against}")
    return 0


def configure_load(p):
    """Arguments of `timeline load`."""
    p.add_argument("paths", nargs="+", metavar="PATH", help="event files or directories")
    p.add_argument("--dry-run", action="store_true",
                   help="validate and show what would be appended, skipped and changed; "
                        "write nothing")
    p.add_argument("--sources", metavar="DIR",
                   help="folder holding the cited documents (its sources/ and reference/); "
                        "default: the event file's folder, then the bundled sources")


def run_load(args) -> int:
    """Validate every file, then append all their events in one transaction."""
    with open_timeline(args) as tl:
        res = tl.load(args.paths, sources=args.sources, dry_run=args.dry_run)
    if not res.dry_run:
        print(f"appended {len(res.appended)} events ({res.skipped} already in the log); "
              f"head {res.head.position} {res.head.hash}")
        return 0
    print(f"dry run: would append {len(res.appended)} events ({res.skipped} already in the "
          f"log); nothing was written (head {res.head.position} {res.head.hash[:12]})")
    for ev in res.appended:
        print(f"  + {ev.effective}  {ev.stream}  {ev.type}  {ev.title}")
    if res.changes:
        print("state changes:")
    for ch in res.changes:
        print(f"  {ch.stream}{' (new measure)' if ch.new else ''}")
        for day, name, before, after in ch.differences[:12]:
            print(f"    {day}  {name}: {_shown(before)} -> {_shown(after)}")
        if len(ch.differences) > 12:
            print(f"    … and {len(ch.differences) - 12} more")
    return 0


def _shown(value) -> str:
    if value is None:
        return "(none)"
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else \
        str(value)
    return text if len(text) <= 60 else text[:59] + "…"


def configure_schema(p):
    """Arguments of `timeline schema`."""
    p.add_argument("--markdown", action="store_true",
                   help="print the field tables of docs/event-format.md instead")


def run_schema(args) -> int:
    """Print the JSON Schema of the event-file format (or its field tables)."""
    if args.markdown:
        print(api.event_field_tables())
    else:
        print(json.dumps(api.event_schema(), indent=2, ensure_ascii=False))
    return 0


def configure_query(p):
    """Arguments of `timeline query`."""
    p.add_argument("query", help="a query, e.g. \"state of us.tariff.* as of 2025-05-14\"")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--sql", action="store_true",
                   help="with explain: list the SQL statements the answer ran")
    add_expanded_option(p)


def run_query(args) -> int:
    """Parse, plan, run and print one query."""
    q = api.parse(args.query)  # a malformed query is refused before any database is opened
    with open_timeline(args, readonly=True) as tl:
        result = tl.query(args.query, sql=args.sql, parsed=q)
    out = render(result.answer, args.format, pretty=sys.stdout.isatty(),
                 width=terminal_width(sys.stdout), expanded=args.expanded)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0


def configure_review(p):
    """Arguments of `timeline review`."""
    p.add_argument("--through", required=True, metavar="YYYY-MM-DD",
                   help="the sources were checked through this date")
    p.add_argument("--note", required=True, help="what was checked (kept in the event)")
    p.add_argument("--source", default=api.REVIEW_SOURCE,
                   help="who or what checked them (the event's citation)")


def run_review(args) -> int:
    """Append a `reviewed` event: the knowledge horizon moves to --through."""
    with open_timeline(args) as tl:
        res = tl.review(args.through, args.note, source=args.source)
        h = tl.horizon
    print(f"appended {len(res.appended)} event; known through {h}; "
          f"head {res.head.position} {res.head.hash}")
    return 0


def configure_rebuild(p):
    """Arguments of `timeline rebuild`."""


def run_rebuild(args) -> int:
    """Rebuild every projection from the log."""
    with open_timeline(args) as tl:
        progress = _progress_bar if sys.stderr.isatty() else None
        n = tl.rebuild(progress)
        if progress:
            print(file=sys.stderr)
        with tl.snapshot() as s:
            events = s.count()
        print(f"rebuilt projections of {n} measures from {events} events")
    return 0


def _progress_bar(done: int, total: int) -> None:
    width = 40
    frac = done / total if total else 1.0
    bar = "#" * int(frac * width)
    print(f"\rrebuilding [{bar.ljust(width)}] {done}/{total} events", end="", file=sys.stderr,
          flush=True)

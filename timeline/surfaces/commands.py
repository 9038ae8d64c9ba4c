"""The core commands: init, info, verify, load, query, rebuild."""
from __future__ import annotations

import argparse
import sys

from timeline.errors import IntegrityError


def open_store(args, *, readonly: bool = False, create: bool = False):
    """Open the database named by --db / $TIMELINE_DB / the default, announcing creation."""
    from timeline.store.store import Store, stderr

    return Store.open(args.db, readonly=readonly, create=create, announce=stderr)


def configure_init(p: argparse.ArgumentParser) -> None:
    """Arguments of `timeline init`."""
    p.add_argument("--no-seeds", action="store_true", help="create an empty log")


def run_init(args) -> int:
    """Create or upgrade the database."""
    from timeline.log import db as dbmod
    from timeline.store.store import Store, stderr

    url, path, _ = dbmod.resolve(args.db)
    if path is not None and not path.exists():
        store = Store.create(url, path, announce=stderr, seeds=not args.no_seeds)
    else:
        store = Store(dbmod.make_engine(url), url, path)
        from timeline.log import migrate

        with dbmod.driver_errors(store.where), store.engine.connect() as conn:
            rev = migrate.current_revision(conn)
        if rev is None:
            store.initialise(announce=stderr, seeds=not args.no_seeds)
        else:
            migrate.check_known(rev, store.where)
            with dbmod.driver_errors(store.where):
                migrate.upgrade(store.engine)
            print(f"{store.where}: schema at {migrate.HEAD_REVISION}", file=sys.stderr)
    head = store.head()
    print(f"database: {store.where}\nevents: {head.position}\nhead: {head.hash}")
    return 0


def configure_info(p):
    """Arguments of `timeline info`."""
    p.add_argument("--format", choices=("text", "json"), default="text")


def run_info(args) -> int:
    """Print where the database is and the state of its log."""
    store = open_store(args, readonly=True)
    head = store.head()
    info = {"database": store.where, "schema_revision": store.revision(),
            "events": store.count(), "head_position": head.position, "head_hash": head.hash}
    if args.format == "json":
        import json

        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for k, v in info.items():
            print(f"{k.replace('_', ' ').ljust(width)}  {v}")
    return 0


def configure_verify(p):
    """Arguments of `timeline verify`."""
    p.add_argument("--against", metavar="MANIFEST.json",
                   help="also check the log still holds the head recorded in an export "
                        "manifest (a manifest.json, a snapshot folder, or the export folder "
                        "for its latest snapshot): catches a truncated or rewritten tail")


def run_verify(args) -> int:
    """Recompute the chain; `ok` or the first altered position."""
    store = open_store(args, readonly=True)
    try:
        head = store.verify()
        against = _check_against(store, args.against) if args.against else ""
    except IntegrityError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {head.position} events, head position {head.position}, head hash {head.hash}"
          f"{against}")
    return 0


def _check_against(store, manifest: str) -> str:
    """Compare the log with the head an export manifest recorded; raise IntegrityError."""
    import json
    from pathlib import Path

    from sqlalchemy import select

    from timeline.log import db as dbmod
    from timeline.errors import TimelineError
    from timeline.log.schema import events

    path = Path(manifest)
    if path.is_dir():  # a snapshot folder, or the export folder (its latest snapshot)
        if not (path / "manifest.json").exists():
            from timeline.surfaces.export import read_latest

            path = path / (read_latest(path) or "")
        path = path / "manifest.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        head = doc["head"] if isinstance(doc.get("head"), dict) else \
            {"position": doc["head_position"], "hash": doc["head_hash"]}
        pos, want = int(head["position"]), str(head["hash"])
    except OSError as exc:
        raise TimelineError(f"cannot read manifest {manifest}: {exc.strerror}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise TimelineError(f"{manifest} is not an export manifest (no head position and "
                            f"hash)") from exc
    if pos <= 0:
        return f"; manifest {manifest} records an empty log"
    with dbmod.driver_errors(store.where), store.connect() as conn:
        got = conn.execute(select(events.c.hash).where(events.c.position == pos)).scalar()
        last = store.head(conn).position
    if got is None:
        raise IntegrityError(f"log truncated at position {last + 1}: manifest {manifest} "
                             f"records head position {pos}, the log ends at {last} "
                             f"({pos - last} events missing)", last + 1)
    if got != want:
        raise IntegrityError(f"log altered at or before position {pos}: its hash is {got}, "
                             f"manifest {manifest} recorded {want} (the chain was rewritten)",
                             pos)
    return f"; matches manifest {manifest} at position {pos}"


def configure_load(p):
    """Arguments of `timeline load`."""
    p.add_argument("paths", nargs="+", metavar="PATH", help="event files or directories")


def run_load(args) -> int:
    """Validate every file, then append all their events in one transaction."""
    from pathlib import Path

    from timeline.log.loader import load_paths

    events = load_paths([Path(p) for p in args.paths])
    store = open_store(args)
    res = store.append(events)
    head = store.head()
    print(f"appended {len(res.appended)} events ({res.skipped} already in the log); "
          f"head {head.position} {head.hash}")
    return 0


def configure_query(p):
    """Arguments of `timeline query`."""
    p.add_argument("query", help="a query, e.g. \"state of us.tariff.* as of 2025-05-14\"")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")


def run_query(args) -> int:
    """Parse, plan, run and print one query."""
    from timeline.surfaces.output import render
    from timeline.query.parser import parse
    from timeline.query.planner import run

    q = parse(args.query)
    store = open_store(args, readonly=True)
    with store.connect() as conn:
        answer = run(conn, q, args.query)
    out = render(answer, args.format, pretty=sys.stdout.isatty())
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0


def configure_rebuild(p):
    """Arguments of `timeline rebuild`."""


def run_rebuild(args) -> int:
    """Rebuild every projection from the log."""
    store = open_store(args)
    progress = _progress_bar if sys.stderr.isatty() else None
    n = store.rebuild(progress)
    if progress:
        print(file=sys.stderr)
    print(f"rebuilt projections of {n} measures from {store.count()} events")
    return 0


def _progress_bar(done: int, total: int) -> None:
    width = 40
    frac = done / total if total else 1.0
    bar = "#" * int(frac * width)
    print(f"\rrebuilding [{bar.ljust(width)}] {done}/{total} events", end="", file=sys.stderr,
          flush=True)

"""What `verify` checks, and the check every read and append makes first.

The immutability triggers and documented views against the migrations' own definitions;
the projections' recorded head against the log's; the derived links; each stored event
against today's schema. `verify` runs them all and names every finding.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ContextManager

from timeline.errors import EventValidationError, IntegrityError
from timeline.log.chain import ChainChecker, Head
from timeline.log.db import run_sql
from timeline.log.events import NewEvent, row_to_event
from timeline.projections.head import FOLD_VERSION, recorded_head

if TYPE_CHECKING:  # the head check runs on every read, on the driver alone (log.driver)
    from sqlalchemy.engine import Connection

    from timeline.projections.reader import Reader


def log_head(conn: Connection) -> Head:
    with_row = run_sql(conn, "SELECT position, hash FROM events ORDER BY position DESC "
                             "LIMIT 1").first()
    return Head(with_row[0], with_row[1]) if with_row else ChainChecker().head


def check_projection_head(conn: Connection, where: str, head: Head | None = None) -> None:
    """Refuse when the projections were not brought up to the log's head (see 0005)."""
    head = head or log_head(conn)
    recorded = recorded_head(conn)
    if recorded is not None and recorded[:2] == (head.position, head.hash) \
            and recorded[2] != FOLD_VERSION:
        raise IntegrityError(
            f"{where}: the projections were built by fold version {recorded[2] or 'unknown'} "
            f"(an earlier version of timeline); this version folds with version "
            f"{FOLD_VERSION}, and its answers may differ: run `timeline init` or "
            f"`timeline rebuild` to recompute them", None)
    if recorded is None or recorded[:2] != (head.position, head.hash):
        pos = "nothing" if recorded is None else f"position {recorded[0]}"
        raise IntegrityError(
            f"{where}: the log changed behind the store's back: the projections reflect "
            f"{pos}, the log's head is position {head.position} ({head.hash[:12]}); run "
            f"`timeline verify` to find what changed, then `timeline rebuild` once the log "
            f"is trusted", head.position)


def check_stored(row: dict) -> None:
    """An intact stored event that today's schema refuses (written by an earlier version):
    named as a finding, with its position and field."""
    from timeline.log.validation import validate

    try:
        ev = row_to_event(row)
        # validate() reads a stored event's ISO dates as they are
        validate(NewEvent(ev.stream, ev.type, ev.effective,  # type: ignore[arg-type]
                          ev.payload, ev.source,
                          ev.known, ev.announced, ev.id))  # type: ignore[arg-type]
    except EventValidationError as exc:
        raise IntegrityError(f"event at position {row['position']} is intact but fails the "
                             f"event schema: field {exc.field!r}: {exc.message} (it was "
                             f"admitted by an earlier version; queries fold it as stored)",
                             row["position"]) from None
    except ValueError as exc:  # not even JSON (e.g. NaN written by an earlier version)
        raise IntegrityError(f"event at position {row['position']} is intact but its "
                             f"payload is not valid JSON: {exc}", row["position"]) from None


def check_links(conn: Connection, quick: bool) -> None:
    """event_links holds exactly the links the chained events imply (quick: no row that no
    event implies, asked of the database; full: both ways, from the payloads)."""
    from timeline.projections import maintain

    if quick:
        forged = maintain.forged_links(conn)
        diff = (f"a link no event implies ({forged[0][0]!r} at position {forged[0][1]}, role "
                f"{forged[0][2]!r})") if forged else None
    else:
        diff = maintain.link_difference(conn)
    if diff:
        raise IntegrityError(f"event_links altered: {diff}; the links are derived from the "
                             f"events, so `timeline rebuild` recomputes them", None)


def check_triggers(conn: Connection, dialect: str) -> None:
    """Each immutability trigger exists, is enabled and does what migration 0001 made it do."""
    from sqlalchemy import text

    from timeline.store.definitions import expected_definitions, squash

    want = expected_definitions(dialect)["triggers"]
    bad: list[str] = []
    have: dict[str, Any]
    if dialect == "sqlite":
        have = {r[0]: (r[1], r[2]) for r in conn.execute(text(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"))}
        for name, sql in sorted(want.items()):
            if name not in have:
                bad.append(f"{name} missing")
            elif squash(have[name][1]) != squash(sql):
                bad.append(f"{name} altered (its SQL is not the one the migrations created)")
    else:
        have = {r.tgname: r for r in conn.execute(text(
            # on this schema's log tables only; a disabled trigger protects nothing
            "SELECT t.tgname, c.relname, t.tgenabled, t.tgtype, p.proname, p.prosrc, "
            "l.lanname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_language l ON l.oid = p.prolang "
            "WHERE NOT t.tgisinternal AND "
            "t.tgrelid IN (to_regclass('events'), to_regclass('event_links'))"))}
        for name, (table, tgtype, func_name, body) in sorted(want.items()):
            r = have.get(name)
            if r is None:
                bad.append(f"{name} missing")
            elif r.tgenabled not in ("O", "A"):
                bad.append(f"{name} disabled")
            elif (r.relname, r.tgtype, r.proname, r.lanname) != (table, tgtype, func_name,
                                                                  "plpgsql"):
                bad.append(f"{name} altered (table, timing, events or function)")
            elif squash(r.prosrc) != squash(body):
                bad.append(f"{name} altered (the body of {func_name}() is not the one "
                           f"the migrations created)")
    if bad:
        raise IntegrityError(f"immutability triggers missing or altered: {'; '.join(bad)} — "
                             f"the log can be altered without trace", None)


def check_views(conn: Connection, dialect: str) -> None:
    """The documented views are the ones migrations 0003 and 0007 made (readers trust them)."""
    from sqlalchemy import text

    from timeline.store.definitions import expected_definitions, squash

    want = expected_definitions(dialect)["views"]
    bad: list[str] = []
    if dialect == "sqlite":
        have: dict[str, Any] = dict(conn.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'view'")).all())
        for name, sql in sorted(want.items()):
            if name not in have:
                bad.append(f"{name} missing")
            elif squash(have[name]) != squash(sql):
                bad.append(f"{name} altered")
    else:
        # the server normalises a view's text: compare with the same SQL made into
        # temporary views, on a connection of its own (a temporary view cannot be made
        # in the reader's READ ONLY transaction) whose transaction is always rolled back
        have = {name: conn.execute(text("SELECT pg_get_viewdef(to_regclass(:v))"),
                                   {"v": name}).scalar() for name in want}
        fresh = {}
        with conn.engine.connect() as scratch:
            scratch = scratch.execution_options(postgresql_readonly=False,
                                                isolation_level="READ COMMITTED")
            tx = scratch.begin()
            try:
                for sql in want.values():
                    scratch.exec_driver_sql(sql.replace("CREATE VIEW", "CREATE TEMP VIEW", 1))
                for name in want:
                    fresh[name] = scratch.execute(text(
                        "SELECT pg_get_viewdef(to_regclass(:v))"),
                        {"v": f"pg_temp.{name}"}).scalar()
            finally:
                tx.rollback()
        for name in sorted(want):
            if have[name] is None:
                bad.append(f"{name} missing")
            elif squash(have[name]) != squash(fresh[name]):
                bad.append(f"{name} altered")
    if bad:
        raise IntegrityError(f"documented views missing or altered: {'; '.join(bad)} — "
                             f"their answers cannot be trusted", None)


def verify(reading: Callable[..., ContextManager[Reader]], dialect: str, where: str, *,
           quick: bool = False) -> Head:
    """Check everything a reader trusts; raise IntegrityError naming every finding.

    The immutability triggers (definition and enabled state), the documented views'
    definitions and the projections' recorded head; then, unless `quick`, the whole hash
    chain, each stored event against today's schema, and the projections against a fresh
    fold of the log.
    """
    from timeline.projections import maintain

    checker = ChainChecker()
    findings: list[IntegrityError] = []

    def finding(check, *args) -> bool:
        try:
            check(*args)
        except IntegrityError as exc:
            findings.append(exc)
            return False
        return True

    with reading(check=False) as r:
        finding(check_triggers, r.conn, dialect)
        finding(check_views, r.conn, dialect)
        if quick:
            head = log_head(r.conn)
            finding(check_projection_head, r.conn, where, head)
            finding(check_links, r.conn, True)
        else:
            def walk():
                for row in r.event_rows(10_000):
                    checker.check(row)
                    # an intact event today's schema refuses: a finding, not a stop
                    finding(check_stored, row)
            chain_ok = finding(walk)
            head = checker.head
            finding(check_links, r.conn, False)
            if chain_ok and finding(check_projection_head, r.conn, where, head):
                diff = maintain.first_difference(r.conn)
                if diff:
                    findings.append(IntegrityError(
                        f"projections altered: {diff}; run `timeline rebuild` to "
                        f"recompute them from the log"))
    if findings:
        # every finding named; the position is the chain's, when it broke
        position = next((f.position for f in findings if f.position is not None), None)
        raise IntegrityError("; ".join(str(f) for f in findings), position)
    return head

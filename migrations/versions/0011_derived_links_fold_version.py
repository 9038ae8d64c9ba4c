"""Links only as the chained events imply them; the fold version; a reader that only reads.

Issue 24. `event_links` is derived from the events' payloads (`affects`, and the streams of
the events a correction or retraction `supersedes`), yet it is outside the hash chain: a row
inserted by hand changed answers and survived verify, rebuild and copy. The database now
refuses, on both backends, an INSERT of a link its event does not imply and a DELETE of one
it does (so a rebuild can remove a forged row and put back a missing one; nothing else can).

`projection_head` gains `fold_version`: the version of the fold that built the projections
(`timeline.projections.maintain.FOLD_VERSION`). The projections of an upgraded database
were made by an older fold: they are rebuilt here (`timeline init` rebuilds again whenever
the code's version differs from the recorded one; reads refuse until then).

PostgreSQL: functions any role may call by default and that write (WAL messages, large
objects, notifications), take locks (advisory locks: a reader could hold the writers' lock)
or signal other sessions are revoked from PUBLIC in this database and granted back to the
migrating role, which writes. A migrating role that is not their owner skips this with a
notice (docs/sql.md).

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# the row `r` (NEW or OLD) is implied by the event at its position
SQLITE_IMPLIED = (
    "EXISTS (SELECT 1 FROM events e WHERE e.position = {r}.position AND ("
    "({r}.role = 'affects' AND EXISTS (SELECT 1 FROM json_each(e.payload, '$.affects') j "
    "WHERE j.value = {r}.stream)) OR "
    "({r}.role = 'supersedes' AND {r}.stream != e.stream AND EXISTS (SELECT 1 FROM "
    "json_each(e.payload, '$.supersedes') j JOIN events s ON s.id = j.value "
    "WHERE s.stream = {r}.stream))))")

FORGED = ("event_links is append-only and derived from the events: a link its event does "
          "not imply is refused")
KEPT = ("event_links is append-only: DELETE is not allowed of a link its event implies; "
        "append a correction or retraction event")

PG_GUARD = """CREATE FUNCTION event_links_guard() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE r event_links; implied boolean; BEGIN IF TG_OP = 'UPDATE' THEN RAISE EXCEPTION 'event_links is append-only: UPDATE is not allowed; append a correction or retraction event'; END IF; IF TG_OP = 'INSERT' THEN r := NEW; ELSE r := OLD; END IF; SELECT EXISTS (SELECT 1 FROM events e WHERE e.position = r.position AND ((r.role = 'affects' AND COALESCE((e.payload::jsonb -> 'affects') @> to_jsonb(r.stream::text), false)) OR (r.role = 'supersedes' AND r.stream <> e.stream AND EXISTS (SELECT 1 FROM events s WHERE s.stream = r.stream AND COALESCE((e.payload::jsonb -> 'supersedes') @> to_jsonb(s.id::text), false))))) INTO implied; IF TG_OP = 'INSERT' THEN IF NOT implied THEN RAISE EXCEPTION 'event_links is append-only and derived from the events: a link its event does not imply is refused'; END IF; RETURN NEW; END IF; IF implied THEN RAISE EXCEPTION 'event_links is append-only: DELETE is not allowed of a link its event implies; append a correction or retraction event'; END IF; RETURN OLD; END $$"""  # noqa: E501

# Callable by PUBLIC by default, and each writes, locks or signals: none is a read.
PG_REVOKED = ("pg_logical_emit_message", "pg_notify", "pg_advisory_lock",
              "pg_advisory_lock_shared", "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared",
              "pg_try_advisory_lock", "pg_try_advisory_lock_shared", "pg_try_advisory_xact_lock",
              "pg_try_advisory_xact_lock_shared", "pg_advisory_unlock",
              "pg_advisory_unlock_shared", "pg_advisory_unlock_all", "lo_create", "lo_creat",
              "lo_from_bytea", "lo_put", "lo_open", "lo_write",
              "lowrite", "lo_unlink", "lo_truncate", "lo_truncate64", "txid_current",
              "pg_current_xact_id", "pg_cancel_backend", "pg_terminate_backend")
# what the writers themselves call (a writer that is no superuser needs them back)
PG_WRITERS_NEED = ("pg_advisory_xact_lock", "pg_try_advisory_xact_lock")


def _pg_privileges(verb: str) -> None:
    names = ", ".join(f"'{n}'" for n in PG_REVOKED)
    back = ", ".join(f"'{n}'" for n in PG_WRITERS_NEED)
    if verb == "REVOKE":
        body = (f"EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f.oid::regprocedure); "
                f"IF f.proname IN ({back}) THEN EXECUTE format('GRANT EXECUTE ON FUNCTION %s "
                f"TO %I', f.oid::regprocedure, current_user); END IF;")
    else:
        body = "EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f.oid::regprocedure);"
    op.execute(f"""
        DO $$ DECLARE f record; BEGIN
            FOR f IN SELECT p.oid, p.proname FROM pg_proc p
                     WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname IN ({names})
            LOOP {body} END LOOP;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'timeline: cannot {verb.lower()} EXECUTE on the locking and writing functions (not their owner); see docs/sql.md';
        END $$""")


def upgrade() -> None:
    op.add_column("projection_head", sa.Column("fold_version", sa.Integer))
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER event_links_no_delete")
        op.execute(f"CREATE TRIGGER event_links_no_delete BEFORE DELETE ON event_links "
                   f"WHEN {SQLITE_IMPLIED.format(r='OLD')} "
                   f"BEGIN SELECT RAISE(ABORT, '{KEPT}'); END")
        op.execute(f"CREATE TRIGGER event_links_no_forged_insert BEFORE INSERT ON event_links "
                   f"WHEN NOT {SQLITE_IMPLIED.format(r='NEW')} "
                   f"BEGIN SELECT RAISE(ABORT, '{FORGED}'); END")
    elif dialect == "postgresql":
        op.execute(PG_GUARD)
        op.execute("DROP TRIGGER event_links_no_change ON event_links")
        op.execute("CREATE TRIGGER event_links_no_change BEFORE INSERT OR UPDATE OR DELETE ON "
                   "event_links FOR EACH ROW EXECUTE FUNCTION event_links_guard()")
        _pg_privileges("REVOKE")
    # the projections an older fold built (and links as stored) are recomputed now, by the
    # rebuild's own code in the migration's transaction, unless the log changed behind the
    # store's back (verify names that; `timeline rebuild` then records the version)
    from timeline.projections.maintain import refold_if_stale

    if isinstance(op.get_bind(), sa.engine.Connection):  # not verify's recorder
        refold_if_stale(op.get_bind())


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER event_links_no_forged_insert")
        op.execute("DROP TRIGGER event_links_no_delete")
        op.execute("CREATE TRIGGER event_links_no_delete BEFORE DELETE ON event_links BEGIN "
                   "SELECT RAISE(ABORT, 'event_links is append-only: DELETE is not allowed; "
                   "append a correction or retraction event'); END")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER event_links_no_change ON event_links")
        op.execute("CREATE TRIGGER event_links_no_change BEFORE UPDATE OR DELETE ON event_links "
                   "FOR EACH ROW EXECUTE FUNCTION event_links_append_only()")
        op.execute("DROP FUNCTION event_links_guard()")
        _pg_privileges("GRANT")
    op.execute("ALTER TABLE projection_head DROP COLUMN fold_version")

"""Views gain `last_rate` and `confidence` (issue 13 leftover, issue 14).

`rate` is NULL while a measure is lifted, expired, withdrawn or invalidated; `last_rate` is
the rate it had then, so SQL users see the same two columns every query surface shows.
`confidence` is the weakest confidence a state rests on (`single-source`), NULL when
confirmed. v_intervals and v_state_today take them from each interval's state,
v_measures from the state after the measure's last recorded change. Views are dropped and
made again (PostgreSQL fixes a view's columns when it is created), so the reader role is
granted them again.

Revision ID: 0007
Revises: 0006
"""
import importlib.util
import types
from pathlib import Path

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ROLE = "timeline_reader"
REMADE = ("v_state_today", "v_intervals", "v_measures")  # dependants first


def _number(dialect: str, column: str, key: str) -> str:
    """A numeric JSON member, NULL when absent or not a number (never a cast error)."""
    if dialect == "postgresql":
        return (f"CASE WHEN jsonb_typeof(({column})::jsonb -> '{key}') = 'number' "
                f"THEN (({column})::jsonb ->> '{key}')::double precision END")
    return (f"CASE WHEN json_type({column}, '$.{key}') IN ('integer', 'real') "
            f"THEN json_extract({column}, '$.{key}') END")


def _text(dialect: str, column: str, key: str) -> str:
    if dialect == "postgresql":
        return f"(({column})::jsonb ->> '{key}')"
    return f"json_extract({column}, '$.{key}')"


def _grant(verb: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    to = "FROM" if verb == "REVOKE" else "TO"
    op.execute(f"""
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
                {verb} SELECT ON {', '.join(REMADE)} {to} {ROLE};
            END IF;
        END $$""")


def upgrade() -> None:
    d = op.get_bind().dialect.name
    today = "CAST(CURRENT_DATE AS TEXT)" if d == "postgresql" else "date('now')"
    for view in REMADE:
        op.execute(f"DROP VIEW {view}")
    op.execute(f"""
        CREATE VIEW v_measures AS
        SELECT stream AS measure, kind, imposer, target, scope, title,
               version AS events, first_effective, tail_date AS last_change,
               {_number(d, 'tail_state', 'last_rate')} AS last_rate,
               {_text(d, 'tail_state', 'confidence')} AS confidence
        FROM measures
    """)
    op.execute(f"""
        CREATE VIEW v_intervals AS
        SELECT i.stream AS measure, m.kind, m.imposer, m.target,
               {_text(d, 'i.state', 'scope')} AS scope,
               i.valid_from, i.valid_to, i.rate, i.status, i.legal_status,
               i.state, i.event_ids,
               {_number(d, 'i.state', 'last_rate')} AS last_rate,
               {_text(d, 'i.state', 'confidence')} AS confidence
        FROM intervals i JOIN measures m ON m.stream = i.stream
    """)
    op.execute(f"""
        CREATE VIEW v_state_today AS
        SELECT * FROM v_intervals
        WHERE valid_from <= {today} AND (valid_to IS NULL OR valid_to > {today})
    """)
    _grant("GRANT")


def downgrade() -> None:
    for view in REMADE:
        op.execute(f"DROP VIEW {view}")
    # the earlier definitions are 0003's own: replay it, minus the view kept (v_events)
    spec = importlib.util.spec_from_file_location(
        "_timeline_migration_0003", Path(__file__).with_name("0003_views.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.op = types.SimpleNamespace(
        get_bind=op.get_bind,
        execute=lambda sql: None if "CREATE VIEW v_events" in sql else op.execute(sql))
    mod.upgrade()
    _grant("GRANT")

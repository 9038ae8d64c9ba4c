"""Stable, documented SQL views for people who bring their own tools (see docs/sql.md).

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

VIEWS = ("v_state_today", "v_intervals", "v_measures", "v_events")


def _json(dialect: str, column: str, key: str) -> str:
    if dialect == "postgresql":
        return f"(({column})::jsonb ->> '{key}')"
    return f"json_extract({column}, '$.{key}')"


def upgrade() -> None:
    d = op.get_bind().dialect.name
    today = "CAST(CURRENT_DATE AS TEXT)" if d == "postgresql" else "date('now')"
    j = lambda col, key: _json(d, col, key)  # noqa: E731
    op.execute(f"""
        CREATE VIEW v_events AS
        SELECT position, id, stream, version, type, schema_version,
               effective, announced, known, recorded_at,
               {j('payload', 'title')} AS title,
               payload,
               {j('source', 'name')} AS source_name,
               {j('source', 'outlet')} AS source_outlet,
               {j('source', 'published')} AS source_published,
               {j('source', 'quote')} AS source_quote,
               {j('source', 'url')} AS source_url,
               {j('source', 'file')} AS source_file,
               {j('source', 'reference')} AS source_reference,
               {j('source', 'document')} AS source_document,
               source,
               prev_hash, hash
        FROM events
    """)
    op.execute("""
        CREATE VIEW v_measures AS
        SELECT stream AS measure, kind, imposer, target, scope, title,
               version AS events, first_effective, tail_date AS last_change
        FROM measures
    """)
    op.execute(f"""
        CREATE VIEW v_intervals AS
        SELECT i.stream AS measure, m.kind, m.imposer, m.target,
               {j('i.state', 'scope')} AS scope,
               i.valid_from, i.valid_to, i.rate, i.status, i.legal_status,
               i.state, i.event_ids
        FROM intervals i JOIN measures m ON m.stream = i.stream
    """)
    op.execute(f"""
        CREATE VIEW v_state_today AS
        SELECT * FROM v_intervals
        WHERE valid_from <= {today} AND (valid_to IS NULL OR valid_to > {today})
    """)


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")

"""PostgreSQL: the least-privilege role `timeline sql` runs user statements as.

`timeline_reader` may log in, read the four documented views of this schema and nothing
else: no table, no server file, no program (it is no superuser and in none of the
pg_*_server_* roles). Roles belong to the whole server, so the role is created once and
shared by every timeline database on it; each migration grants it this schema's views.
A migrating user without the right to create roles skips the role (with a notice);
`timeline sql` then refuses to run as a privileged user (see timeline/store/readonly_sql.py).
SQLite needs nothing here: its read-only connection is the file opened `mode=ro`.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ROLE = "timeline_reader"
VIEWS = ("v_events", "v_measures", "v_intervals", "v_state_today")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # two migrations at once may both try to create it: the loser just uses it
    op.execute(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
                    NOREPLICATION NOBYPASSRLS;
            END IF;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'timeline: cannot create role {ROLE}; timeline sql will refuse to run as a privileged user';
        END $$""")
    op.execute(f"""
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
                EXECUTE format('GRANT USAGE ON SCHEMA %I TO {ROLE}', current_schema());
                GRANT SELECT ON {', '.join(VIEWS)} TO {ROLE};
            END IF;
        END $$""")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # the role itself stays: other timeline databases on the server may use it
    op.execute(f"""
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
                REVOKE SELECT ON {', '.join(VIEWS)} FROM {ROLE};
                EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM {ROLE}', current_schema());
            END IF;
        END $$""")

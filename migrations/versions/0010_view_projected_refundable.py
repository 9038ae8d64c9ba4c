"""Views gain `projected`, `refundable`, `announced_rate` and `threatened_rate` (issue 23).

SQL users must read what the query language says of a state: whether it rests on a change
after the knowledge horizon (`projected`: it starts after the latest `known` date of the
log, or the latest day a `reviewed` event checked the sources through; in
`v_state_today` also when today itself is past the horizon), whether the rate it collects
was collected under an authority that ends invalidated (`refundable`), and what an
announced or threatened measure would charge (`announced_rate`, `threatened_rate`: the
fold keeps such a rate out of `rate`). Views are dropped and made again, so the reader
role is granted them again.

Revision ID: 0010
Revises: 0009
"""
import importlib.util
from pathlib import Path

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ROLE = "timeline_reader"
REMADE = ("v_state_today", "v_intervals", "v_measures")  # dependants first


def _migration(name: str):
    spec = importlib.util.spec_from_file_location(f"_timeline_migration_{name[:4]}",
                                                  Path(__file__).with_name(name))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.op = op
    return mod


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


HORIZON = """(SELECT MAX(d) FROM (
                 SELECT MAX(known) AS d FROM events WHERE type <> 'reviewed'
                 UNION ALL SELECT MAX(effective) FROM events WHERE type = 'reviewed') h)"""


def upgrade() -> None:
    d = op.get_bind().dialect.name
    v7 = _migration("0007_view_last_rate_confidence.py")
    num, txt = v7._number, v7._text
    today = "CAST(CURRENT_DATE AS TEXT)" if d == "postgresql" else "date('now')"
    for view in REMADE:
        op.execute(f"DROP VIEW {view}")
    op.execute(f"""
        CREATE VIEW v_measures AS
        SELECT stream AS measure, kind, imposer, target, scope, title,
               version AS events, first_effective, tail_date AS last_change,
               {num(d, 'tail_state', 'last_rate')} AS last_rate,
               {txt(d, 'tail_state', 'confidence')} AS confidence,
               {num(d, 'tail_state', 'announced_rate')} AS announced_rate,
               {num(d, 'tail_state', 'threatened_rate')} AS threatened_rate
        FROM measures
    """)
    op.execute(f"""
        CREATE VIEW v_intervals AS
        SELECT i.stream AS measure, m.kind, m.imposer, m.target,
               {txt(d, 'i.state', 'scope')} AS scope,
               i.valid_from, i.valid_to, i.rate, i.status, i.legal_status,
               i.state, i.event_ids,
               {num(d, 'i.state', 'last_rate')} AS last_rate,
               {txt(d, 'i.state', 'confidence')} AS confidence,
               {num(d, 'i.state', 'announced_rate')} AS announced_rate,
               {num(d, 'i.state', 'threatened_rate')} AS threatened_rate,
               (m.kind = 'tariff' AND i.rate IS NOT NULL AND i.status = 'in_force'
                AND EXISTS (SELECT 1 FROM intervals e WHERE e.stream = i.stream
                            AND e.valid_to IS NULL AND e.legal_status = 'invalidated'))
                   AS refundable,
               (i.valid_from > {HORIZON}) AS projected
        FROM intervals i JOIN measures m ON m.stream = i.stream
    """)
    op.execute(f"""
        CREATE VIEW v_state_today AS
        SELECT measure, kind, imposer, target, scope, valid_from, valid_to, rate, status,
               legal_status, state, event_ids, last_rate, confidence, announced_rate,
               threatened_rate, refundable,
               (projected OR {today} > {HORIZON}) AS projected
        FROM v_intervals
        WHERE valid_from <= {today} AND (valid_to IS NULL OR valid_to > {today})
    """)
    _grant("GRANT")


def downgrade() -> None:
    for view in REMADE:
        op.execute(f"DROP VIEW {view}")
    v7 = _migration("0007_view_last_rate_confidence.py")
    # 0007's upgrade drops the views first: make placeholders it can drop
    for view in REMADE[::-1]:
        op.execute(f"CREATE VIEW {view} AS SELECT 1 AS placeholder")
    v7.upgrade()

"""`v_product_scopes`: the HTS lines each measure, exemption and product group names, per
interval of valid time; `v_product_layers`: for each product group's code, the lines of
tariffs and exemptions that name it, per interval (docs/sql.md, docs/products.md).

One row per (interval, HTS prefix): `role` is `covers` (a tariff's `hts` at the interval's
rate, or an `hts_rates` line at its own rate), `excludes` (`hts_excluded`), `exempts` (an
exemption's lines) or `names` (a product group's codes). The view reads the intervals
projection, so it is as known now; `known on` answers come from the query language.

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ROLE = "timeline_reader"
VIEW = "v_product_scopes"
LAYERS = "v_product_layers"
# a group's code under a line: prefixes compared without their dots (substr, not LIKE: a
# literal % would be a placeholder where verify remakes the view through psycopg)
LAYERS_SQL = f"""CREATE VIEW {LAYERS} AS
SELECT g.measure AS product, g.hts AS code, c.measure, c.kind, c.role, c.hts AS line,
       c.rate, c.status, c.valid_from, c.valid_to
FROM {VIEW} g JOIN {VIEW} c
  ON c.role <> 'names' AND substr(replace(g.hts, '.', ''), 1, length(replace(c.hts, '.', '')))
     = replace(c.hts, '.', '')
WHERE g.role = 'names'"""


def _parts(dialect: str) -> list[str]:
    cols = ("i.stream AS measure, m.kind, m.imposer, m.target, i.valid_from, i.valid_to, "
            "i.status")
    role = ("CASE m.kind WHEN 'exemption' THEN 'exempts' WHEN 'product' THEN 'names' "
            "ELSE 'covers' END")
    src = "intervals i JOIN measures m ON m.stream = i.stream"
    if dialect == "postgresql":
        state = "(i.state)::jsonb"
        return [
            f"SELECT {cols}, j.value AS hts, i.rate AS rate, {role} AS role FROM {src} "
            f"CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof({state} -> "
            f"'hts') = 'array' THEN {state} -> 'hts' ELSE '[]'::jsonb END) AS j(value)",
            f"SELECT {cols}, j.key AS hts, CASE WHEN jsonb_typeof(j.value) = 'number' THEN "
            f"(j.value #>> '{{}}')::double precision END AS rate, {role} AS role FROM {src} "
            f"CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof({state} -> 'hts_rates') = "
            f"'object' THEN {state} -> 'hts_rates' ELSE '{{}}'::jsonb END) AS j(key, value)",
            f"SELECT {cols}, j.value AS hts, NULL AS rate, 'excludes' AS role FROM {src} "
            f"CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof({state} -> "
            f"'hts_excluded') = 'array' THEN {state} -> 'hts_excluded' ELSE '[]'::jsonb END) "
            f"AS j(value)",
        ]
    return [
        f"SELECT {cols}, j.value AS hts, i.rate AS rate, {role} AS role FROM {src}, "
        f"json_each(CASE WHEN json_type(i.state, '$.hts') = 'array' THEN "
        f"json_extract(i.state, '$.hts') ELSE '[]' END) j",
        f"SELECT {cols}, j.key AS hts, CASE WHEN j.type IN ('integer', 'real') THEN j.value "
        f"END AS rate, {role} AS role FROM {src}, json_each(CASE WHEN json_type(i.state, "
        f"'$.hts_rates') = 'object' THEN json_extract(i.state, '$.hts_rates') ELSE '{{}}' "
        f"END) j",
        f"SELECT {cols}, j.value AS hts, NULL AS rate, 'excludes' AS role FROM {src}, "
        f"json_each(CASE WHEN json_type(i.state, '$.hts_excluded') = 'array' THEN "
        f"json_extract(i.state, '$.hts_excluded') ELSE '[]' END) j",
    ]


def upgrade() -> None:
    d = op.get_bind().dialect.name
    op.execute(f"CREATE VIEW {VIEW} AS\n" + "\nUNION ALL\n".join(_parts(d)))
    op.execute(LAYERS_SQL)
    if d == "postgresql":
        op.execute(f"""
            DO $$ BEGIN
                IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
                    GRANT SELECT ON {VIEW}, {LAYERS} TO {ROLE};
                END IF;
            END $$""")


def downgrade() -> None:
    op.execute(f"DROP VIEW {LAYERS}")
    op.execute(f"DROP VIEW {VIEW}")

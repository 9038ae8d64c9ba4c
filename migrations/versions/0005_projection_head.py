"""The log head the projections reflect: one row, written in the same transaction as them.

Every read compares it with the log's own head (two indexed look-ups), so a log changed
behind the store's back (rows appended, the tail truncated or the last row rewritten) is
refused with a pointer to `timeline verify` and `timeline rebuild` instead of answered from
projections that no longer describe it. An existing database records its head as it is.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projection_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_projection_head_one_row"),
    )
    op.execute("INSERT INTO projection_head (id, position, hash) "
               "SELECT 1, COALESCE(MAX(position), 0), COALESCE((SELECT hash FROM events "
               "ORDER BY position DESC LIMIT 1), '" + "0" * 64 + "') FROM events")


def downgrade() -> None:
    op.drop_table("projection_head")

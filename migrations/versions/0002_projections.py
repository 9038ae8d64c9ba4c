"""Projection tables: valid-time intervals per stream and the measure catalogue.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intervals",
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("valid_from", sa.String(10), primary_key=True),
        sa.Column("valid_to", sa.String(10)),
        sa.Column("rate", sa.Float),
        sa.Column("status", sa.String(32)),
        sa.Column("legal_status", sa.String(32)),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("event_ids", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "measures",
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(32)),
        sa.Column("imposer", sa.String(32)),
        sa.Column("target", sa.String(32)),
        sa.Column("scope", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("first_effective", sa.String(10)),
        sa.Column("tail_date", sa.String(10)),
        sa.Column("tail_state", sa.Text),
        sa.Column("pending", sa.Integer, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("measures")
    op.drop_table("intervals")

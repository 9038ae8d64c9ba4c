"""Table definitions (SQLAlchemy Core) for reading and writing; Alembic owns their creation."""
from __future__ import annotations

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

# the revisions live where checking them needs neither SQLAlchemy nor Alembic
from timeline.log.revisions import HEAD_REVISION, REVISIONS  # noqa: F401

metadata = MetaData()

events = Table(
    "events", metadata,
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("id", String(36), nullable=False, unique=True),
    Column("stream", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(32), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("effective", String(10), nullable=False),
    Column("announced", String(10)),
    Column("known", String(10), nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# Cross-stream references: the measures a ruling affects, the streams a retraction reaches.
event_links = Table(
    "event_links", metadata,
    Column("stream", String(200), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("role", String(16), nullable=False),
)

intervals = Table(
    "intervals", metadata,
    Column("stream", String(200), primary_key=True),
    Column("valid_from", String(10), primary_key=True),
    Column("valid_to", String(10)),
    Column("rate", Float),
    Column("status", String(32)),
    Column("legal_status", String(32)),
    Column("state", Text, nullable=False),
    Column("event_ids", Text, nullable=False),
)

measures = Table(
    "measures", metadata,
    Column("stream", String(200), primary_key=True),
    Column("kind", String(32)),
    Column("imposer", String(32)),
    Column("target", String(32)),
    Column("scope", Text),
    Column("title", Text),
    Column("version", Integer, nullable=False),
    Column("first_effective", String(10)),
    Column("tail_date", String(10)),
    Column("tail_state", Text),
    Column("pending", Integer, nullable=False),
    Column("known_through", String(10)),
)

# `known on` by index: each interval of a stream with the knowledge days over which it held
# (timeline/projections/knowledge.py); known_to NULL while it still holds.
known_intervals = Table(
    "known_intervals", metadata,
    Column("stream", String(200), primary_key=True),
    Column("valid_from", String(10), primary_key=True),
    Column("known_from", String(10), primary_key=True),
    Column("known_to", String(10)),
    Column("state", Text, nullable=False),
    Column("event_ids", Text, nullable=False),
    sqlite_with_rowid=False,
)

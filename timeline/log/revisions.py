"""Every schema revision this code knows, without importing SQLAlchemy or Alembic.

Kept apart from the table definitions so that a read (the CLI's `query`) can check a
database's revision on the driver alone; a test keeps it equal to migrations/versions.
"""

# oldest first
REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009",
             "0010", "0011")
HEAD_REVISION = REVISIONS[-1]

"""Schema management: Alembic upgrades/downgrades and a cheap revision check.

The check (`current_revision`, `check`) runs on a SQLAlchemy connection or on the read
path's driver connection (`timeline.log.driver`), so importing this module imports
neither SQLAlchemy nor Alembic."""
from __future__ import annotations

from typing import TYPE_CHECKING

from timeline.errors import SchemaError
from timeline.log.revisions import HEAD_REVISION, REVISIONS

if TYPE_CHECKING:  # the check below runs on the driver alone: no SQLAlchemy at import
    from sqlalchemy.engine import Connection, Engine


def _config(connection: Connection):
    from alembic.config import Config

    from timeline.resources import migrations_path

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_path()))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run migrations up to `revision`."""
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(_config(conn), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Run migrations down to `revision`."""
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(_config(conn), revision)


def script_revisions() -> list[str]:
    """Revisions present in migrations/versions, oldest first."""
    from alembic.script import ScriptDirectory

    from timeline.resources import migrations_path

    script = ScriptDirectory(str(migrations_path()))
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def current_revision(conn: Connection) -> str | None:
    """The schema revision recorded in the database, or None for an empty database."""
    # asked directly: SQLAlchemy's inspector costs a few ms of every command's start-up
    if conn.dialect.name == "sqlite":
        exists = conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                      "name = 'alembic_version'").first() is not None
    elif conn.dialect.name == "postgresql":
        exists = conn.exec_driver_sql("SELECT to_regclass('alembic_version')").scalar() \
            is not None
    else:
        from sqlalchemy import inspect

        exists = inspect(conn).has_table("alembic_version")
    if not exists:
        return None
    return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def check_known(rev: str, where: str) -> None:
    """Fail clearly when the database's revision is newer than (or foreign to) this code."""
    if rev not in REVISIONS:
        raise SchemaError(f"{where} is at schema revision {rev!r}, which this version of "
                          f"timeline does not know (newest known: {HEAD_REVISION}); upgrade "
                          f"timeline")


def check(conn: Connection, where: str) -> str:
    """Fail clearly unless the database is at a revision this code knows; return it."""
    rev = current_revision(conn)
    if rev is None:
        raise SchemaError(f"{where} has no timeline schema; run `timeline init --db {where}`")
    if rev not in REVISIONS:
        raise SchemaError(f"{where} is at schema revision {rev!r}, which this version of "
                          f"timeline does not know (newest known: {HEAD_REVISION}); upgrade "
                          f"timeline")
    if rev != HEAD_REVISION:
        raise SchemaError(f"{where} is at schema revision {rev}; run `timeline init --db "
                          f"{where}` to upgrade it to {HEAD_REVISION}")
    return rev

"""The triggers and views a reader trusts, as the migration files themselves make them.

`verify` compares the database's definitions with these; they are recorded by running the
migrations' `upgrade()` against a fake `op`, so there is one definition and verify cannot
drift from what the migrations made.
"""
from __future__ import annotations

from typing import Any

__all__ = ["expected_definitions", "squash"]


def squash(sql: str | None) -> str:
    return " ".join((sql or "").split())


_DEFINITIONS: dict[str, dict] = {}


def expected_definitions(dialect: str) -> dict:
    """The triggers and views as migrations 0001, 0003, 0007, 0009, 0010 and 0011 make them
    on `dialect`.

    Taken from the migration files themselves (run against a recorder, not a database), so
    there is one definition and verify cannot drift from what the migrations made.
    """
    if dialect not in _DEFINITIONS:
        import importlib.util
        import types

        from timeline.resources import migrations_path

        recorded: list[str] = []
        bind = types.SimpleNamespace(dialect=types.SimpleNamespace(name=dialect))
        op = types.SimpleNamespace(get_bind=lambda: bind, execute=recorded.append,
                                   create_table=lambda *a, **k: None,
                                   add_column=lambda *a, **k: None)
        # later migrations that remake a view replace the earlier definition
        for fname in ("0001_event_log.py", "0003_views.py",
                      "0007_view_last_rate_confidence.py", "0009_product_scopes_view.py",
                      "0010_view_projected_refundable.py",
                      "0011_derived_links_fold_version.py"):
            spec = importlib.util.spec_from_file_location(
                f"_timeline_migration_{fname[:4]}", migrations_path() / "versions" / fname)
            mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]  # a file
            spec.loader.exec_module(mod)  # type: ignore[union-attr]  # a .py file has a loader
            mod.op = op  # type: ignore[attr-defined]  # the fake `op` the migration calls
            mod.upgrade()
        triggers: dict[str, Any]
        views: dict[str, str]
        bodies: dict[str, str]
        triggers, views, bodies = {}, {}, {}
        for sql in recorded:
            words = sql.split()
            if words[:2] == ["CREATE", "TRIGGER"] and dialect == "sqlite":
                triggers[words[2]] = sql
            elif words[:2] == ["CREATE", "FUNCTION"]:
                name = words[2].split("(")[0]
                bodies[name] = sql.split("$$")[1]
            elif words[:2] == ["CREATE", "TRIGGER"]:
                table, func_name = words[words.index("ON") + 1], words[-1].split("(")[0]
                # pg_trigger.tgtype bits: ROW 1, BEFORE 2, INSERT 4, DELETE 8, UPDATE 16,
                # TRUNCATE 32
                tgtype = (("ROW" in words) * 1 + ("BEFORE" in words) * 2 + ("INSERT" in words) * 4
                          + ("DELETE" in words) * 8 + ("UPDATE" in words) * 16
                          + ("TRUNCATE" in words) * 32)
                triggers[words[2]] = (table, tgtype, func_name, func_name)
            elif words[:2] == ["CREATE", "VIEW"]:
                views[words[2]] = sql.strip()
        for name, (table, tgtype, func_name, _) in list(triggers.items()) \
                if dialect != "sqlite" else ():
            triggers[name] = (table, tgtype, func_name, bodies[func_name])
        _DEFINITIONS[dialect] = {"triggers": triggers, "views": views}
    return _DEFINITIONS[dialect]

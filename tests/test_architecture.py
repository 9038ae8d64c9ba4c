"""The layout stays true: imports go down the layers, never up, and never in a circle.

Layers, bottom to top (README, Development):
  base        timeline.errors, timeline.resources, timeline.files
  log         timeline.log.*          events, validation, hash chain, schema, database glue
  projections timeline.projections.*  fold, maintenance, the Reader (every read query)
  store       timeline.store.*        the Store (the one writer) and guarded user SQL
  query       timeline.query.*        syntax tree, parser, dates, planner, explain
  api         timeline.api, timeline.snapshot, timeline  the public Python API
  surfaces    timeline.surfaces.*     CLI, REPL, SQL access, export, report, charts, copy

Imports are read with `ast` from the source (those inside functions too), so a cycle or an
upward import cannot hide in a function body.

The API is the surfaces' front door (issue 27): a surface imports the API (and the syntax
tree, for completion and highlighting, and the base modules), never the store, the
projections, the log or the rest of the query layer, and never reaches a Timeline's store.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "timeline"
LAYERS = ["base", "log", "projections", "store", "query", "api", "surfaces"]
RANK = {name: i for i, name in enumerate(LAYERS)}
# Outside the log and projection layers no module talks SQL, except the guarded runner of
# the user's own statements (`timeline sql`), which is in the store layer by design.
SQL_LIBRARIES = ("sqlalchemy", "sqlite3", "psycopg")
SQL_ALLOWED_LAYERS = {"log", "projections", "store"}


def layer_of(module: str) -> str:
    """The layer a `timeline...` module belongs to."""
    parts = module.split(".")
    if parts == ["timeline"] or parts[1:2] in (["api"], ["snapshot"]) or \
            parts[1:2] == ["__main__"]:
        return "api" if parts[1:2] != ["__main__"] else "surfaces"
    if parts[1] in ("errors", "resources", "files"):
        return "base"
    if parts[1] in RANK:
        return parts[1]
    raise AssertionError(f"{module} is in no layer: add it to a subpackage or to LAYERS")


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """Dotted name of a source file under the package root."""
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The package modules (and external top-level packages) `path` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from timeline.log import db` imports the module timeline.log.db
            subs = {f"{mod}.{a.name}" for a in node.names} & known
            found.update(subs or {mod})
    return found


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the modules it imports (package-internal and external) for a source tree."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    out = {}
    for name, path in files.items():
        deps = set()
        for mod in imports_of(path, name, known):
            # an import of a package's submodule also runs the package: keep the deepest
            # known module named
            while mod not in known and "." in mod and mod.split(".")[0] == root.name:
                mod = mod.rpartition(".")[0]
            deps.add(mod)
        out[name] = deps - {name}
    return out


def upward(g: dict[str, set[str]]) -> list[str]:
    """Imports that go up the layers."""
    bad = []
    for mod, deps in sorted(g.items()):
        for dep in sorted(deps):
            if dep.split(".")[0] != "timeline" or dep == "timeline" and mod.startswith(
                    "timeline.surfaces"):
                continue
            if dep == "timeline" and layer_of(mod) != "surfaces":
                bad.append(f"{mod} ({layer_of(mod)}) imports the package root (api)")
            elif RANK[layer_of(dep)] > RANK[layer_of(mod)]:
                bad.append(f"{mod} ({layer_of(mod)}) imports {dep} ({layer_of(dep)})")
    return bad


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle among the package's modules (one per strongly connected set)."""
    internal = {m: {d for d in deps if d in g and d != "timeline"} for m, deps in g.items()}
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(internal[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(internal):
        if v not in index:
            visit(v)
    return found


def sql_outside(g: dict[str, set[str]]) -> list[str]:
    """Modules above the store that import a SQL library."""
    return [f"{m} imports {d}" for m, deps in sorted(g.items()) for d in sorted(deps)
            if d.split(".")[0] in SQL_LIBRARIES and layer_of(m) not in SQL_ALLOWED_LAYERS]


WRITE_MODULE = "timeline.projections.maintain"
READ_SIDE = "timeline.projections.reader"


def reaches(g: dict[str, set[str]], start: str) -> set[str]:
    """Every package module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for dep in g.get(todo.pop(), ()):
            if dep in g and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


# What a surface may import from the package besides other surfaces: the API, the syntax
# tree (completion and highlighting name its nodes) and the base modules.
SURFACE_DOORS = frozenset({"timeline", "timeline.api", "timeline.query.syntax",
                           "timeline.errors", "timeline.files", "timeline.resources"})
# Attributes behind the API's public methods: a surface never touches them.
PRIVATE_PARTS = frozenset({"store", "_store", "_reader"})


def front_door_breaches(g: dict[str, set[str]], root: Path = PACKAGE) -> list[str]:
    """Surface modules that import past the API, and surface code that reaches for a
    Timeline's store (or a snapshot's reader) by attribute."""
    bad = [f"{mod} imports {dep}" for mod, deps in sorted(g.items())
           if mod.startswith("timeline.surfaces") for dep in sorted(deps)
           if dep.split(".")[0] == "timeline" and dep not in SURFACE_DOORS
           and not dep.startswith("timeline.surfaces")]
    for path in sorted((root / "surfaces").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        bad += [f"{module_name(path, root)}:{node.lineno} reaches .{node.attr}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and node.attr in PRIVATE_PARTS]
    return bad


def test_the_surfaces_come_in_through_the_api():
    assert front_door_breaches(graph()) == []


def test_the_front_door_check_catches_a_surface_going_round_the_api(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "",
        "api.py": "",
        "errors.py": "",
        "store/__init__.py": "",
        "store/store.py": "",
        "query/__init__.py": "",
        "query/syntax.py": "",
        "query/execute.py": "",
        "surfaces/__init__.py": "",
        "surfaces/cli.py": "from timeline import api, errors\nfrom timeline.query import syntax\n"
                           "from timeline.surfaces import report\n",
        "surfaces/report.py": "def f(tl):\n    from timeline.query.execute import run\n"
                              "    with tl.store.reading() as r:\n        return r\n",
        "surfaces/serve/__init__.py": "",
        "surfaces/serve/reads.py": "import timeline.store.store\n\n\n"
                                   "def g(tl):\n    return tl._store, tl.where\n",
    })
    assert front_door_breaches(graph(root), root) == [
        "timeline.surfaces.report imports timeline.query.execute",
        "timeline.surfaces.serve.reads imports timeline.store.store",
        "timeline.surfaces.report:3 reaches .store",
        "timeline.surfaces.serve.reads:5 reaches ._store",
    ]


def test_the_read_side_never_imports_the_write_module():
    """The Reader, and all it imports, reads without loading projection maintenance: the
    driver helpers live in timeline.log.db, the events a fold takes in projections.touching."""
    assert WRITE_MODULE not in reaches(graph(), READ_SIDE)


def test_reaches_sees_an_import_through_another_module(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "",
        "projections/__init__.py": "",
        "projections/reader.py": "from timeline.projections import touching\n",
        "projections/touching.py": "def f():\n    from timeline.projections import maintain\n",
        "projections/maintain.py": "",
    })
    assert WRITE_MODULE in reaches(graph(root), READ_SIDE)


def test_no_upward_imports():
    assert upward(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_sql_stays_in_the_lower_layers():
    assert sql_outside(graph()) == []


def test_every_module_is_in_a_layer():
    for mod in graph():
        assert layer_of(mod) in RANK


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "timeline"
    for rel, src in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(src)
    return root


def test_the_checks_catch_a_cycle_and_an_upward_import(tmp_path):
    """A synthetic package with both faults: the same functions must report them."""
    root = _tree(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "log/__init__.py": "",
        "log/events.py": "from timeline.query import planner\n",       # log -> query: up
        "query/__init__.py": "",
        "query/planner.py": "def f():\n    from . import explain\n",  # cycle, in a function
        "query/explain.py": "from timeline.query.planner import f\n",
        "surfaces/__init__.py": "",
        "surfaces/cli.py": "import sqlalchemy\nfrom timeline.log import events\n",
        "api.py": "import sqlite3\n",
    })
    g = graph(root)
    assert upward(g) == ["timeline.log.events (log) imports timeline.query.planner (query)"]
    assert cycles(g) == [["timeline.query.explain", "timeline.query.planner"]]
    assert sql_outside(g) == ["timeline.api imports sqlite3",
                              "timeline.surfaces.cli imports sqlalchemy"]


def test_a_clean_synthetic_package_passes(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "",
        "log/__init__.py": "",
        "log/events.py": "from timeline import errors\n",
        "errors.py": "",
        "surfaces/__init__.py": "",
        "surfaces/cli.py": "from timeline.log.events import x\nfrom timeline import api\n",
        "api.py": "from timeline.log import events\n",
    })
    g = graph(root)
    assert (upward(g), cycles(g), sql_outside(g)) == ([], [], [])


@pytest.mark.parametrize("module", ["timeline.surfaces.cli", "timeline.store.store"])
def test_layer_names_come_from_folders(module):
    assert layer_of(module) == module.split(".")[1]


@pytest.mark.parametrize("module", ["timeline", "timeline.api", "timeline.snapshot"])
def test_the_api_layer_is_the_package_root_and_its_two_modules(module):
    assert layer_of(module) == "api"

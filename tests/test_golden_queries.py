"""Golden answers from the bundled data, driven by tests/golden/queries.toml."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from timeline.store.store import Store

from .backends import BACKENDS, PgSession
from .conftest import run_cli

CASES = tomllib.loads((Path(__file__).parent / "golden" / "queries.toml").read_text())["case"]


MISSING = "__missing__"  # an expected value that says: no such key or index


def lookup(data, path: str):
    for part in path.split("."):
        try:
            data = data[int(part)] if isinstance(data, list) else data[part]
        except (KeyError, IndexError, TypeError):
            return MISSING
    return data


@pytest.fixture(scope="module", params=BACKENDS)
def golden_db(request, _seeded_template):
    """One seeded database per backend for all the cases (queries never write)."""
    if request.param == "sqlite":
        return str(_seeded_template)
    url = PgSession.get().new_url()
    Store.create(url, seeds=True).close()
    return url


@pytest.mark.parametrize("case", CASES, ids=[c["query"] for c in CASES])
def test_golden(golden_db, case):
    r = run_cli("query", "--db", golden_db, "--format", "json", case["query"])
    if "error" in case:
        assert r.returncode == 1 and case["error"] in r.stderr
        return
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["query"] == case["query"]
    for path, want in case["expect"].items():
        assert lookup(answer, path) == want, path

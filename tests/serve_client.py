"""The `timeline serve` app in the test process: a Starlette TestClient over a read-only
Timeline, on each backend (the `backend` / `make_db` fixtures of tests/backends.py).

Skips the module that imports it when the `[serve]` extra (or httpx) is not installed.
"""
from __future__ import annotations

import datetime as dt
import warnings

import pytest

for _name in ("starlette", "jinja2", "uvicorn", "httpx"):
    pytest.importorskip(_name, reason=f"{_name} is needed: pip install '.[test]' (or [serve])")

with warnings.catch_warnings():  # newer Starlette asks for httpx2; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import timeline  # noqa: E402 -- after the importorskip above, on purpose
from timeline.surfaces.serve.app import make_app  # noqa: E402

TODAY = dt.date(2026, 1, 1)  # what "today" means on the pages under test


def client(url: str, **options) -> tuple[TestClient, timeline.Timeline]:
    """A TestClient over the database at `url`, opened read-only with a 30 s timeout."""
    tl = timeline.open(url, readonly=True, timeout=30)
    options.setdefault("today", TODAY)
    return TestClient(make_app(tl, **options)), tl

"""docs/guarantees.md names the test that proves each promise: every name it gives exists.

A renamed or deleted test would otherwise leave a promise that cites no proof.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def missing_tests(doc: str, tests: dict[str, str]) -> list[str]:
    """Test names (or `name_*` prefixes) the doc cites that no test file defines."""
    defined = {name for text in tests.values() for name in re.findall(r"def (test_\w+)", text)}
    out = []
    for name, star in re.findall(r"\b(test_\w+)(\*?)", doc):
        if name in tests:  # a test file named by its stem
            continue
        if star and any(d.startswith(name) for d in defined):
            continue
        if name not in defined:
            out.append(name)
    return sorted(set(out))


def test_every_test_the_guarantees_cite_exists():
    tests = {p.stem: p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py")}
    doc = (ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")
    assert missing_tests(doc, tests) == []


def test_the_check_finds_a_missing_test():
    tests = {"test_a": "def test_one():\n    pass\n"}
    assert missing_tests("`test_one`, `test_two`, `test_on*`, `test_x_*`, `test_a`", tests) \
        == ["test_two", "test_x_"]

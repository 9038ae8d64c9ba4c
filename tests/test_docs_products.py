"""docs/products.md: every example runs on the bundled data and prints exactly what the doc
shows (run in-process through the CLI's own entry point)."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from timeline.surfaces import cli

DOC = (Path(__file__).resolve().parent.parent / "docs" / "products.md").read_text("utf-8")
BLOCK = r"((?:(?!```).)*?)"
PAIRS = re.findall(rf"```query\n{BLOCK}\n```\n\n```text\n{BLOCK}\n```", DOC, re.S)


def test_the_doc_shows_every_product_form():
    starts = {" ".join(q.split()[:2]) for q, _ in PAIRS}
    assert {"tariff on", "history of", "first date", "total tariff", "products where"} <= starts
    assert len(PAIRS) >= 10


@pytest.mark.parametrize("query,shown", PAIRS, ids=[q for q, _ in PAIRS])
def test_example_output_matches_the_doc(seeded_db, query, shown):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["query", "--db", str(seeded_db), query])
    assert code == 0, err.getvalue()
    assert out.getvalue().rstrip("\n") == shown

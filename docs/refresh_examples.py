"""Rewrite the output block under every example query of a doc with what the CLI prints now.

Usage: python docs/refresh_examples.py docs/query-language.md [docs/products.md …]

The docs' tests (tests/test_docs_*.py) check that each ```query block is followed by the
```text block the bundled data prints; after a change of data or semantics, run this, then
read the diff: every changed answer must be one the change meant to make.
"""
from __future__ import annotations

import contextlib
import io
import re
import sys
import tempfile
from pathlib import Path

from timeline.surfaces import cli

BLOCK = r"((?:(?!```).)*?)"
PAIR = re.compile(rf"```query\n{BLOCK}\n```\n\n```text\n{BLOCK}\n```", re.S)


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def refresh(doc: Path, db: str) -> int:
    """Rewrite `doc`'s example outputs from `db`; returns how many changed."""
    text = doc.read_text(encoding="utf-8")
    changed = 0

    def one(m: re.Match) -> str:
        nonlocal changed
        query, shown = m.group(1), m.group(2)
        code, out, err = _run(["query", "--db", db, query])
        got = (err if shown.startswith("error at line") else out).rstrip("\n")
        if code not in (0, 1):
            raise SystemExit(f"{doc}: {query!r} exited {code}: {err}")
        changed += got != shown
        return f"```query\n{query}\n```\n\n```text\n{got}\n```"

    doc.write_text(PAIR.sub(one, text), encoding="utf-8")
    return changed


def main(argv: list[str]) -> int:
    """Refresh each doc named in `argv` from a fresh database of the bundled seeds."""
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "docs.db")
        code, _, err = _run(["init", "--db", db])
        if code:
            print(err, file=sys.stderr)
            return code
        for name in argv:
            print(f"{name}: {refresh(Path(name), db)} example(s) changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

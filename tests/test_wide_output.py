"""Wide answers in a terminal: tables fit the width, rows expand, JSON and CSV stay whole."""
from __future__ import annotations

import json

import pytest

from timeline.surfaces.output import (MIN_CELL, expanded_rows, fitted_widths, grid, render_rows,
                                      table, terminal_width)

from .conftest import run_cli

HISTORY = "history of us.tariff.ieepa-reciprocal.cn from 2025-04-01 to 2025-06-30"
WIDE_SQL = "SELECT * FROM v_events ORDER BY position LIMIT 3"


def _longest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def _records(text: str) -> list[dict]:
    """Expanded output read back: a dict per record, continuation lines joined."""
    out: list[dict] = []
    key = None
    for line in text.splitlines():
        if line.startswith("-[ RECORD"):
            out.append({})
        elif out and " | " in line or (out and line.rstrip().endswith(" |")):
            k, _, v = line.partition(" |")
            v = v[1:] if v.startswith(" ") else v
            if k.strip():
                key = k.strip()
                out[-1][key] = v
            else:
                out[-1][key] += v
    return out


def test_a_table_is_cut_to_the_width_longest_columns_first():
    cols = ["id", "short", "long"]
    rows = [("a1", "yes", "x" * 200), ("a2", "no", "y" * 150)]
    out = table(cols, rows, width=60)
    assert _longest(out) <= 60
    lines = out.splitlines()
    assert lines[2].startswith("a1  yes  ") and lines[2].endswith("…")  # short ones kept whole
    assert "x" * 40 in lines[2]  # the long column got the room that is left


def test_a_table_that_fits_is_unchanged_and_never_padded_wider():
    cols, rows = ["a", "b"], [("1", "two")]
    assert table(cols, rows, width=200) == grid(cols, rows)
    assert fitted_widths(cols, rows, 200) == [1, 3]


def test_a_row_that_cannot_fit_is_expanded_not_mangled():
    cols = [f"column_{i}" for i in range(12)]
    rows = [tuple(f"value-{i}-" + "z" * 30 for i in range(12))]
    assert fitted_widths(cols, rows, 80) is None  # 12 columns of >= 10 chars cannot fit 80
    out = table(cols, rows, width=80)
    assert out.startswith("-[ RECORD 1 ]")
    assert "column_11 | value-11-" + "z" * 30 in out  # whole, nothing cut
    assert _longest(out) <= 80
    # off: forced into a grid anyway, every column at its floor
    forced = table(cols, rows, width=80, expanded="off")
    assert "RECORD" not in forced and "value-0-z…" in forced


def test_expanded_wraps_long_values_without_losing_characters():
    value = "word " * 60
    out = expanded_rows(["k", "long"], [("1", value)], width=40)
    assert _longest(out) <= 40
    # only the blanks at the line breaks go
    assert "".join(_records(out)[0]["long"].split()) == "".join(value.split())


def test_hostile_cells_newlines_and_huge_values_do_not_break_rows():
    rows = [("a\nb\r\nc", "é" * 10_000)]
    out = table(["x", "y"], rows, width=50)
    assert len(out.splitlines()) == 3 and _longest(out) <= 50


def test_width_comes_from_columns_or_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "73")
    assert terminal_width(None) == 73
    monkeypatch.setenv("COLUMNS", "junk")
    assert terminal_width(None) is None  # not a terminal, no usable COLUMNS: no fitting
    # attack: str.isdigit takes '²' and '٤٠', which int() refuses or reads as 40
    for junk in ("\u00b2", "\u0664\u0660", "0", "-5", " 40", "1e3"):
        monkeypatch.setenv("COLUMNS", junk)
        assert terminal_width(None) is None, junk
    with pytest.raises(ValueError):
        table(["a"], [("1",)], 10, expanded="sideways")


def test_cli_query_fits_columns(seeded_db):
    wide = run_cli("query", "--db", str(seeded_db), HISTORY, env={"COLUMNS": "500"})
    narrow = run_cli("query", "--db", str(seeded_db), HISTORY, env={"COLUMNS": "90"})
    assert wide.returncode == narrow.returncode == 0, narrow.stderr
    assert _longest(wide.stdout) > 90  # the details column is long
    assert _longest(narrow.stdout) <= 90 and "…" in narrow.stdout
    assert "known through" in narrow.stdout  # the horizon line is kept


def test_cli_sql_select_star_is_expanded_automatically_at_80_columns(seeded_db):
    r = run_cli("sql", "--db", str(seeded_db), WIDE_SQL, env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("-[ RECORD") == 3 and _longest(r.stdout) <= 80
    assert "(3 rows)" in r.stdout
    records = _records(r.stdout)
    assert [len(rec["hash"]) for rec in records] == [64, 64, 64]  # wrapped, not cut
    assert records[1]["prev_hash"] == records[0]["hash"]


def test_cli_expanded_flag_on_query_and_sql(seeded_db):
    q = run_cli("query", "--db", str(seeded_db), "--expanded",
                "state of us.tariff.ieepa-reciprocal.cn as of 2025-05-14")
    assert q.returncode == 0 and "-[ RECORD 1 ]" in q.stdout
    assert "measure      | us.tariff.ieepa-reciprocal.cn" in q.stdout
    s = run_cli("sql", "--db", str(seeded_db), "-x", "SELECT 1 AS one, 'two' AS two")
    assert s.returncode == 0 and "one | 1\ntwo | two" in s.stdout


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_json_and_csv_are_never_cut(seeded_db, fmt):
    r = run_cli("sql", "--db", str(seeded_db), "--format", fmt, WIDE_SQL,
                env={"COLUMNS": "40"})
    assert r.returncode == 0 and "…" not in r.stdout and "RECORD" not in r.stdout
    if fmt == "json":
        assert all(len(row["hash"]) == 64 for row in json.loads(r.stdout))
    rows = render_rows(["x"], [("y" * 500,)], fmt, width=20)
    assert "y" * 500 in rows


def test_piped_table_without_columns_keeps_the_old_cell_limit(seeded_db, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    r = run_cli("query", "--db", str(seeded_db), HISTORY)
    cut = [line for line in r.stdout.splitlines() if "…" in line]
    assert r.returncode == 0 and cut and MIN_CELL < 80

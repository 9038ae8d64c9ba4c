"""The rebuild (issue 25): it folds a stream's in-order epochs together, writes plain states with
msgspec and writes only the rows that differ from the stored ones. Whatever the stored
projections hold, a rebuild must leave exactly the rows of a fold of the log, and on a log
that generates every feature the benchmark's workload has, those rows equal the ones the
appends maintained. No timing here: `python -m benchmarks.rebuild` measures."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from timeline.log.events import canonical_json, canonical_json_plain, plain_float
from timeline.projections import maintain
from timeline.store.store import Store

from .backends import (backend, dump_projections, make_db, new_event,  # noqa: F401
                       projections_match_rebuild, raw)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.generate import batches, generate, new_events  # noqa: E402


@pytest.fixture
def generated(make_db):
    """A store holding a generated log (retroactive events, late knowledge, schedules),
    appended in batches as a user would: its projections are the incremental ones."""
    store = Store.open(make_db(seeded=False))
    for b in batches(generate(1500, 60, seed=11).rows, 400):
        store.append(new_events(b))
    yield store
    store.close()


def test_a_rebuild_of_a_generated_log_equals_the_incremental_projections(generated):
    before = dump_projections(generated)
    assert sum(len(t) for t in before) > 1500
    assert projections_match_rebuild(generated)
    generated.verify()


def _writes(monkeypatch) -> list[str]:
    """The statements the rebuild sends that change a projection table."""
    seen: list[str] = []
    real = maintain.run_sql

    def recording(conn, statement, params=()):
        if statement.split()[0] in ("INSERT", "DELETE", "UPDATE") and \
                "projection_head" not in statement:
            seen.append(statement)
        return real(conn, statement, params)
    monkeypatch.setattr(maintain, "run_sql", recording)
    return seen


def test_a_rebuild_of_intact_projections_writes_no_row(generated, monkeypatch):
    monkeypatch.setattr(maintain, "_REBUILD_BATCH", 50)  # many batches of streams
    writes = _writes(monkeypatch)
    before = dump_projections(generated)
    generated.rebuild()
    assert writes == []
    assert dump_projections(generated) == before


DAMAGE = [
    "DELETE FROM intervals WHERE stream IN (SELECT stream FROM measures ORDER BY stream "
    "LIMIT 3)",
    "UPDATE known_intervals SET state = '{}' WHERE stream IN (SELECT stream FROM measures "
    "ORDER BY stream DESC LIMIT 2)",
    "UPDATE measures SET pending = pending + 1, title = 'forged'",
    "DELETE FROM measures WHERE stream IN (SELECT stream FROM measures ORDER BY stream "
    "LIMIT 5 OFFSET 20)",
    "UPDATE intervals SET valid_to = NULL, rate = 99",
    # rows of streams the log does not hold: before the first, between two, after the last
    "INSERT INTO intervals (stream, valid_from, state, event_ids) VALUES "
    "('!first', '2020-01-01', '{}', '[]'), ('~last', '2020-01-01', '{}', '[]')",
    "INSERT INTO known_intervals (stream, valid_from, known_from, state, event_ids) "
    "SELECT stream || '.x', valid_from, known_from, state, event_ids FROM known_intervals",
    "INSERT INTO measures (stream, version, pending) VALUES ('!m', 1, 0), ('~m', 1, 0)",
    # a day a stream does not have
    "INSERT INTO intervals (stream, valid_from, state, event_ids) SELECT stream, "
    "'1999-01-01', '{}', '[]' FROM measures",
]


@pytest.mark.parametrize("batch", [1, 37, 5000])
def test_a_rebuild_repairs_every_kind_of_damage(generated, monkeypatch, batch):
    """Stream by stream and batch by batch of streams, the stored rows are compared with the
    fresh ones: missing, changed and extra rows (also of streams the log does not hold,
    before, between and after its own) are all put right."""
    want = dump_projections(generated)
    monkeypatch.setattr(maintain, "_REBUILD_BATCH", batch)
    raw(str(generated.engine.url.render_as_string(hide_password=False)), *DAMAGE)
    assert dump_projections(generated) != want
    generated.rebuild()
    assert dump_projections(generated) == want
    generated.verify()


def test_a_rebuild_of_empty_projections_writes_them_all(generated, monkeypatch):
    want = dump_projections(generated)
    raw(str(generated.engine.url.render_as_string(hide_password=False)),
        "DELETE FROM intervals", "DELETE FROM known_intervals", "DELETE FROM measures")
    progress: list[tuple[int, int]] = []
    monkeypatch.setattr(maintain, "_REBUILD_BATCH", 100)
    generated.rebuild(lambda done, total: progress.append((done, total)))
    assert dump_projections(generated) == want
    assert len(progress) > 2 and progress[-1] == (1500, 1500)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


# -- states written by msgspec only where it writes what canonical_json does ---------------
@pytest.mark.parametrize("value", [1e-05, 1e16, 2.5e-7, 1e300, 0.1, 30.0, 7])
def test_a_float_json_writes_with_an_exponent_takes_the_canonical_encoder(make_db, value):
    store = Store.open(make_db(seeded=False))
    try:
        store.append([new_event("us.tariff.x.cn", "imposed", "2025-01-01",
                                set={"rate": 5, "value": value}),
                      new_event("us.tariff.x.cn", "amended", "2025-02-01",
                                set={"rate": 0.5, "value": value}),
                      new_event("us.tariff.y.cn", "imposed", "2025-01-01", set={"rate": 2.0})])
        assert projections_match_rebuild(store)
        ivs = dump_projections(store)[0]
        assert ivs[0][6] == canonical_json({"rate": 5, "status": "in_force", "value": value})
    finally:
        store.close()


def test_the_plain_encoder_is_canonical_json_for_plain_values():
    values = [{"b": [1, 2.5, "x"], "a": {"é": None, "z": True}}, ["ids", "é\u2028\"\\"],
              {"rate": 123456789012345.6, "low": 0.0001, "neg": -0.0}]
    for v in values:
        assert canonical_json_plain(v) == canonical_json(v)
    for literal in ("1e-05", "1e16", "0.00001", "10000000000000000.0", "1E3"):
        with pytest.raises(ValueError):
            plain_float(literal)
    assert plain_float("0.5") == 0.5


def test_the_rebuild_benchmark_runs(tmp_path, monkeypatch, capsys):
    """`python -m benchmarks.rebuild` end to end on a tiny log (no timing assertions)."""
    from benchmarks import rebuild as bench

    monkeypatch.setenv("TIMELINE_KNOWN_MARGIN_DAYS", "3650")  # what build() sets, restored
    out = tmp_path / "r.json"
    assert bench.main(["--events", "400", "--streams", "40", "--rounds", "1", "--empty",
                       "--workdir", str(tmp_path), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["events"] == 400 and r["streams"] == 40
    assert r["ours_eps"] > 0 and r["ours_empty_eps"] > 0 and r["scan_eps"] > 0
    assert "ratio" in capsys.readouterr().out
